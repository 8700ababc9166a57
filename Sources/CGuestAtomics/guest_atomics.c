/* SwiftPM needs one source file in a C target; the functions are all static inline in the header. */
#include "guest_atomics.h"
#include "xv_locks.h"
