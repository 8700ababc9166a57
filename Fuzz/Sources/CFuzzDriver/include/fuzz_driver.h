/* libFuzzer's driver, for executables that bring their own main (SwiftPM names an executable's
 * entry point itself): LLVMFuzzerRunDriver parses libFuzzer's flags and runs `callback`. */
#ifndef FUZZ_DRIVER_H
#define FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
