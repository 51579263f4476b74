//! Writing captured packets: pcap (nanosecond timestamps) and pcapng.
//!
//! Both formats are a handful of fixed blocks, written here directly so the
//! pcapng options xcap needs are exact: one Interface Description Block per
//! (interface, hook) with `if_name`, `if_description` (the hook),
//! `if_tsresol` = 9 (nanoseconds), `if_filter` (the expression) and the
//! snap length; Enhanced Packet Blocks with `epb_flags` (direction) and, for
//! XDP, `epb_verdict` (the XDP action xcap's program returned).

use std::io::{self, Write};

use crate::{Direction, HookPoint, Packet};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_LINUX_SLL2: Linux cooked v2, what tcpdump `-i any` writes.
pub const LINKTYPE_LINUX_SLL2: u16 = 276;
/// Its header's length, in place of the 14 bytes of the Ethernet header.
const SLL2_LEN: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    /// pcap in LINUX_SLL2, each packet naming its interface (`-i any`).
    PcapCooked,
    Pcapng,
}

/// One pcapng interface: an interface seen through one hook.
#[derive(Clone, Debug)]
pub struct InterfaceDesc {
    pub name: String,
    pub ifindex: u32,
    pub hook: HookPoint,
    /// e.g. "xdp (native)", "tc".
    pub description: String,
    /// A loopback device (ARPHRD_LOOPBACK in LINUX_SLL2 records).
    pub loopback: bool,
}

pub struct Writer<W: Write> {
    out: W,
    format: Format,
    interfaces: Vec<InterfaceDesc>,
    snaplen: u32,
    filter: String,
}

const XDP_PASS: u64 = 2;

impl<W: Write> Writer<W> {
    /// Writes the file header (pcap) or the section header and every
    /// interface block (pcapng).
    pub fn new(
        mut out: W,
        format: Format,
        snaplen: u32,
        filter: &str,
        interfaces: Vec<InterfaceDesc>,
    ) -> io::Result<Self> {
        match format {
            Format::Pcap | Format::PcapCooked => {
                let linktype = match format {
                    Format::PcapCooked => LINKTYPE_LINUX_SLL2,
                    _ => LINKTYPE_ETHERNET,
                };
                let mut h = Vec::with_capacity(24);
                h.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond pcap
                h.extend_from_slice(&2u16.to_le_bytes());
                h.extend_from_slice(&4u16.to_le_bytes());
                h.extend_from_slice(&0i32.to_le_bytes());
                h.extend_from_slice(&0u32.to_le_bytes());
                h.extend_from_slice(&snaplen.to_le_bytes());
                h.extend_from_slice(&(linktype as u32).to_le_bytes());
                out.write_all(&h)?;
            }
            Format::Pcapng => {
                section_header(&mut out)?;
                for i in &interfaces {
                    interface_block(&mut out, i, snaplen, filter)?;
                }
            }
        }
        Ok(Writer {
            out,
            format,
            interfaces,
            snaplen,
            filter: filter.to_owned(),
        })
    }

    /// Whether packets of (`ifindex`, `hook`) have an interface.
    pub fn knows(&self, ifindex: u32, hook: HookPoint) -> bool {
        self.interfaces
            .iter()
            .any(|i| i.ifindex == ifindex && i.hook == hook)
    }

    /// An interface that appeared during the capture (`-i any`): in
    /// pcapng, its interface block, before its first packet.
    pub fn add_interface(&mut self, desc: InterfaceDesc) -> io::Result<()> {
        if self.format == Format::Pcapng {
            interface_block(&mut self.out, &desc, self.snaplen, &self.filter)?;
        }
        self.interfaces.push(desc);
        Ok(())
    }

