/* Hand-written whole programs: the baseline of section 2's isolated
 * fixed-cost table. Each runs the capture benchmark's filter, `udp port 9`
 * (IPv4 first fragments and IPv6 with UDP as the next header, as libpcap
 * reads it), on every packet and lets the packet pass either way; a
 * capture would follow a match. Written as one would for XDP and TC:
 * direct packet access, one bounds check per header, 16-bit loads
 * compared with constants in network byte order.
 *
 * Built with: clang -O2 -target bpf -mcpu=v3 -c programs.c (functions in
 * .text; the benchmark loads each as a program of its hook), and with
 * -DLIVE_SECTIONS for the live own-cost table, where `ip link` and `tc`
 * attach them from their sections.
 */
#ifdef LIVE_SECTIONS
#define XDP_PROGRAM __attribute__((section("xdp.frags"), used))
#define TC_PROGRAM __attribute__((section("tc"), used))
char _license[] __attribute__((section("license"), used)) = "GPL";
#else
#define XDP_PROGRAM
#define TC_PROGRAM
#endif
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

#define N16(x) __builtin_bswap16(x)
#define LD16(p) (*(const u16 *)(p))

struct xdp_md {
    u32 data;
    u32 data_end;
};

/* struct __sk_buff up to data (offset 76) and data_end (80). */
struct sk_buff_ctx {
    u32 before_data[19];
    u32 data;
    u32 data_end;
};

static inline __attribute__((always_inline)) int udp_port_9(const u8 *p, const u8 *end)
{
    if (p + 14 > end)
        return 0;
    u16 et = LD16(p + 12);
    if (et == N16(0x86dd)) {
        if (p + 58 > end || p[20] != 17)
            return 0;
        return LD16(p + 54) == N16(9) || LD16(p + 56) == N16(9);
    }
    if (et != N16(0x0800) || p + 34 > end || p[23] != 17)
        return 0;
    if (LD16(p + 20) & N16(0x1fff))
        return 0;
    const u8 *l4 = p + 14 + ((p[14] & 0xf) << 2);
    if (l4 + 4 > end)
        return 0;
    return LD16(l4) == N16(9) || LD16(l4 + 2) == N16(9);
}

XDP_PROGRAM int xdp_udp_port_9(struct xdp_md *ctx)
{
    int match = udp_port_9((const u8 *)(long)ctx->data, (const u8 *)(long)ctx->data_end);
    /* The result is used, as a capture would use it. */
    asm volatile("" ::"r"(match));
    return 2; /* XDP_PASS */
}

TC_PROGRAM int tc_udp_port_9(struct sk_buff_ctx *skb)
{
    int match = udp_port_9((const u8 *)(long)skb->data, (const u8 *)(long)skb->data_end);
    asm volatile("" ::"r"(match));
    return -1; /* TCX_NEXT */
}
