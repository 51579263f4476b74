//! How a packet is printed without `-w`, with tcpdump's options: the time
//! stamp (`-t` .. `-ttttt`), the link-level header (`-e`), the one-line
//! summary, and the packet's bytes after it (`-x`, `-X`, `-A`, doubled to
//! start at the link header instead of the network header); `-l` writes
//! each packet out at once. The dumps are
//! tcpdump's to the byte; the summary is ours (`summary.rs`).

use std::borrow::Cow;
use std::fmt::Write;

use clap::{ArgAction, Args};

use crate::out::local_time;

/// tcpdump's printing flags.
#[derive(Debug, Args, Default, Clone)]
pub struct PrintArgs {
    /// Time stamps: -t none, -tt seconds since 1970, -ttt time since the
    /// previous packet, -tttt date and time, -ttttt time since the first
    /// packet (as tcpdump)
    #[arg(short = 't', action = ArgAction::Count)]
    pub time: u8,

    /// Print the link-level header on each line (MAC addresses, ethertype)
    #[arg(short = 'e')]
    pub link_header: bool,

    /// Print each packet's bytes in hex after its line, from the network
    /// header (-xx: from the link header)
    #[arg(short = 'x', action = ArgAction::Count)]
    pub hex: u8,

    /// Print each packet's bytes in hex and ASCII after its line, from the
    /// network header (-XX: from the link header)
    #[arg(short = 'X', action = ArgAction::Count)]
    pub hex_ascii: u8,

    /// Print each packet's bytes in ASCII after its line, from the network
    /// header (-AA: from the link header)
    #[arg(short = 'A', action = ArgAction::Count)]
    pub ascii: u8,

    /// Line-buffered output: each packet's lines are written out at once
    /// (without it, a batch at a time), for `xcap -l ... | grep`
    #[arg(short = 'l')]
    pub line_buffered: bool,
}

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
    fn header_len(self, data: &[u8]) -> usize {
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
    fn as_ethernet<'a>(self, data: &'a [u8], wirelen: u32) -> Option<(Cow<'a, [u8]>, u32)> {
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

/// Time stamps as `-t` asks, keeping what the relative styles need.
#[derive(Default)]
pub struct Clock {
    first: Option<(i64, i64)>,
    previous: Option<(i64, i64)>,
}

impl Clock {
    /// The time stamp and the space after it ("" with -t).
    pub fn stamp(&mut self, style: u8, secs: i64, usecs: i64) -> String {
        let first = *self.first.get_or_insert((secs, usecs));
        let previous = self
            .previous
            .replace((secs, usecs))
            .unwrap_or((secs, usecs));
        // tcpdump leads a time difference with its sign, a space if none.
        let since = |(s, u): (i64, i64)| {
            let d = (secs - s) * 1_000_000 + (usecs - u);
            let sign = if d < 0 { '-' } else { ' ' };
            let (s, u) = (d.abs() / 1_000_000, d.abs() % 1_000_000);
            format!(
                "{sign}{:02}:{:02}:{:02}.{u:06} ",
                s / 3600,
                s % 3600 / 60,
                s % 60
            )
        };
        match style {
            0 => format!("{} ", local_time(secs, usecs)),
            1 => String::new(),
            2 => format!("{secs}.{usecs:06} "),
            3 => since(previous),
            4 => format!("{} ", local_date_time(secs, usecs)),
            _ => since(first),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS.uuuuuu` in local time (tcpdump's -tttt).
fn local_date_time(secs: i64, usecs: i64) -> String {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`; a zeroed tm is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm).is_null() } {
        return format!("{secs}.{usecs:06}");
    }
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}.{usecs:06}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The summary, after the link-level header with `-e`.
pub fn summary(p: &PrintArgs, link: Link, data: &[u8], wirelen: u32, quiet: bool) -> String {
    let Some((frame, frame_len)) = link.as_ethernet(data, wirelen) else {
        return format!("length {wirelen}");
    };
    let text = crate::summary::summary(&frame, frame_len, quiet);
    if !p.link_header || link != Link::Ethernet || data.len() < 14 {
        return text;
    }
    let mac = |m: &[u8]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let ethertype = u16::from_be_bytes([data[12], data[13]]);
    let mut s = format!("{} > {}, ", mac(&data[6..12]), mac(&data[0..6]));
    if ethertype <= 1500 {
        let _ = write!(s, "802.3, length {wirelen}: {text}");
        return s;
    }
    let _ = write!(
        s,
        "ethertype {} (0x{ethertype:04x}), length {wirelen}: ",
        ethertype_name(ethertype)
    );
    // The ethertype says what follows: tcpdump then leaves out the
    // protocol's own prefix.
    let text = ["IP6 ", "IP ", "ARP, "]
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .unwrap_or(&text);
    s.push_str(text);
    s
}

/// tcpdump's names for common ethertypes.
fn ethertype_name(t: u16) -> &'static str {
    match t {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x86dd => "IPv6",
        0x8100 => "802.1Q",
        0x88a8 => "802.1Q-QinQ",
        0x9100 => "802.1Q-9100",
        0x8035 => "Reverse ARP",
        0x8847 => "MPLS unicast",
        0x8848 => "MPLS multicast",
        0x8863 => "PPPoE D",
        0x8864 => "PPPoE S",
        0x888e => "EAPOL",
        0x88cc => "LLDP",
        0x88f7 => "PTP",
        0x8906 => "FCoE",
        _ => "Unknown",
    }
}

