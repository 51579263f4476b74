/* Bare pass programs: the anchors for capture overhead (section 2). */
__attribute__((section("xdp"), used)) int xdp_pass(void *ctx) { return 2; /* XDP_PASS */ }
__attribute__((section("tc"), used)) int tc_pass(void *ctx) { return 0; /* TC_ACT_OK */ }
char _license[] __attribute__((section("license"), used)) = "GPL";
