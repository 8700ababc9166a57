/* CFuzzDriver is a header; this file gives the target a source. */
#include "fuzz_driver.h"
