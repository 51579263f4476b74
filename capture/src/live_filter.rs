//! The filter, compiled as tcpdump compiles it for a live capture, and
//! translated for each hook.

use cbpf2ebpf::cbpf::{ancillary, Insn};
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};

use crate::Error;

/// What libpcap made of the expression.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub cbpf: Vec<Insn>,
    /// Compiled on a live handle of the interface: libpcap then reads VLAN
    /// tags through `vlanp`/`vlan_tci`, which works whether the tag is in
    /// the packet or out of band, as on TC. (False only for `-i any` with no interface up.)
    pub live: bool,
}

/// Compiles `expr` as tcpdump does for a live capture on `iface`
/// ([`libpcap::compile_live`]: a live handle, netmask unknown). The
/// interface must be Ethernet-like (ARPHRD_ETHER or loopback, which
/// libpcap also calls EN10MB), as XDP and TC then see the MAC header.
pub fn compile_on_interface(expr: &str, iface: &str, snaplen: u32) -> Result<Compiled, Error> {
    let arphrd = std::fs::read_to_string(format!("/sys/class/net/{iface}/type"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    if let Some(t) = arphrd {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK
        if t != 1 && t != 772 {
            return Err(Error::LinkType {
                iface: iface.to_owned(),
                linktype: format!("ARPHRD {t}"),
            });
        }
    }
    let cbpf = libpcap::compile_live(expr, iface, snaplen).map_err(|e| Error::Filter(e.message))?;
    Ok(Compiled { cbpf, live: true })
}

/// `expr` compiled on a dead Ethernet handle: for `-i any` when no
/// interface is up to open a live one (`vlan` then tests a tag in the
/// packet, where TC has it out of band).
pub fn compile_dead(expr: &str, snaplen: u32) -> Result<Compiled, Error> {
    let cbpf = libpcap::compile(expr, libpcap::DLT_EN10MB, snaplen)
        .map_err(|e| Error::Filter(e.message))?;
    Ok(Compiled { cbpf, live: false })
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

/// Translates for `hook`: direct packet access at XDP, skb mode at TC
/// (direct reads of the linear part, `bpf_skb_load_bytes` for the rest, so
/// non-linear skbs filter as tcpdump filters them).
pub fn translate_for(c: &Compiled, hook: Hook) -> Result<Vec<cbpf2ebpf::ebpf::Insn>, Error> {
    let prog = for_hook(c, hook);
    let mode = if hook == Hook::Xdp {
        Mode::Direct
    } else {
        Mode::Skb
    };
    let opts = Options {
        mode,
        hook,
        // Far jumps as this kernel loads them.
        gotol: bpf_sys::kernel_has_gotol(),
        ..Options::default()
    };
    translate(&prog, &opts)
        .map(|t| t.insns)
        .map_err(|e| Error::Translate {
            hook: hook.name(),
            message: e.to_string(),
        })
}

/// Whether the program reads the wire length (`ld len` or `ldx len`).
pub fn reads_len(prog: &[Insn]) -> bool {
    prog.iter()
        .any(|i| matches!(i.code & 0x07, 0x00 | 0x01) && i.code & 0xe0 == 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_len_finds_ld_len_and_ldx_len_only() {
        let compile = |e: &str| libpcap::compile(e, libpcap::DLT_EN10MB, 262_144).unwrap();
        assert!(reads_len(&compile("greater 100")));
        assert!(reads_len(&compile("tcp and len < 60")));
        assert!(!reads_len(&compile("tcp port 443 and tcp[13] & 8 != 0")));
        assert!(!reads_len(&compile("ip6 protochain 6")));
        // ldx len (0x81) by hand.
        assert!(reads_len(&[
            Insn::new(0x81, 0, 0, 0),
            Insn::new(0x16, 0, 0, 0)
        ]));
    }
}
