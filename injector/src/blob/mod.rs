//! Filters as ready-made eBPF blobs for other programs and loaders.
//!
//! [`compile_filter`] compiles a tcpdump expression (libpcap, then
//! [`cbpf2ebpf::translate`]) into a [`FilterBlob`], which gives:
//!
//! - [`FilterBlob::insns`]: the raw eBPF function, with the filter ABI of
//!   [`cbpf2ebpf`] (`r1` ctx, `r2` start, `r3` end, `r4` wire length, `r0`
//!   the cBPF result), for any loader;
//! - [`FilterBlob::function_object`]: a relocatable ELF object that exports
//!   the filter as the function `__u32 name(void *ctx, void *start, void
//!   *end, __u32 wirelen)`, for `bpftool gen object` (libbpf's static
//!   linker) and a caller that declares it `extern`;
//! - [`FilterBlob::program_object`]: a complete XDP or TC program that passes
//!   the packets the filter matches and drops the others (or the reverse),
//!   for `ip link set dev X xdp obj F.o sec xdp`, `tc filter add dev X
//!   ingress bpf da obj F.o [sec tc]` and `bpftool prog load`.
//!
//! ```no_run
//! use injector::blob::{compile_filter, BlobOptions, ProgramKind};
//! let blob = compile_filter("icmp", &BlobOptions::for_program(ProgramKind::Xdp)).unwrap();
//! std::fs::write("icmp-xdp.o", blob.program_object(ProgramKind::Xdp, false).unwrap()).unwrap();
//! let f = compile_filter("tcp port 80", &BlobOptions::default()).unwrap();
//! std::fs::write("port80.o", f.function_object("port80").unwrap()).unwrap();
//! ```
//!
//! ## The function object and its callers
//!
//! The function is a GLOBAL ELF symbol with *hidden* visibility in `.text`,
//! described by a global BTF `FUNC`. libbpf's linker needs both (it resolves
//! an `extern` only against a non-static BTF function); when libbpf loads
//! the linked object, it turns a hidden function's BTF linkage into
//! `static`, so the kernel verifies the filter in its caller's context and
//! the caller may pass packet pointers. (A default-visibility global
//! function would be verified on its own, where packet pointers are not
//! allowed as arguments: "Caller passes invalid args into func#1".)
//!
//! A caller must:
//! - declare the function with exactly this prototype (libbpf's linker
//!   compares the BTF of both sides; parameter names do not matter):
//!   `extern __u32 name(void *ctx, void *start, void *end, __u32 wirelen);`
//!   (`include/xcap_blob.h` has `XCAP_FILTER_EXTERN(name)`);
//! - be compiled with BTF (`clang -g`): the linker refuses externs without;
//! - be linked with `bpftool gen object out.o caller.o filter.o` and loaded
//!   by libbpf (bpftool, iproute2, libbpf-based loaders), which applies the
//!   hidden-to-static rule; loaders without it (aya 0.14) do not;
//! - pass the program context, packet bounds and the wire length as in the
//!   table of [`cbpf2ebpf`], and translate for the matching [`Hook`] and
//!   [`Mode`] ([`BlobOptions`]).

mod program;
mod write;

use cbpf2ebpf::ebpf::{self, Insn};
use cbpf2ebpf::{cbpf, Hook, Mode, Options, Stats};

pub use program::ProgramKind;

/// Why a blob could not be made. Each message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// libpcap refused the expression; its own message.
    #[error("{0}")]
    Compile(String),
    #[error("can't translate the filter: {0}")]
    Translate(#[from] cbpf2ebpf::Error),
    #[error("invalid function name `{0}`: use a C identifier (letters, digits, '_'; not starting with a digit), at most 127 bytes")]
    BadName(String),
    /// The blob's hook or mode does not fit the requested program.
    #[error("{0}")]
    Unsupported(String),
    #[error("can't write the ELF object: {0}")]
    Write(String),
}

/// How to compile and translate a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobOptions {
    /// The link type the expression is compiled for (DLT number, e.g.
    /// `cbpf2ebpf::libpcap::DLT_EN10MB`).
    pub linktype: i32,
    /// How the filter reads the packet.
    pub mode: Mode,
    /// Where the filter runs: decides what ancillary loads (`inbound`,
    /// `ifindex`) read. [`Hook::None`] refuses them.
    pub hook: Hook,
    /// The value the filter returns on a match (tcpdump's `-s`).
    pub snaplen: u32,
    /// libpcap's netmask (host byte order) for `ip broadcast`;
    /// `0xffffffff` (unknown) makes such filters fail to compile.
    pub netmask: u32,
    /// How loops are translated ([`cbpf2ebpf::LoopForm`]): the default
    /// callback form needs `bpf_loop` (Linux 5.17+) in the kernel that
    /// loads the blob; the unrolled form loads anywhere but is exact only
    /// within `max_loop_iterations` passes.
    pub loops: cbpf2ebpf::LoopForm,
    /// See [`cbpf2ebpf::Options::max_loop_iterations`].
    pub max_loop_iterations: u32,
    /// Far jumps as `gotol` ([`cbpf2ebpf::Options::gotol`]). Off by
    /// default: a blob is loaded by other programs, often on other
    /// machines, and jump islands load on every kernel (programs without
    /// far jumps are the same either way).
    pub gotol: bool,
}

