//! Test frames (Ethernet, no FCS, padded to 60 bytes).

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(80);
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 header (`options` 4-byte words of NOPs) and `payload`.
fn ipv4(f: &mut Vec<u8>, src: [u8; 4], dst: [u8; 4], proto: u8, options: usize, payload: &[u8]) {
    let hl = 20 + options * 4;
    let total = (hl + payload.len()) as u16;
    f.push(0x40 | (hl / 4) as u8);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend(std::iter::repeat_n(1u8, options * 4));
    f.extend_from_slice(payload);
}

pub fn tcp_hdr(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

pub fn udp_hdr(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, 0);
    u
}

pub fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = eth(0x0800);
    ipv4(&mut f, src, dst, 6, 0, &tcp_hdr(sport, dport, flags));
    pad(f)
}

pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = eth(0x0800);
    ipv4(&mut f, src, dst, 17, 0, &udp_hdr(sport, dport, 8));
    pad(f)
}

/// UDP over IPv4 with one 4-byte option word (IHL 6).
pub fn udp4_opt(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = eth(0x0800);
    ipv4(&mut f, src, dst, 17, 1, &udp_hdr(sport, dport, 8));
    pad(f)
}

pub fn icmp4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut f = eth(0x0800);
    ipv4(&mut f, src, dst, 1, 0, &[8, 0, 0, 0, 0, 1, 0, 1]);
    pad(f)
}

/// TCP over IPv4 behind one 802.1Q tag.
pub fn vlan_tcp4(
    vid: u16,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
    let mut f = eth(0x8100);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    ipv4(&mut f, src, dst, 6, 0, &tcp_hdr(sport, dport, flags));
    pad(f)
}

/// TCP over IPv6 behind a hop-by-hop options header.
pub fn tcp6_hbh(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = eth(0x86dd);
    let tcp = tcp_hdr(sport, dport, flags);
    let plen = (8 + tcp.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&plen.to_be_bytes());
    f.push(0); // next header: hop-by-hop
    f.push(64);
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = 1;
    f.extend_from_slice(&a);
    a[15] = 2;
    f.extend_from_slice(&a);
    f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // next: TCP, PadN
    f.extend_from_slice(&tcp);
    pad(f)
}
