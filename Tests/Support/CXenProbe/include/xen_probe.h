/* The C compiler's view of Debian's libxen-dev headers, for the ABI conformance suite.
 * The tables are generated from Specs/ (Generated/xen_probe_table.c); they are empty when the
 * headers are not installed (xv_probe_have_xen_headers() returns 0). */
#ifndef XV_XEN_PROBE_H
#define XV_XEN_PROBE_H

#include <stddef.h>

struct xv_probe_constant {
    const char *name;
    unsigned long long bits;   /* the value, converted to unsigned long long */
    int is_negative;           /* whether the C value is below zero */
};

struct xv_probe_struct {
    const char *tag;
    size_t size;
};

struct xv_probe_field {
    const char *tag;
    const char *member;        /* dotted for nested members */
    size_t offset;
    size_t size;
    size_t count;
};

/* 1 when <xen/xen.h> was found at build time. */
int xv_probe_have_xen_headers(void);
/* The __XEN_INTERFACE_VERSION__ the probe compiled with, and __HYPERVISOR_event_channel_op as
 * the headers defined it then (32 for the current ABI, 16 for the legacy one). */
unsigned int xv_probe_interface_version(void);
int xv_probe_event_channel_op(void);

size_t xv_probe_constant_count_get(void);
const struct xv_probe_constant *xv_probe_constant_at(size_t index);
size_t xv_probe_struct_count_get(void);
const struct xv_probe_struct *xv_probe_struct_at(size_t index);
size_t xv_probe_field_count_get(void);
const struct xv_probe_field *xv_probe_field_at(size_t index);

#endif
