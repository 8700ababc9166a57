/* KVM's request numbers and structure layouts for the KVM host (Sources/XVKVMHost), from the
 * kernel's own <linux/kvm.h>: Swift imports the structures but not the _IO/_IOW request
 * macros, so each request the host uses is a constant here. Nothing else lives in C. */
#ifndef XV_KVM_H
#define XV_KVM_H
#include <linux/kvm.h>

static const unsigned long xv_kvm_get_api_version = KVM_GET_API_VERSION;
static const unsigned long xv_kvm_create_vm = KVM_CREATE_VM;
static const unsigned long xv_kvm_check_extension = KVM_CHECK_EXTENSION;
static const unsigned long xv_kvm_get_vcpu_mmap_size = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long xv_kvm_set_user_memory_region = KVM_SET_USER_MEMORY_REGION;
static const unsigned long xv_kvm_create_vcpu = KVM_CREATE_VCPU;
static const unsigned long xv_kvm_run = KVM_RUN;
static const unsigned long xv_kvm_get_regs = KVM_GET_REGS;
static const unsigned long xv_kvm_set_regs = KVM_SET_REGS;
static const unsigned long xv_kvm_get_sregs = KVM_GET_SREGS;
static const unsigned long xv_kvm_set_sregs = KVM_SET_SREGS;

static const int xv_kvm_cap_xen_hvm = KVM_CAP_XEN_HVM;
static const int xv_kvm_cap_immediate_exit = KVM_CAP_IMMEDIATE_EXIT;
static const int xv_kvm_cap_user_memory = KVM_CAP_USER_MEMORY;
static const int xv_kvm_cap_set_guest_debug = KVM_CAP_SET_GUEST_DEBUG;

/* The port-I/O exit's data, which sits at an offset inside the kvm_run mapping. */
static inline unsigned char *xv_kvm_io_data(struct kvm_run *run) { return (unsigned char *)run + run->io.data_offset; }
#endif
