//! Writing captured packets: pcap (nanosecond timestamps) and pcapng.
//!
//! Both formats are a handful of fixed blocks, written here directly so the
//! pcapng options xcap needs are exact: one Interface Description Block per
//! (interface, hook) with `if_name`, `if_description` (the hook),
//! `if_tsresol` = 9 (nanoseconds), `if_filter` (the expression) and the
//! snap length; Enhanced Packet Blocks with `epb_flags` (direction) and, for
//! XDP, `epb_verdict` (the XDP action xcap's program returned).

use std::io::{self, Write};

use crate::{pcapng, Direction, HookPoint, Packet};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_LINUX_SLL2: Linux cooked v2, what tcpdump `-i any` writes.
pub const LINKTYPE_LINUX_SLL2: u16 = 276;
/// Its header's length, in place of the 14 bytes of the Ethernet header.
pub const SLL2_LEN: usize = 20;

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

/// The action xcap's XDP program returns for every packet (`epb_verdict`).
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
                pcapng::section_header(&mut out)?;
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
                let flags = match p.direction {
                    Direction::In => pcapng::EPB_FLAGS_INBOUND,
                    Direction::Out => pcapng::EPB_FLAGS_OUTBOUND,
                }
                .to_le_bytes();
                let verdict = pcapng::xdp_verdict(XDP_PASS);
                let mut opts: Vec<(u16, &[u8])> = Vec::new();
                if let Some(text) = comment {
                    opts.push((pcapng::OPT_COMMENT, text.as_bytes()));
                }
                opts.push((pcapng::EPB_FLAGS, &flags));
                if p.hook == HookPoint::Xdp {
                    opts.push((pcapng::EPB_VERDICT, &verdict));
                }
                pcapng::enhanced_packet(
                    &mut self.out,
                    &pcapng::Packet {
                        interface: id,
                        ts_ns: p.ts_ns,
                        wirelen: p.wirelen,
                        data: &p.data,
                    },
                    &opts,
                )?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// A LINUX_SLL2 record, as libpcap's `any` writes it.
    fn write_cooked(&mut self, p: &Packet) -> io::Result<()> {
        let loopback = self
            .interfaces
            .iter()
            .any(|i| i.ifindex == p.ifindex && i.loopback);
        let cooked = Cooked::of(p, loopback);
        let caplen = (cooked.payload.len() + SLL2_LEN) as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((p.ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((p.ts_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&cooked.wirelen.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&cooked.header)?;
        self.out.write_all(cooked.payload)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A packet in Linux cooked v2 (LINUX_SLL2), as libpcap's `any` device
/// gives it: the Ethernet header becomes the cooked header (protocol,
/// ifindex, ARPHRD type, packet type, source address); a VLAN tag stays
/// after it. Files (`-i any` in pcap) and text lines (`-i any`) both show
/// packets this way.
pub struct Cooked<'p> {
    pub header: [u8; SLL2_LEN],
    /// What follows the Ethernet header.
    pub payload: &'p [u8],
    /// The packet's length on the wire, counted with the cooked header.
    pub wirelen: u32,
}

impl<'p> Cooked<'p> {
    /// `p` as cooked; `loopback`: its interface is a loopback device.
    pub fn of(p: &'p Packet, loopback: bool) -> Cooked<'p> {
        let data = &p.data[..];
        let (protocol, source, payload) = match data.len() {
            14.. => (&data[12..14], &data[6..12], &data[14..]),
            _ => (&[0u8, 0][..], &[0u8; 6][..], data),
        };
        let arphrd: u16 = if loopback { 772 } else { 1 };
        // PACKET_OUTGOING for what left; else the skb's type.
        let packet_type = match p.direction {
            Direction::Out => 4,
            Direction::In => p.pkt_type,
        };
        let mut header = [0u8; SLL2_LEN];
        header[0..2].copy_from_slice(protocol);
        header[4..8].copy_from_slice(&p.ifindex.to_be_bytes());
        header[8..10].copy_from_slice(&arphrd.to_be_bytes());
        header[10] = packet_type;
        header[11] = 6;
        header[12..18].copy_from_slice(source);
        Cooked {
            header,
            payload,
            wirelen: p.wirelen + (SLL2_LEN as u32) - (data.len() - payload.len()) as u32,
        }
    }
}

/// A pcapng Interface Description Block for `i`.
fn interface_block(
    out: &mut impl Write,
    i: &InterfaceDesc,
    snaplen: u32,
    filter: &str,
) -> io::Result<()> {
    pcapng::interface_description(
        out,
        &pcapng::Interface {
            link_type: LINKTYPE_ETHERNET,
            snaplen,
            name: &i.name,
            description: &i.description,
            filter,
        },
    )
}