/// Appends the `-x`/`-X`/`-A` dump of `data` (the captured bytes) to
/// `line`, as tcpdump prints it after a packet's line.
pub fn append_dump(p: &PrintArgs, link: Link, data: &[u8], line: &mut String) {
    let (level, print): (u8, fn(&[u8], &mut String)) = if p.hex_ascii > 0 {
        (p.hex_ascii, hex_and_ascii)
    } else if p.hex > 0 {
        (p.hex, hex)
    } else if p.ascii > 0 {
        (p.ascii, ascii)
    } else {
        return;
    };
    if level > 1 {
        print(data, line);
    } else if let Some(rest) = data.get(link.header_len(data)..).filter(|r| !r.is_empty()) {
        // Nothing at all when the capture ends within the link header.
        print(rest, line);
    }
}

/// What tcpdump prints as itself in ASCII dumps.
fn graphic(b: u8) -> bool {
    b > 0x20 && b <= 0x7e
}

/// tcpdump's `hex_and_ascii_print`: 16 bytes a line, `\n\t0xOFFS:`, the
/// bytes in groups of two padded to 40 columns, two spaces, the ASCII.
fn hex_and_ascii(data: &[u8], out: &mut String) {
    for (n, chunk) in data.chunks(16).enumerate() {
        let mut hex = String::new();
        let mut text = String::new();
        for pair in chunk.chunks(2) {
            hex.push(' ');
            for &b in pair {
                let _ = write!(hex, "{b:02x}");
                text.push(if graphic(b) { b as char } else { '.' });
            }
        }
        let _ = write!(out, "\n\t0x{:04x}: {hex:<40}  {text}", n * 16);
    }
}

/// tcpdump's `hex_print`: the same lines without padding or ASCII.
fn hex(data: &[u8], out: &mut String) {
    for (n, chunk) in data.chunks(16).enumerate() {
        let _ = write!(out, "\n\t0x{:04x}: ", n * 16);
        for pair in chunk.chunks(2) {
            out.push(' ');
            for &b in pair {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
}

/// tcpdump's `ascii_print`: the bytes on a new line, printable ones,
/// tabs, spaces and newlines as themselves, others as `.`; a carriage
/// return only when a newline does not follow it.
fn ascii(data: &[u8], out: &mut String) {
    out.push('\n');
    for (i, &b) in data.iter().enumerate() {
        let rest = &data[i + 1..];
        if b == b'\r' {
            if rest.len() > 1 && rest[0] != b'\n' {
                out.push('.');
            }
        } else if graphic(b) || matches!(b, b'\t' | b' ' | b'\n') {
            out.push(b as char);
        } else {
            out.push('.');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_ascii_lines_are_tcpdumps() {
        let data: Vec<u8> = (0x41..0x41 + 19).collect();
        let mut s = String::new();
        hex_and_ascii(&data, &mut s);
        assert_eq!(
            s,
            "\n\t0x0000:  4142 4344 4546 4748 494a 4b4c 4d4e 4f50  ABCDEFGHIJKLMNOP\
             \n\t0x0010:  5152 53                                  QRS"
        );
        let mut s = String::new();
        hex(&data, &mut s);
        assert_eq!(
            s,
            "\n\t0x0000:  4142 4344 4546 4748 494a 4b4c 4d4e 4f50\n\t0x0010:  5152 53"
        );
    }

    #[test]
    fn relative_time_stamps() {
        let mut c = Clock::default();
        assert_eq!(c.stamp(3, 100, 999_999), " 00:00:00.000000 ");
        assert_eq!(c.stamp(3, 101, 1), " 00:00:00.000002 ");
        assert_eq!(c.stamp(5, 3701, 1), " 01:00:00.000002 ");
        assert_eq!(c.stamp(3, 3700, 0), "-00:00:01.000001 ");
        assert_eq!(c.stamp(2, 5, 7), "5.000007 ");
        assert_eq!(c.stamp(1, 5, 7), "");
    }

    #[test]
    fn vlan_tags_are_part_of_the_link_header() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00, 0x45]);
        assert_eq!(Link::Ethernet.header_len(&f), 18);
        assert_eq!(Link::Raw.header_len(&f), 0);
    }
}
