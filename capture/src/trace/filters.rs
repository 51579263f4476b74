//! The filter, compiled for each link type a tracing hook may see.

use capture_abi::trace::{STUB_L2, STUB_L3};
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};

use super::{LinkType, TraceConfig};
use crate::{programs, Error};

/// The filter for one link type; `None` when libpcap refuses the expression
/// for that link type (e.g. `ether host` on RAW): such packets never match.
pub(super) fn filter_for(
    expr: &str,
    dlt: i32,
    snaplen: u32,
) -> Result<Vec<cbpf2ebpf::cbpf::Insn>, String> {
    libpcap::compile_with(expr, dlt, snaplen, true, 0).map_err(|e| e.message)
}

/// The filters, compiled by libpcap and translated in probe mode.
pub(super) struct Compiled {
    /// Spliced into the capture object.
    pub(super) elf: Vec<u8>,
    /// Their bodies, inlined where the programs call them (own loader).
    pub(super) bodies: Vec<Vec<cbpf2ebpf::ebpf::Insn>>,
    /// (link type, cBPF, eBPF instructions), for `-v`.
    pub(super) sizes: Vec<(LinkType, usize, usize)>,
}

/// EN10MB for packets with a MAC header, RAW without.
pub(super) fn compile_filters(cfg: &TraceConfig) -> Result<Compiled, Error> {
    // Filters: EN10MB for packets with a MAC header, RAW without.
    let l2 = filter_for(&cfg.expression, libpcap::DLT_EN10MB, cfg.snaplen);
    let l3 = filter_for(&cfg.expression, libpcap::DLT_RAW, cfg.snaplen);
    let (l2, l3) = match (l2, l3) {
        (Err(e), Err(_)) => return Err(Error::Filter(e)),
        (a, b) => (
            a.unwrap_or_else(|_| vec![cbpf2ebpf::cbpf::Insn::new(0x06, 0, 0, 0)]),
            b.unwrap_or_else(|_| vec![cbpf2ebpf::cbpf::Insn::new(0x06, 0, 0, 0)]),
        ),
    };
    let opts = Options {
        mode: Mode::Probe,
        hook: Hook::None,
        gotol: bpf_sys::kernel_has_gotol(),
        ..Options::default()
    };
    let tr = |p: &[cbpf2ebpf::cbpf::Insn]| {
        translate(p, &opts)
            .map(|t| t.insns)
            .map_err(|e| Error::Translate {
                hook: "tracing (probe mode)",
                message: e.to_string(),
            })
    };
    let f2 = tr(&l2)?;
    let f3 = tr(&l3)?;
    let sizes = vec![
        (LinkType::Ethernet, l2.len(), f2.len()),
        (LinkType::Raw, l3.len(), f3.len()),
    ];
    let spliced = programs::splice(&[(STUB_L2, &f2[..]), (STUB_L3, &f3[..])])?;

    Ok(Compiled {
        elf: spliced.elf,
        bodies: vec![f2, f3],
        sizes,
    })
}
