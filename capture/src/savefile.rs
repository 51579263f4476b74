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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
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
}

pub struct Writer<W: Write> {
    out: W,
    format: Format,
    interfaces: Vec<InterfaceDesc>,
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
            Format::Pcap => {
                let mut h = Vec::with_capacity(24);
                h.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond pcap
                h.extend_from_slice(&2u16.to_le_bytes());
                h.extend_from_slice(&4u16.to_le_bytes());
                h.extend_from_slice(&0i32.to_le_bytes());
                h.extend_from_slice(&0u32.to_le_bytes());
                h.extend_from_slice(&snaplen.to_le_bytes());
                h.extend_from_slice(&(LINKTYPE_ETHERNET as u32).to_le_bytes());
                out.write_all(&h)?;
            }
            Format::Pcapng => {
                pcapng::section_header(&mut out)?;
                for i in &interfaces {
                    pcapng::interface_description(
                        &mut out,
                        &pcapng::Interface {
                            link_type: LINKTYPE_ETHERNET,
                            snaplen,
                            name: &i.name,
                            description: &i.description,
                            filter,
                        },
                    )?;
                }
            }
        }
        Ok(Writer {
            out,
            format,
            interfaces,
        })
    }

    /// Writes one packet.
    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
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
                let mut opts: Vec<(u16, &[u8])> = vec![(pcapng::EPB_FLAGS, &flags)];
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

    pub fn into_inner(self) -> W {
        self.out
    }
}
