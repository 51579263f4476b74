//! How a packet is printed without `-w`, with tcpdump's options: the time
//! stamp (`-t` .. `-ttttt`), the link-level header (`-e`), the one-line
//! summary, and the packet's bytes after it (`-x`, `-X`, `-A`, doubled to
//! start at the link header instead of the network header). The dumps are
//! tcpdump's to the byte; the summary is ours (`summary.rs`). A source
//! says what its lines carry besides ([`Line`]); the printer
//! (`sink::Printer`) lays them out.

use std::borrow::Cow;
use std::fmt::Write;

use crate::link::Link;
use crate::out::local_time;

/// How packets are printed: tcpdump's `-t`, `-e`, `-x`/`-X`/`-A` and `-q`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub stamps: Stamps,
    /// `-e`: the link-level header before the summary.
    pub link_header: bool,
    /// The packet's bytes after its line.
    pub dump: Option<Dump>,
    /// `-q`: protocol and length only for TCP and UDP.
    pub quiet: bool,
}

/// The time stamp at the start of each line (tcpdump's `-t` .. `-ttttt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stamps {
    /// `HH:MM:SS.uuuuuu`, local time (no `-t`).
    #[default]
    LocalTime,
    /// `-t`.
    None,
    /// `-tt`: seconds since 1970.
    Epoch,
    /// `-ttt`: since the previous packet.
    SincePrevious,
    /// `-tttt`: date and local time.
    DateTime,
    /// `-ttttt`: since the first packet.
    SinceFirst,
}

/// `-x`, `-X` or `-A`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dump {
    pub kind: DumpKind,
    /// Doubled (`-xx`, `-XX`, `-AA`): from the link-level header instead of
    /// the network header.
    pub from_link_header: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpKind {
    Hex,
    HexAscii,
    Ascii,
}

/// A packet as its source describes its line: the printer puts the time
/// stamp first, the summary between [`before`](Line::before) and
/// [`after`](Line::after), and the dump and a newline after them.
pub struct Line<'p> {
    pub secs: i64,
    pub usecs: i64,
    pub link: Link,
    /// The captured bytes (as a source shows them: `-i any` makes them
    /// cooked).
    pub data: Cow<'p, [u8]>,
    pub wirelen: u32,
    pub before: String,
    pub after: String,
    /// Lines of their own under the packet's, each with its newline.
    pub below: String,
}

impl<'p> Line<'p> {
    /// A bare line: the time stamp, the summary and the dump.
    pub fn new(
        secs: i64,
        usecs: i64,
        link: Link,
        data: impl Into<Cow<'p, [u8]>>,
        wirelen: u32,
    ) -> Self {
        Line {
            secs,
            usecs,
            link,
            data: data.into(),
            wirelen,
            before: String::new(),
            after: String::new(),
            below: String::new(),
        }
    }

    /// A bare line for a kernel time stamp (ns since the epoch).
    pub fn at_ns(ts_ns: u64, link: Link, data: impl Into<Cow<'p, [u8]>>, wirelen: u32) -> Self {
        let secs = (ts_ns / 1_000_000_000) as i64;
        let usecs = ((ts_ns % 1_000_000_000) / 1000) as i64;
        Line::new(secs, usecs, link, data, wirelen)
    }

