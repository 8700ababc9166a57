#include "xen_headers.h"
#include "xen_probe.h"

extern const struct xv_probe_constant xv_probe_constants[];
extern const size_t xv_probe_constant_count;
extern const struct xv_probe_struct xv_probe_structs[];
extern const size_t xv_probe_struct_count;
extern const struct xv_probe_field xv_probe_fields[];
extern const size_t xv_probe_field_count;

int xv_probe_have_xen_headers(void) { return XV_HAVE_XEN_HEADERS; }

unsigned int xv_probe_interface_version(void) {
#if XV_HAVE_XEN_HEADERS
    return __XEN_INTERFACE_VERSION__;
#else
    return 0;
#endif
}

int xv_probe_event_channel_op(void) {
#if XV_HAVE_XEN_HEADERS
    return __HYPERVISOR_event_channel_op;
#else
    return -1;
#endif
}

size_t xv_probe_constant_count_get(void) { return xv_probe_constant_count; }
const struct xv_probe_constant *xv_probe_constant_at(size_t i) { return i < xv_probe_constant_count ? &xv_probe_constants[i] : NULL; }
size_t xv_probe_struct_count_get(void) { return xv_probe_struct_count; }
const struct xv_probe_struct *xv_probe_struct_at(size_t i) { return i < xv_probe_struct_count ? &xv_probe_structs[i] : NULL; }
size_t xv_probe_field_count_get(void) { return xv_probe_field_count; }
const struct xv_probe_field *xv_probe_field_at(size_t i) { return i < xv_probe_field_count ? &xv_probe_fields[i] : NULL; }
