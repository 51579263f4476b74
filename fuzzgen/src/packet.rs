//! Packets biased toward valid Ethernet / VLAN / MPLS / PPPoE / IPv4 / IPv6
//! (with extension headers) / TCP / UDP / ICMP headers, then damaged: a few
//! bytes overwritten, the capture cut short of the wire length, or just
//! random bytes.

use cbpf2ebpf::libpcap;

use crate::Src;

/// A captured packet: `data` is what was captured, `wirelen` the length on
/// the wire (normally `>= data.len()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub data: Vec<u8>,
    pub wirelen: u32,
}

/// IPv4 addresses shared with the expression generator.
pub const V4: &[[u8; 4]] = &[
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [192, 168, 1, 1],
    [192, 168, 1, 255],
    [224, 0, 0, 1],
    [255, 255, 255, 255],
    [127, 0, 0, 1],
    [0, 0, 0, 0],
];

pub const MACS: &[[u8; 6]] = &[
    [0xff; 6],
    [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
    [0x33, 0x33, 0x00, 0x00, 0x00, 0x01],
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
    [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
];

pub const PORTS: &[u16] = &[80, 443, 53, 22, 8080, 1024, 0, 65535, 2048];

const V6: &[[u8; 16]] = &[
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1],
];

fn put16(p: &mut Vec<u8>, v: u16) {
    p.extend_from_slice(&v.to_be_bytes());
}

fn v4(s: &mut Src) -> [u8; 4] {
    if s.chance(24) {
        [s.byte(), s.byte(), s.byte(), s.byte()]
    } else {
        *s.pick(V4)
    }
}

fn v6(s: &mut Src) -> [u8; 16] {
    if s.chance(16) {
        let mut a = [0u8; 16];
        a.iter_mut().for_each(|b| *b = s.byte());
        a
    } else {
        *s.pick(V6)
    }
}

fn port(s: &mut Src) -> u16 {
    if s.chance(32) {
        s.u16()
    } else {
        *s.pick(PORTS)
    }
}

fn mac(s: &mut Src) -> [u8; 6] {
    if s.chance(24) {
        [s.byte(), s.byte(), s.byte(), s.byte(), s.byte(), s.byte()]
    } else {
        *s.pick(MACS)
    }
}

/// A packet for `linktype` (EN10MB or RAW).
pub fn packet(s: &mut Src, linktype: i32) -> Packet {
    let mut p = Vec::new();
    if s.chance(12) {
        // Random bytes.
        let n = s.below(96);
        p = s.bytes(n);
        p.resize(n, 0);
    } else if linktype == libpcap::DLT_EN10MB {
        ethernet(s, &mut p);
    } else {
        l3(s, &mut p, None);
    }
    let full = p.len();
    // A few bytes overwritten.
    for _ in 0..s.below(4).saturating_sub(1) {
        if !p.is_empty() {
            let i = s.below(p.len());
            p[i] = s.byte();
        }
    }
    // Truncation: caplen < wirelen.
    let cut = match s.below(8) {
        0 => s.below(full + 1),
        1 => (*s.pick(&[14usize, 18, 22, 34, 38, 54, 58, 62])).min(full),
        _ => full,
    };
    p.truncate(cut);
    let wirelen = match s.below(32) {
        0 => s.u32(),
        1..=3 => (full + s.below(1500)) as u32,
        _ => full as u32,
    };
    Packet { data: p, wirelen }
}

fn ethernet(s: &mut Src, p: &mut Vec<u8>) {
    let (dst, src) = (mac(s), mac(s));
    p.extend_from_slice(&dst);
    p.extend_from_slice(&src);
    // 0-2 VLAN tags.
    let tags = match s.below(8) {
        0 | 1 => 1,
        2 => 2,
        _ => 0,
    };
    for _ in 0..tags {
        put16(p, *s.pick(&[0x8100, 0x88a8, 0x9100]));
        let vid = *s.pick(&[0u16, 1, 100, 4095, 2]);
        put16(p, vid | (s.byte() as u16 & 0xf0) << 8);
    }
    match s.below(14) {
        0..=4 => {
            put16(p, 0x0800);
            ipv4(s, p);
        }
        5..=8 => {
            put16(p, 0x86dd);
            ipv6(s, p);
        }
        9 => {
            put16(p, *s.pick(&[0x0806, 0x8035]));
            arp(s, p);
        }
        10 => {
            put16(p, *s.pick(&[0x8847, 0x8848]));
            let labels = 1 + s.below(3);
            for n in 0..labels {
                let label = *s.pick(&[0u32, 100, 1_048_575, 16]);
                let bos = (n + 1 == labels) as u32;
                p.extend_from_slice(&(label << 12 | bos << 8 | 64).to_be_bytes());
            }
            l3(s, p, None);
        }
        11 => {
            // PPPoE session: ver/type, code, session, length, PPP protocol.
            put16(p, 0x8864);
            p.extend_from_slice(&[0x11, 0]);
            put16(p, *s.pick(&[0u16, 1, 0x1234, 65535]));
            put16(p, 40);
            let v6 = s.chance(96);
            put16(p, if v6 { 0x0057 } else { 0x0021 });
            l3(s, p, Some(v6));
        }
        12 => {
            // 802.3 length field, then LLC (STP, SNAP, IPX, ...).
            put16(p, s.below(1501) as u16);
            let llc: &[u8] = s.pick::<&[u8]>(&[
                &[0x42, 0x42, 0x03][..],
                &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00],
                &[0xe0, 0xe0, 0x03],
                &[0xfe, 0xfe, 0x03],
                &[0xf0, 0xf0, 0x01],
                &[0xff, 0xff],
            ]);
            p.extend_from_slice(llc);
        }
        _ => put16(p, s.u16()),
    }
    let n = s.below(24);
    p.extend(s.bytes(n));
}

