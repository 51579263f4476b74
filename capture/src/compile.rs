//! The filter, compiled as tcpdump compiles it for a live capture, and
//! translated for each hook.

use cbpf2ebpf::cbpf::{ancillary, Insn};
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};

use crate::Error;

/// What libpcap made of the expression.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub cbpf: Vec<Insn>,
    /// True when compiled on a live handle of the interface (libpcap then
    /// reads VLAN tags through `vlanp`/`vlan_tci`, which works whether the
    /// tag is in the packet or out of band, as on TC); false for a dead
    /// EN10MB handle (tags in the packet only).
    pub live: bool,
}

/// Compiles `expr` on a live libpcap handle of `iface` (what tcpdump runs in
/// the kernel), or, if no handle can be opened, on a dead EN10MB handle.
pub fn compile(expr: &str, iface: &str, snaplen: u32) -> Result<Compiled, Error> {
    match live_handle(iface, snaplen) {
        Some(cap) => {
            if cap.get_datalink().0 != libpcap::DLT_EN10MB {
                return Err(Error::LinkType {
                    iface: iface.to_owned(),
                    linktype: libpcap::linktype_name(cap.get_datalink().0)
                        .unwrap_or_else(|| cap.get_datalink().0.to_string()),
                });
            }
            let prog = cap
                .compile(expr, true)
                .map_err(|e| Error::Filter(pcap_text(e)))?;
            let cbpf = prog
                .get_instructions()
                .iter()
                .map(|i| {
                    // SAFETY: BpfInstruction is repr(transparent) over
                    // libpcap's `struct bpf_insn` (u16, u8, u8, u32).
                    let raw: &[u8; 8] =
                        unsafe { &*(i as *const pcap::BpfInstruction as *const [u8; 8]) };
                    Insn::new(
                        u16::from_ne_bytes([raw[0], raw[1]]),
                        raw[2],
                        raw[3],
                        u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]),
                    )
                })
                .collect();
            Ok(Compiled { cbpf, live: true })
        }
        None => {
            let cbpf = libpcap::compile(expr, libpcap::DLT_EN10MB, snaplen)
                .map_err(|e| Error::Filter(e.message))?;
            Ok(Compiled { cbpf, live: false })
        }
    }
}

fn live_handle(iface: &str, snaplen: u32) -> Option<pcap::Capture<pcap::Active>> {
    pcap::Capture::from_device(iface)
        .ok()?
        .snaplen(snaplen as i32)
        // Only compiled on, never read: the smallest ring libpcap accepts.
        .buffer_size(64 * 1024)
        .immediate_mode(true)
        .open()
        .ok()
}

fn pcap_text(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s,
        other => other.to_string(),
    }
}

/// The program for `hook`: XDP has no out-of-band VLAN tag (the tag, when
/// the driver leaves it in the packet, is read from the packet), so the VLAN
/// ancillary loads become constants 0 there.
pub fn for_hook(c: &Compiled, hook: Hook) -> Vec<Insn> {
    if hook != Hook::Xdp {
        return c.cbpf.clone();
    }
    c.cbpf
        .iter()
        .map(|i| {
            let class_ld_abs = i.code & 0x07 == 0x00 && i.code & 0xe0 == 0x20;
            let vlan = [
                ancillary::VLAN_TAG_PRESENT,
                ancillary::VLAN_TAG,
                ancillary::VLAN_TPID,
            ];
            if class_ld_abs && vlan.iter().any(|&a| i.k == ancillary::OFF.wrapping_add(a)) {
                Insn::new(0x00, 0, 0, 0) // ld #0
            } else {
                *i
            }
        })
        .collect()
}

/// Translates for `hook` in direct packet access mode.
pub fn translate_for(c: &Compiled, hook: Hook) -> Result<Vec<cbpf2ebpf::ebpf::Insn>, Error> {
    let prog = for_hook(c, hook);
    let opts = Options {
        mode: Mode::Direct,
        hook,
        ..Options::default()
    };
    translate(&prog, &opts)
        .map(|t| t.insns)
        .map_err(|e| Error::Translate {
            hook: hook.name(),
            message: e.to_string(),
        })
}