    /// Writes one packet; pcapng gives it `comment` (pcap has no place
    /// for one).
    pub fn write(&mut self, p: &Packet, comment: Option<&str>) -> io::Result<()> {
        let caplen = p.data.len() as u32;
        match self.format {
            Format::Pcap => {
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&((p.ts_ns / 1_000_000_000) as u32).to_le_bytes());
                h[4..8].copy_from_slice(&((p.ts_ns % 1_000_000_000) as u32).to_le_bytes());
                h[8..12].copy_from_slice(&caplen.to_le_bytes());
                h[12..16].copy_from_slice(&p.wirelen.to_le_bytes());
                self.out.write_all(&h)?;
                self.out.write_all(&p.data)?;
            }
            Format::PcapCooked => self.write_cooked(p)?,
            Format::Pcapng => {
                let id = self
                    .interfaces
                    .iter()
                    .position(|i| i.ifindex == p.ifindex && i.hook == p.hook)
                    .unwrap_or(0) as u32;
                let mut body = Vec::with_capacity(p.data.len() + 64);
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(&((p.ts_ns >> 32) as u32).to_le_bytes());
                body.extend_from_slice(&(p.ts_ns as u32).to_le_bytes());
                body.extend_from_slice(&caplen.to_le_bytes());
                body.extend_from_slice(&p.wirelen.to_le_bytes());
                body.extend_from_slice(&p.data);
                pad4(&mut body);
                let dir: u32 = match p.direction {
                    Direction::In => 1,
                    Direction::Out => 2,
                };
                if let Some(text) = comment {
                    option(&mut body, 1, text.as_bytes()); // opt_comment
                }
                option(&mut body, 2, &dir.to_le_bytes()); // epb_flags
                if p.hook == HookPoint::Xdp {
                    // epb_verdict: type 2 = Linux eBPF XDP, then the action.
                    let mut v = vec![2u8];
                    v.extend_from_slice(&XDP_PASS.to_le_bytes());
                    option(&mut body, 7, &v);
                }
                end_options(&mut body);
                block(&mut self.out, 6, &body)?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// A LINUX_SLL2 record, as libpcap's `any` writes it: the Ethernet
    /// header becomes the cooked header (protocol, ifindex, ARPHRD type,
    /// packet type, source address); a VLAN tag stays after it.
    fn write_cooked(&mut self, p: &Packet) -> io::Result<()> {
        let data = &p.data[..];
        let (protocol, source, payload) = match data.len() {
            14.. => (&data[12..14], &data[6..12], &data[14..]),
            _ => (&[0u8, 0][..], &[0u8; 6][..], data),
        };
        let loopback = self
            .interfaces
            .iter()
            .any(|i| i.ifindex == p.ifindex && i.loopback);
        let arphrd: u16 = if loopback { 772 } else { 1 };
        // PACKET_OUTGOING for what left; else the skb's type.
        let packet_type = match p.direction {
            Direction::Out => 4,
            Direction::In => p.pkt_type,
        };
        let caplen = (payload.len() + SLL2_LEN) as u32;
        let wirelen = p.wirelen + (SLL2_LEN as u32) - (data.len() - payload.len()) as u32;
        let mut h = [0u8; 16 + SLL2_LEN];
        h[0..4].copy_from_slice(&((p.ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((p.ts_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&wirelen.to_le_bytes());
        let sll = &mut h[16..];
        sll[0..2].copy_from_slice(protocol);
        sll[4..8].copy_from_slice(&p.ifindex.to_be_bytes());
        sll[8..10].copy_from_slice(&arphrd.to_be_bytes());
        sll[10] = packet_type;
        sll[11] = 6;
        sll[12..18].copy_from_slice(source);
        self.out.write_all(&h)?;
        self.out.write_all(payload)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A pcapng Interface Description Block for `i`.
fn interface_block(
    out: &mut impl Write,
    i: &InterfaceDesc,
    snaplen: u32,
    filter: &str,
) -> io::Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&snaplen.to_le_bytes());
    option(&mut body, 2, i.name.as_bytes()); // if_name
    option(&mut body, 3, i.description.as_bytes()); // if_description
    option(&mut body, 9, &[9]); // if_tsresol: 10^-9
    let mut f = vec![0u8]; // if_filter: libpcap filter string
    f.extend_from_slice(filter.as_bytes());
    option(&mut body, 11, &f);
    end_options(&mut body);
    block(out, 1, &body)
}

/// The pcapng Section Header Block (version 1.0, section length unknown)
/// naming xcap and the OS; live and tracing pcapng files start with the
/// same one.
pub(crate) fn section_header(out: &mut impl Write) -> io::Result<()> {
    let mut opts = Vec::new();
    option(
        &mut opts,
        4,
        format!("xcap {}", env!("CARGO_PKG_VERSION")).as_bytes(),
    ); // shb_userappl
    option(&mut opts, 3, os_name().as_bytes()); // shb_os
    end_options(&mut opts);
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes()); // byte-order magic
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    body.extend_from_slice(&opts);
    block(out, 0x0a0d_0d0a, &body)
}

pub(crate) fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

pub(crate) fn option(v: &mut Vec<u8>, code: u16, value: &[u8]) {
    v.extend_from_slice(&code.to_le_bytes());
    v.extend_from_slice(&(value.len() as u16).to_le_bytes());
    v.extend_from_slice(value);
    pad4(v);
}

pub(crate) fn end_options(v: &mut Vec<u8>) {
    v.extend_from_slice(&[0, 0, 0, 0]);
}

pub(crate) fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&total.to_le_bytes());
    out.write_all(&b)
}

pub(crate) fn os_name() -> String {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid utsname buffer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "Linux".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&u.sysname), field(&u.release))
}