/// IPv4 or IPv6 by `v6`, or chosen.
fn l3(s: &mut Src, p: &mut Vec<u8>, v6: Option<bool>) {
    if v6.unwrap_or_else(|| s.chance(100)) {
        ipv6(s, p)
    } else {
        ipv4(s, p)
    }
}

fn ipv4(s: &mut Src, p: &mut Vec<u8>) {
    let start = p.len();
    let ihl = match s.below(16) {
        0 => 6,
        1 => 15,
        2 => s.byte() & 0xf,
        _ => 5,
    };
    let version = if s.chance(8) { s.byte() >> 4 } else { 4 };
    p.push(version << 4 | ihl);
    p.push(s.byte()); // TOS
    put16(p, 0); // total length, set below
    put16(p, s.u16()); // id
    let frag = match s.below(10) {
        0 => 0x2000,
        1 => 0x0010,
        2 => 0x2001,
        3 => s.u16(),
        4 | 5 => 0x4000,
        _ => 0,
    };
    put16(p, frag);
    p.push(64); // TTL
    let proto = *s.pick(&[6u8, 6, 17, 17, 1, 2, 132, 4, 41, 47, 103, 112, 0, 51]);
    let proto = if s.chance(16) { s.byte() } else { proto };
    let proto_at = p.len();
    p.push(proto);
    put16(p, 0); // checksum
    let (a, b) = (v4(s), v4(s));
    p.extend_from_slice(&a);
    p.extend_from_slice(&b);
    for _ in 20..(ihl as usize * 4).max(20) {
        p.push(s.byte());
    }
    let proto = if proto == 51 {
        // AH headers, the only ones `ip protochain` walks (libpcap takes
        // (length + 2) * 4 as the next header's offset from the IP header,
        // so a chain past the first one sends it back, or round forever).
        let mut next_at = proto_at;
        let count = match *s.pick(&[1usize, 1, 2, 3, 99]) {
            99 => 4 + s.below(200),
            n => n,
        };
        for _ in 0..count {
            p[next_at] = 51;
            next_at = p.len();
            p.push(0);
            let len = *s.pick(&[1u8, 1, 2, 3, 4]);
            let len = if s.chance(32) { s.byte() } else { len };
            p.push(len);
            for _ in 2..(len as usize + 2) * 4 {
                p.push(if s.chance(64) { s.byte() } else { 0 });
            }
        }
        let last = *s.pick(&[6u8, 17, 1, 51]);
        p[next_at] = last;
        last
    } else {
        proto
    };
    l4(s, p, proto, false);
    let total = (p.len() - start) as u16;
    p[start + 2..start + 4].copy_from_slice(&total.to_be_bytes());
}

