/* Hand-written C baselines for the benchmark (issue 7), with the
 * cbpf2ebpf filter ABI: r1 = ctx (unused), r2 = first packet byte,
 * r3 = one past the last, r4 = wire length; returns 262144 (the snap
 * length libpcap's filters return) on a match, 0 otherwise.
 *
 * Each is written the way one would for XDP: direct packet access, one
 * bounds check per header, 16-bit loads compared with constants in
 * network byte order. They follow libpcap's semantics for well-formed
 * Ethernet frames (IPv4 fragments, IHL, IPv6 next header), not for every
 * truncated packet.
 *
 * Built with: clang -O2 -target bpf -mcpu=v3 -c filters.c
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

#define SNAP 262144
#define N16(x) __builtin_bswap16(x)
#define N32(x) __builtin_bswap32(x)
#define FILTER __attribute__((noinline))
#define LD16(p) (*(const u16 *)(p))
#define LD32(p) (*(const u32 *)(p))

/* IPv4 TCP/UDP header start (first fragment only), or 0. */
static inline __attribute__((always_inline)) const u8 *
l4_ipv4(const u8 *p, const u8 *end, u8 proto)
{
    if (p + 34 > end)
        return 0;
    if (LD16(p + 12) != N16(0x0800) || p[23] != proto)
        return 0;
    if (LD16(p + 20) & N16(0x1fff))
        return 0;
    return p + 14 + ((p[14] & 0xf) << 2);
}

/* tcp port 443 and tcp[13]&8!=0 (tcp[] is IPv4 only in libpcap) */
FILTER int c_readme(void *ctx, const u8 *p, const u8 *end, u32 len)
{
    const u8 *l4 = l4_ipv4(p, end, 6);
    if (!l4 || l4 + 14 > end)
        return 0;
    if (LD16(l4) != N16(443) && LD16(l4 + 2) != N16(443))
        return 0;
    return (l4[13] & 8) ? SNAP : 0;
}

/* tcp port 443 */
FILTER int c_tcp443(void *ctx, const u8 *p, const u8 *end, u32 len)
{
    if (p + 14 > end)
        return 0;
    u16 et = LD16(p + 12);
    if (et == N16(0x0800)) {
        const u8 *l4 = l4_ipv4(p, end, 6);
        if (!l4 || l4 + 4 > end)
            return 0;
        return (LD16(l4) == N16(443) || LD16(l4 + 2) == N16(443)) ? SNAP : 0;
    }
    if (et == N16(0x86dd)) {
        if (p + 58 > end || p[20] != 6)
            return 0;
        return (LD16(p + 54) == N16(443) || LD16(p + 56) == N16(443)) ? SNAP : 0;
    }
    return 0;
}

/* host 10.0.0.1 and udp */
FILTER int c_host_udp(void *ctx, const u8 *p, const u8 *end, u32 len)
{
    if (p + 34 > end)
        return 0;
    if (LD16(p + 12) != N16(0x0800) || p[23] != 17)
        return 0;
    u32 h = N32(0x0a000001);
    return (LD32(p + 26) == h || LD32(p + 30) == h) ? SNAP : 0;
}

/* tcp[tcpflags] & tcp-syn != 0 */
FILTER int c_syn(void *ctx, const u8 *p, const u8 *end, u32 len)
{
    const u8 *l4 = l4_ipv4(p, end, 6);
    if (!l4 || l4 + 14 > end)
        return 0;
    return (l4[13] & 2) ? SNAP : 0;
}

/* icmp or arp */
FILTER int c_icmp_arp(void *ctx, const u8 *p, const u8 *end, u32 len)
{
    if (p + 24 > end)
        return p + 14 <= end && LD16(p + 12) == N16(0x0806) ? SNAP : 0;
    u16 et = LD16(p + 12);
    if (et == N16(0x0806))
        return SNAP;
    return (et == N16(0x0800) && p[23] == 1) ? SNAP : 0;
}

/* ip[0] & 0xf > 5 */
FILTER int c_ihl(void *ctx, const u8 *p, const u8 *end, u32 len)
{
    if (p + 15 > end)
        return 0;
    return (LD16(p + 12) == N16(0x0800) && (p[14] & 0xf) > 5) ? SNAP : 0;
}
