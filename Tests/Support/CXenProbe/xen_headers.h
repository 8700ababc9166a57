/* Includes Xen's public headers when libxen-dev is installed. They need <stdint.h> first and
 * __XEN_INTERFACE_VERSION__ set, or they silently switch to the legacy ABI. The target is Xen
 * 4.17's interface, 0x00040e00. __has_include is evaluated when this file is compiled, so after
 * installing libxen-dev only a clean build sees the headers. */
#ifndef XV_XEN_HEADERS_H
#define XV_XEN_HEADERS_H

#include <stddef.h>
#include <stdint.h>

#if __has_include(<xen/xen.h>)
#define XV_HAVE_XEN_HEADERS 1
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/errno.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/memory.h>
#include <xen/version.h>
#include <xen/features.h>
#include <xen/physdev.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/hvm/hvm_vcpu.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/elfnote.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/io/xs_wire.h>
#else
#define XV_HAVE_XEN_HEADERS 0
#endif

#endif
