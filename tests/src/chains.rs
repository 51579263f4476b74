//! Packets for `protochain`: IPv6 (and IPv4) headers followed by chains of
//! the extension headers libpcap's `protochain` loop walks, generated from
//! a seed, so a failure names the packet that made it.
//!
//! libpcap walks hop-by-hop options (0), routing (43), fragment (44) and
//! destination options (60) as `next, length` with `(length + 1) * 8`
//! bytes, and AH (51) with `X = (length + 2) * 4` (the offset from the
//! network header, not from the AH header: a chain with an AH past the
//! first header sends libpcap back, and one that lands on itself makes its
//! interpreter loop forever).

/// The headers libpcap's IPv6 `protochain` loop walks.
pub const EXTENSIONS: [u8; 5] = [0, 43, 44, 60, 51];
/// What a chain ends in: TCP, UDP, ICMPv6, no next header, and ICMP and
/// SCTP for good measure.
pub const LAST: [u8; 6] = [6, 17, 58, 59, 1, 132];

/// A small deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One extension header: its type and its length byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ext {
    pub kind: u8,
    pub len: u8,
}

impl Ext {
    /// Its size on the wire, as a parser that knows AH reads it.
    pub fn size(self) -> usize {
        if self.kind == 51 {
            (self.len as usize + 2) * 4
        } else {
            (self.len as usize + 1) * 8
        }
    }
}

/// Ethernet (when `ethernet`), IPv6 with `chain` after its header, then
/// `last`'s header (20 bytes of zeros: a TCP header's size) and `payload`
/// bytes.
pub fn ipv6(ethernet: bool, chain: &[Ext], last: u8, payload: usize) -> Vec<u8> {
    let mut p = Vec::new();
    if ethernet {
        p.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd]);
    }
    let first = chain.first().map_or(last, |e| e.kind);
    let body: usize = chain.iter().map(|e| e.size()).sum::<usize>() + 20 + payload;
    let plen = body.min(0xffff) as u16;
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    push_chain(&mut p, chain, last);
    p.resize(p.len() + 20 + payload, 0);
    p
}

/// Ethernet (when `ethernet`), IPv4 (protocol: the first of `chain`, else
/// `last`) with a 20-byte header, then the chain.
pub fn ipv4(ethernet: bool, chain: &[Ext], last: u8, payload: usize) -> Vec<u8> {
    let mut p = Vec::new();
    if ethernet {
        p.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    }
    let first = chain.first().map_or(last, |e| e.kind);
    let total: usize = 20 + chain.iter().map(|e| e.size()).sum::<usize>() + 20 + payload;
    let total = total.min(0xffff) as u16;
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 64, first, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    push_chain(&mut p, chain, last);
    p.resize(p.len() + 20 + payload, 0);
    p
}

fn push_chain(p: &mut Vec<u8>, chain: &[Ext], last: u8) {
    for (n, e) in chain.iter().enumerate() {
        let next = chain.get(n + 1).map_or(last, |e| e.kind);
        let start = p.len();
        p.resize(start + e.size(), 0);
        p[start] = next;
        p[start + 1] = e.len;
        // Recognisable filler: the header's index.
        for b in &mut p[start + 2..] {
            *b = n as u8;
        }
    }
}

/// What the live and tracing tests send: IPv6 from fd00:NET::1 to
/// fd00:NET::2 with `hops` 8-byte extension headers (the first of kind
/// `first`, the rest destination options; each holds a PadN option, so the
/// kernel parses them as valid), then 20 zero bytes of `last`'s header. No
/// link header.
pub fn padded_ipv6(net: u8, first: u8, hops: usize, last: u8) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((hops * 8 + 20) as u16).to_be_bytes());
    p.extend_from_slice(&[if hops > 0 { first } else { last }, 64]);
    for host in [1, 2] {
        p.extend_from_slice(&[0xfd, 0, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host]);
    }
    for h in 0..hops {
        let next = if h + 1 == hops { last } else { 60 };
        p.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    p.resize(p.len() + 20, 0);
    p
}

/// A random chain of `n` headers: mostly the shortest of each kind, now
/// and then a long one; AH only with `ah`.
pub fn random_chain(rng: &mut Rng, n: usize, ah: bool) -> Vec<Ext> {
    (0..n)
        .map(|_| {
            let kind = if ah {
                rng.pick(&EXTENSIONS)
            } else {
                rng.pick(&EXTENSIONS[..4])
            };
            let len = match rng.below(8) {
                0 => rng.below(256) as u8,
                1 => rng.below(4) as u8,
                // AH's smallest real size is 12 bytes (length 1).
                _ if kind == 51 => 1,
                _ => 0,
            };
            Ext { kind, len }
        })
        .collect()
}

/// A captured packet: the bytes and the length on the wire.
#[derive(Clone, Debug)]
pub struct Captured {
    pub data: Vec<u8>,
    pub wirelen: u32,
    pub what: String,
}

/// `p` whole, and cut at a random point (as a short snaplen would).
pub fn with_cut(rng: &mut Rng, p: Vec<u8>, what: String) -> Vec<Captured> {
    let wirelen = p.len() as u32;
    let cut = rng.below(p.len() as u64 + 1) as usize;
    vec![
        Captured {
            data: p[..cut].to_vec(),
            wirelen,
            what: format!("{what}, cut to {cut}"),
        },
        Captured {
            data: p,
            wirelen,
            what,
        },
    ]
}
