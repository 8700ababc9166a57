/* CKVM is a header; this file gives the target a source. */
#include "xv_kvm.h"