    /// The text, newlines included.
    pub fn render(&self, style: &Style, clock: &mut Clock) -> String {
        let mut text = clock.stamp(style.stamps, self.secs, self.usecs);
        text.push_str(&self.before);
        text.push_str(&summary(style, self.link, &self.data, self.wirelen));
        text.push_str(&self.after);
        append_dump(style, self.link, &self.data, &mut text);
        text.push('\n');
        text.push_str(&self.below);
        text
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
    pub fn stamp(&mut self, stamps: Stamps, secs: i64, usecs: i64) -> String {
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
        match stamps {
            Stamps::LocalTime => format!("{} ", local_time(secs, usecs)),
            Stamps::None => String::new(),
            Stamps::Epoch => format!("{secs}.{usecs:06} "),
            Stamps::SincePrevious => since(previous),
            Stamps::DateTime => format!("{} ", local_date_time(secs, usecs)),
            Stamps::SinceFirst => since(first),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS.uuuuuu` in local time (tcpdump's -tttt).
fn local_date_time(secs: i64, usecs: i64) -> String {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`; a zeroed tm is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to locals, valid for the call.
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
fn summary(style: &Style, link: Link, data: &[u8], wirelen: u32) -> String {
    let Some((frame, frame_len)) = link.as_ethernet(data, wirelen) else {
        return format!("length {wirelen}");
    };
    let text = crate::summary::summary(&frame, frame_len, style.quiet);
    if !style.link_header {
        return text;
    }
    let header = match link {
        Link::Ethernet if data.len() >= 14 => ethernet_header(data, wirelen),
        Link::LinuxSll2 if data.len() >= 20 => cooked_header(data, wirelen, style.quiet),
        _ => return text,
    };
    let Some(header) = header else {
        return text;
    };
    // The ethertype says what follows: tcpdump then leaves out the
    // protocol's own prefix.
    let text = ["IP6 ", "IP ", "ARP, "]
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .unwrap_or(&text);
    header + text
}

fn mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `-e` on Ethernet: `SRC > DST, ethertype NAME (0xTYPE), length N: `;
/// `None` (the whole line written) for an 802.3 frame.
fn ethernet_header(data: &[u8], wirelen: u32) -> Option<String> {
    let ethertype = u16::from_be_bytes([data[12], data[13]]);
    let s = format!("{} > {}, ", mac(&data[6..12]), mac(&data[0..6]));
    if ethertype <= 1500 {
        return Some(s + &format!("802.3, length {wirelen}: "));
    }
    Some(s + &ethertype_words(ethertype, wirelen))
}

/// `-e` on Linux cooked v2 (tcpdump's `-i any`): `ifindex N SRC
/// ethertype NAME (0xTYPE), length N: `, the length counting the cooked
/// header; with `-q` the ethertype and length are left out.
fn cooked_header(data: &[u8], wirelen: u32, quiet: bool) -> Option<String> {
    let ifindex = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let mut s = format!("ifindex {ifindex} ");
    if data[11] == 6 {
        let _ = write!(s, "{} ", mac(&data[12..18]));
    }
    if quiet {
        return Some(s);
    }
    let protocol = u16::from_be_bytes([data[0], data[1]]);
    match protocol {
        0x0001 => s.push_str("802.3"),
        0x0004 => s.push_str("802.2"),
        0..=1500 => {
            let _ = write!(s, "ethertype Unknown (0x{protocol:04x})");
        }
        _ => return Some(s + &ethertype_words(protocol, wirelen)),
    }
    let _ = write!(s, ", length {wirelen}: ");
    Some(s)
}

/// `ethertype NAME (0xTYPE), length N: `
fn ethertype_words(ethertype: u16, wirelen: u32) -> String {
    format!(
        "ethertype {} (0x{ethertype:04x}), length {wirelen}: ",
        ethertype_name(ethertype)
    )
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
fn append_dump(style: &Style, link: Link, data: &[u8], line: &mut String) {
    let Some(dump) = style.dump else {
        return;
    };
    let print: fn(&[u8], &mut String) = match dump.kind {
        DumpKind::HexAscii => hex_and_ascii,
        DumpKind::Hex => hex,
        DumpKind::Ascii => ascii,
    };
    if dump.from_link_header {
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
        let previous = Stamps::SincePrevious;
        assert_eq!(c.stamp(previous, 100, 999_999), " 00:00:00.000000 ");
        assert_eq!(c.stamp(previous, 101, 1), " 00:00:00.000002 ");
        assert_eq!(c.stamp(Stamps::SinceFirst, 3701, 1), " 01:00:00.000002 ");
        assert_eq!(c.stamp(previous, 3700, 0), "-00:00:01.000001 ");
        assert_eq!(c.stamp(Stamps::Epoch, 5, 7), "5.000007 ");
        assert_eq!(c.stamp(Stamps::None, 5, 7), "");
    }
}