fn ipv6(s: &mut Src, p: &mut Vec<u8>) {
    let start = p.len();
    let version = if s.chance(8) { s.byte() >> 4 } else { 6 };
    p.extend_from_slice(&[version << 4, 0, 0, 0]);
    put16(p, 0); // payload length, set below
    let next_at = p.len();
    p.push(0);
    p.push(64);
    let (a, b) = (v6(s), v6(s));
    p.extend_from_slice(&a);
    p.extend_from_slice(&b);
    // Extension headers: hop-by-hop, routing, fragment, destination, AH;
    // now and then a chain longer than the translator unrolls (libpcap's
    // protochain loop has no bound).
    let mut next_at = next_at;
    let count = match *s.pick(&[0usize, 0, 0, 1, 1, 2, 3, 5, 6, 99]) {
        6 => 6 + s.below(60),
        99 => 6 + s.below(400),
        n => n,
    };
    for _ in 0..count {
        let h = *s.pick(&[0u8, 43, 44, 60, 51]);
        p[next_at] = h;
        next_at = p.len();
        p.push(0);
        let len = s.below(3) as u8;
        p.push(len);
        let size = if h == 51 {
            (len as usize + 2) * 4
        } else if h == 44 {
            8
        } else {
            (len as usize + 1) * 8
        };
        for _ in 2..size {
            p.push(if s.chance(64) { s.byte() } else { 0 });
        }
    }
    let proto = *s.pick(&[6u8, 6, 17, 17, 58, 58, 132, 59, 0, 4, 41]);
    let proto = if s.chance(16) { s.byte() } else { proto };
    p[next_at] = proto;
    l4(s, p, proto, true);
    let len = (p.len() - start - 40) as u16;
    p[start + 4..start + 6].copy_from_slice(&len.to_be_bytes());
}

fn l4(s: &mut Src, p: &mut Vec<u8>, proto: u8, v6: bool) {
    match proto {
        6 => {
            put16(p, port(s));
            put16(p, port(s));
            p.extend_from_slice(&s.u32().to_be_bytes());
            p.extend_from_slice(&s.u32().to_be_bytes());
            let doff = if s.chance(24) { s.byte() >> 4 } else { 5 };
            p.push(doff << 4);
            p.push(*s.pick(&[0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0xff, 0]));
            put16(p, s.u16());
            put16(p, 0);
            put16(p, 0);
            for _ in 20..(doff as usize * 4).max(20) {
                p.push(s.byte());
            }
        }
        17 | 132 => {
            put16(p, port(s));
            put16(p, port(s));
            put16(p, 8 + s.below(64) as u16);
            put16(p, 0);
            if proto == 132 {
                p.extend_from_slice(&s.u32().to_be_bytes());
            }
        }
        1 | 58 => {
            let t = if v6 {
                *s.pick(&[128u8, 129, 133, 134, 135, 136, 1, 3])
            } else {
                *s.pick(&[0u8, 8, 3, 11, 5, 13])
            };
            p.push(if s.chance(16) { s.byte() } else { t });
            p.push(s.below(4) as u8);
            put16(p, 0);
            p.extend_from_slice(&s.u32().to_be_bytes());
        }
        2 => {
            p.push(*s.pick(&[0x11u8, 0x16, 0x17, 0x22]));
            p.push(0);
            put16(p, 0);
            p.extend_from_slice(&v4(s));
        }
        4 => ipv4(s, p),
        41 => ipv6(s, p),
        _ => {}
    }
}

fn arp(s: &mut Src, p: &mut Vec<u8>) {
    put16(p, 1);
    put16(p, 0x0800);
    p.extend_from_slice(&[6, 4]);
    put16(p, *s.pick(&[1u16, 2, 3, 4]));
    let (sha, spa, tha, tpa) = (mac(s), v4(s), mac(s), v4(s));
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa);
}