impl Default for BlobOptions {
    /// Ethernet, direct packet access, no hook, snaplen 262144, no `gotol`.
    fn default() -> Self {
        BlobOptions {
            linktype: 1,
            mode: Mode::Direct,
            hook: Hook::None,
            snaplen: 262_144,
            netmask: 0xffff_ffff,
            loops: cbpf2ebpf::LoopForm::Callback,
            max_loop_iterations: cbpf2ebpf::DEFAULT_LOOP_ITERATIONS,
            gotol: false,
        }
    }
}

impl BlobOptions {
    /// The defaults with the hook of `kind` ([`Hook::Xdp`],
    /// [`Hook::TcIngress`]).
    pub fn for_program(kind: ProgramKind) -> Self {
        BlobOptions {
            hook: kind.default_hook(),
            ..Default::default()
        }
    }

    fn translate_options(&self) -> Options {
        Options {
            mode: self.mode,
            hook: self.hook,
            loops: self.loops,
            max_loop_iterations: self.max_loop_iterations,
            gotol: self.gotol,
            ..Options::default()
        }
    }
}

/// A translated filter, ready to be written out in several forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterBlob {
    insns: Vec<Insn>,
    /// Where the loop callback starts in `insns`, if there is one.
    callback: Option<usize>,
    mode: Mode,
    hook: Hook,
    source: String,
    stats: Stats,
}

/// Compiles a tcpdump expression as tcpdump does (optimised, with
/// `opts.netmask`) and translates it.
#[cfg(feature = "libpcap")]
pub fn compile_filter(expr: &str, opts: &BlobOptions) -> Result<FilterBlob, BlobError> {
    let prog =
        cbpf2ebpf::libpcap::compile_with(expr, opts.linktype, opts.snaplen, true, opts.netmask)
            .map_err(|e| BlobError::Compile(e.message))?;
    let mut blob = FilterBlob::from_cbpf(&prog, opts)?;
    blob.source = expr.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(blob)
}

impl FilterBlob {
    /// Translates a ready cBPF program (`linktype`, `snaplen` and `netmask`
    /// of `opts` are not used: they are part of the program).
    pub fn from_cbpf(prog: &[cbpf::Insn], opts: &BlobOptions) -> Result<Self, BlobError> {
        let t = cbpf2ebpf::translate(prog, &opts.translate_options())?;
        Ok(FilterBlob {
            insns: t.insns,
            callback: t.callback,
            mode: opts.mode,
            hook: opts.hook,
            source: format!("cBPF program of {} instructions", prog.len()),
            stats: t.stats,
        })
    }

    /// The filter function, entry first (the ABI of [`cbpf2ebpf`]), and
    /// its loop callback after it if it has one (see
    /// [`cbpf2ebpf::Translation::callback`]).
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Where the loop callback starts in [`FilterBlob::insns`].
    pub fn callback(&self) -> Option<usize> {
        self.callback
    }

    /// The instructions as bytes (`struct bpf_insn[]`, little-endian).
    pub fn bytes(&self) -> Vec<u8> {
        ebpf::to_bytes(&self.insns)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The expression (words joined by single spaces), or a description of
    /// the cBPF program; written into the objects' BTF line info, so
    /// `bpftool prog dump xlated` shows it.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A relocatable eBPF object (ELF, `ET_REL`, little-endian) whose
    /// `.text` holds the filter as the function `name`: a GLOBAL, hidden
    /// symbol with a global BTF `FUNC` `__u32 name(void *ctx, void *start,
    /// void *end, __u32 wirelen)`, a func_info and a line_info record. See
    /// the [module documentation](self) for what callers must do.
    pub fn function_object(&self, name: &str) -> Result<Vec<u8>, BlobError> {
        check_name(name)?;
        write::function_object(self, name)
    }

    /// A complete program object: `kind`'s section(s) hold a program that
    /// calls the filter (a static function `xcap_filter` in `.text`) with
    /// the packet of its context and returns pass (`XDP_PASS`, `TC_ACT_OK`)
    /// when the filter returns non-zero and drop (`XDP_DROP`,
    /// `TC_ACT_SHOT`) otherwise; `invert` swaps the two. With a `license`
    /// ("GPL"), `.BTF` and `.BTF.ext`.
    ///
    /// [`ProgramKind::Xdp`]: section `xdp`, program `xcap_xdp`; needs
    /// [`Mode::Direct`] and [`Hook::Xdp`] or [`Hook::None`]; the wire length
    /// is `bpf_xdp_get_buff_len()` (Linux 5.18+).
    ///
    /// [`ProgramKind::Tc`]: the same classifier twice, `xcap_tc` in section
    /// `tc` and `xcap_tc_cls` in `classifier` (iproute2's default section, so
    /// `tc ... bpf da obj F.o` works without `sec`); needs [`Mode::Direct`]
    /// (reads the linear part of the skb) or [`Mode::Skb`], and a TC hook or
    /// [`Hook::None`]; the wire length is `skb->len`.
    pub fn program_object(&self, kind: ProgramKind, invert: bool) -> Result<Vec<u8>, BlobError> {
        kind.check(self.mode, self.hook)?;
        write::program_object(self, kind, invert)
    }
}

/// Longest accepted function name (libbpf and the kernel take longer ones,
/// but BTF and C identifiers of this size are plenty).
pub const MAX_NAME_LEN: usize = 127;

fn check_name(name: &str) -> Result<(), BlobError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(BlobError::BadName(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("xcap_filter").is_ok());
        assert!(check_name("_f1").is_ok());
        for bad in ["", "1f", "a-b", "a b", "é", &"a".repeat(128)] {
            assert!(
                matches!(check_name(bad), Err(BlobError::BadName(_))),
                "{bad}"
            );
        }
    }
}
