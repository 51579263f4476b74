//! What the packets printed start with: the link types xcap prints, the
//! length of their link-level header (where `-x` starts) and the
//! ethertype behind it (what the summariser is handed).

use std::borrow::Cow;

/// What the packets printed start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    /// Linux cooked capture v1 (16-byte header, protocol at 14).
    LinuxSll,
    /// Linux cooked capture v2 (20-byte header, protocol at 0).
    LinuxSll2,
    /// An IP packet, its version in its first nibble.
    Raw,
    /// BSD loopback: a 4-byte address family, in the capturing host's
    /// byte order (NULL) or in network order (LOOP).
    Null {
        network_order: bool,
    },
    /// Cisco HDLC: address, control, then an ethertype.
    CHdlc,
    /// PPP: address and control (optional), then a 1- or 2-byte protocol.
    Ppp,
    Other,
}

impl Link {
    /// The link of a libpcap DLT (as `pcap_datalink` returns it).
    pub fn from_dlt(dlt: i32) -> Link {
        match dlt {
            0 => Link::Null {
                network_order: false,
            },
            1 => Link::Ethernet,
            9 => Link::Ppp,
            104 => Link::CHdlc,
            108 => Link::Null {
                network_order: true,
            },
            113 => Link::LinuxSll,
            276 => Link::LinuxSll2,
            // DLT_RAW (12 on Linux, 14 on OpenBSD), LINKTYPE_RAW, IPV4, IPV6.
            12 | 14 | 101 | 228 | 229 => Link::Raw,
            _ => Link::Other,
        }
    }

    /// Bytes of link-level header in front of the network header, as
    /// tcpdump counts them for `-x`: for Ethernet 14, 4 more per VLAN
    /// tag, a MACsec SecTAG, and an 802.3 frame's LLC header (3 or 4
    /// bytes, 8 with SNAP).
    pub fn header_len(self, data: &[u8]) -> usize {
        let at = |i: usize| data.get(i).copied().unwrap_or(0);
        let be16 = |i: usize| u16::from_be_bytes([at(i), at(i + 1)]);
        match self {
            Link::Ethernet => {
                let mut n = 14;
                loop {
                    match be16(n - 2) {
                        0x8100 | 0x88a8 | 0x9100 | 0x9200 if data.len() >= n + 4 => n += 4,
                        // MACsec: the SecTAG (TCI and AN, SL, PN, the SCI
                        // when TCI says so), then, unless the payload is
                        // encrypted or changed, the inner ethertype.
                        0x88e5 if data.len() >= n + 6 => {
                            let tci = at(n);
                            n += 6 + if tci & 0x20 != 0 { 8 } else { 0 };
                            if tci & 0x0c != 0 || data.len() < n + 2 {
                                return n;
                            }
                            n += 2;
                        }
                        _ => break,
                    }
                }
                if be16(n - 2) > 1500 || data.len() < n + 3 {
                    return n;
                }
                match (at(n), at(n + 1), at(n + 2)) {
                    // Novell's raw 802.3: IPX right after the header.
                    (0xff, 0xff, _) => n,
                    (0xaa, 0xaa, 0x03) => n + 8,
                    // An unnumbered frame's control is one byte, others two.
                    (_, _, control) if control & 3 == 3 => n + 3,
                    _ => n + 4,
                }
            }
            Link::LinuxSll => 16,
            Link::LinuxSll2 => 20,
            Link::Null { .. } | Link::CHdlc => 4,
            Link::Ppp => {
                let n = if be16(0) == 0xff03 { 2 } else { 0 };
                // A protocol field with its low bit set is compressed to one byte.
                n + if at(n) & 1 == 1 { 1 } else { 2 }
            }
            Link::Raw | Link::Other => 0,
        }
    }

    /// The ethertype of the network-layer packet after the link header,
    /// where the link says (or implies) one.
    fn ethertype(self, data: &[u8]) -> Option<u16> {
        let at = |i: usize| data.get(i).copied();
        let be16 = |i: usize| Some(u16::from_be_bytes([at(i)?, at(i + 1)?]));
        let ip = |version: Option<u8>| match version {
            Some(6) => Some(0x86dd),
            Some(4) => Some(0x0800),
            _ => None,
        };
        match self {
            Link::LinuxSll => be16(14),
            Link::LinuxSll2 => be16(0),
            Link::CHdlc => be16(2),
            Link::Raw => Some(ip(at(0).map(|b| b >> 4)).unwrap_or(0x0800)),
            Link::Null { network_order } => {
                let b = [at(0)?, at(1)?, at(2)?, at(3)?];
                let family = if network_order {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_ne_bytes(b)
                };
                match family {
                    2 => Some(0x0800),
                    // AF_INET6 on the BSDs, macOS and Linux.
                    24 | 28 | 30 | 10 => Some(0x86dd),
                    _ => None,
                }
            }
            Link::Ppp => {
                let n = self.header_len(data);
                let protocol = if n % 2 == 1 {
                    u16::from(at(n - 1)?)
                } else {
                    be16(n - 2)?
                };
                match protocol {
                    0x0021 => Some(0x0800),
                    0x0057 => Some(0x86dd),
                    _ => None,
                }
            }
            Link::Ethernet | Link::Other => None,
        }
    }

    /// The packet as an Ethernet frame for the summariser (a made-up
    /// header where there is none), and its wire length then.
    pub fn as_ethernet<'a>(self, data: &'a [u8], wirelen: u32) -> Option<(Cow<'a, [u8]>, u32)> {
        if self == Link::Ethernet {
            return Some((Cow::Borrowed(data), wirelen));
        }
        let ethertype = self.ethertype(data)?;
        let body = data.get(self.header_len(data)..)?;
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(body);
        let wirelen = (wirelen + 14).saturating_sub((data.len() - body.len()) as u32);
        Some((Cow::Owned(frame), wirelen))
    }
}

#[cfg(test)]
mod tests {
    use super::Link;

    #[test]
    fn vlan_tags_are_part_of_the_link_header() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00, 0x45]);
        assert_eq!(Link::Ethernet.header_len(&f), 18);
        assert_eq!(Link::Raw.header_len(&f), 0);
    }
}
