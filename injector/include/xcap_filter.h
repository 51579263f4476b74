/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * xcap filter stubs for BPF programs written in C (clang -target bpf).
 *
 * A filter stub is a placeholder function that xcap's injector replaces, in
 * the compiled object, by a translated tcpdump filter. Call it from any
 * XDP or TC program (or any program whose context gives packet pointers):
 *
 *     #include "xcap_filter.h"
 *
 *     SEC("xdp")
 *     int prog(struct xdp_md *ctx)
 *     {
 *         void *data = (void *)(long)ctx->data;
 *         void *data_end = (void *)(long)ctx->data_end;
 *         __u32 snap = xcap_filter(ctx, data, data_end, data_end - data);
 *         return snap ? XDP_PASS : XDP_DROP;
 *     }
 *
 * then: xcap (or injector::splice) with the stub name "xcap_filter".
 *
 * The contract (see injector/README.md):
 *   - ctx: the program's context (struct xdp_md *, struct __sk_buff *);
 *   - start, end: packet pointers to the first byte and one past the last
 *     readable byte (data, data_end);
 *   - wirelen: the packet's length on the wire (cBPF `len`);
 *   - returns 0 to reject, else the snap length (the cBPF return value).
 *   r1-r5 are clobbered, r6-r9 preserved; the filter uses at most 240 bytes
 *   of its own stack.
 *
 * The stub must be `static __noinline`: a static (LOCAL) function is
 * verified in its caller's context, so packet pointers may be passed; a
 * global one would be verified on its own and rejected. The body keeps all
 * four arguments and hides its result from the compiler (empty asm), so
 * clang neither drops arguments nor folds the result into the caller. As
 * written, it passes the verifier and matches every packet (returns
 * wirelen), so an object that was never spliced still loads.
 *
 * Pass values the compiler cannot know. clang may propagate a constant
 * argument (or two equal ones) into a static function and then not set that
 * register at the call; the spliced filter would read garbage. Arguments
 * read from the context are safe; hide constants with XCAP_OPAQUE(x):
 *     xcap_filter(ctx, XCAP_OPAQUE(start), end, len);
 *
 * Several stubs per object are fine (one per program, or L2 and L3
 * variants): declare each with XCAP_FILTER_STUB(name). A stub that no
 * program calls is removed by clang; the injector reports it as missing.
 */
#ifndef XCAP_FILTER_H
#define XCAP_FILTER_H

#include <linux/types.h>

/* The value of x, unknown to the optimiser. */
#define XCAP_OPAQUE(x)                                                          \
	({                                                                      \
		__typeof__(x) xcap_opaque_ = (x);                               \
		asm volatile("" : "+r"(xcap_opaque_));                          \
		xcap_opaque_;                                                   \
	})

#define XCAP_FILTER_STUB(name)                                                  \
	static __attribute__((noinline, unused)) __u32 name(                    \
		void *ctx, void *start, void *end, __u32 wirelen)               \
	{                                                                       \
		__u32 ret = wirelen;                                            \
		asm volatile("" : "+r"(ret) : "r"(ctx), "r"(start), "r"(end)); \
		return ret;                                                     \
	}

#ifndef XCAP_NO_DEFAULT_STUB
/* static __noinline __u32 xcap_filter(void *ctx, void *start, void *end, __u32 wirelen) */
XCAP_FILTER_STUB(xcap_filter)
#endif

#endif /* XCAP_FILTER_H */
