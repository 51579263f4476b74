/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Calling a filter compiled by `xcap compile --name NAME` (a function
 * object, injector::blob) from a BPF program written in C.
 *
 *     #include "xcap_blob.h"
 *     XCAP_FILTER_EXTERN(is_dns);
 *
 *     SEC("xdp")
 *     int prog(struct xdp_md *ctx)
 *     {
 *         void *data = (void *)(long)ctx->data;
 *         void *data_end = (void *)(long)ctx->data_end;
 *         return is_dns(ctx, data, data_end, data_end - data) ? XDP_PASS : XDP_DROP;
 *     }
 *
 *     clang -O2 -g -target bpf -c prog.c -o prog.o      (-g: BTF is required)
 *     xcap compile 'udp port 53' --hook xdp --name is_dns -o dns.o
 *     bpftool gen object linked.o prog.o dns.o
 *     bpftool prog load linked.o /sys/fs/bpf/prog        (or ip/tc, any libbpf loader)
 *
 * The prototype must be exactly this one: libbpf's linker compares the BTF
 * of the extern with the filter's (`void *`, not `struct xdp_md *`).
 * The filter is a hidden global function; libbpf's loader makes its BTF
 * static, so the kernel verifies it in the caller's context and packet
 * pointers may be passed. Arguments: the program context, the first packet
 * byte, one past the last readable byte, the packet's length on the wire;
 * returns 0 (no match) or the snap length. r6-r9 are preserved.
 */
#ifndef XCAP_BLOB_H
#define XCAP_BLOB_H

#include <linux/types.h>

#define XCAP_FILTER_EXTERN(name) \
	extern __u32 name(void *ctx, void *start, void *end, __u32 wirelen)

#endif /* XCAP_BLOB_H */
