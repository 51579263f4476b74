/* Bare pass programs: the anchors for capture overhead (section 2). */
__attribute__((section("xdp"), used)) int xdp_pass(void *ctx) { return 2; /* XDP_PASS */ }
/* What xcap's XDP program is: multi-buffer aware (BPF_F_XDP_HAS_FRAGS),
 * which changes how generic XDP and veth prepare a packet for it. */
__attribute__((section("xdp.frags"), used)) int xdp_pass_frags(void *ctx) { return 2; }
__attribute__((section("tc"), used)) int tc_pass(void *ctx) { return 0; /* TC_ACT_OK */ }
char _license[] __attribute__((section("license"), used)) = "GPL";
