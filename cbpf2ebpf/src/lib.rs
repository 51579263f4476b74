//! # cbpf2ebpf
//!
//! Translates classic BPF, as libpcap compiles tcpdump expressions, into an
//! eBPF *subprogram* that returns, for every packet, exactly what libpcap's
//! interpreter (`bpf_filter()`) returns.
//!
//! ```no_run
//! use cbpf2ebpf::{libpcap, translate, Options, Mode, Hook};
//! let cbpf = libpcap::compile("tcp port 443", libpcap::DLT_EN10MB, 262144).unwrap();
//! let out = translate(&cbpf, &Options { mode: Mode::Direct, hook: Hook::Xdp, ..Options::default() }).unwrap();
//! println!("{} cBPF -> {} eBPF instructions", cbpf.len(), out.insns.len());
//! ```
//!
//! ## The filter ABI
//!
//! The output is one BPF function, meant to be called with `call` (bpf2bpf)
//! from a program, in the caller's verification context:
//!
//! | register | in | meaning |
//! |---|---|---|
//! | `r1` | ctx | the program context (`xdp_md`, `__sk_buff`); read only for ancillary loads and, in [`Mode::Skb`], by `bpf_skb_load_bytes` |
//! | `r2` | start | [`Mode::Direct`]: packet pointer to the first byte; [`Mode::Skb`]: offset of the first byte in the skb; [`Mode::Probe`]: kernel address of the first byte |
//! | `r3` | end | one past the last readable byte, in the same terms as `r2` (so `end - start` is the captured length) |
//! | `r4` | wire length | the packet's original length, the value of cBPF `len` |
//! | `r0` | out | the cBPF return value, zero-extended: 0 rejects, otherwise the snap length |
//!
//! `r1`–`r5` are clobbered, `r6`–`r9` are preserved (eBPF calling
//! convention); the function uses at most [`STACK_BYTES`] of its own stack.
//! Loads past `end` return 0 (reject), as in libpcap.
//!
//! ## The pipeline
//!
//! [`translate`] reads as its list of passes: validate the cBPF, build the
//! IR (unrolling backward jumps), simplify, place bounds checks, find loads
//! that may stay in wire byte order, lower to eBPF (zeroing only what is
//! read first), lay out jumps. Each pass lives in its own module under
//! [`passes`].

pub mod cbpf;
pub mod ebpf;
pub mod ir;
#[cfg(feature = "libpcap")]
pub mod libpcap;
pub mod passes;

mod error;
pub use error::Error;

/// Direct mode: how far `start` may lie past the packet pointer the
/// program received (an Ethernet header and VLAN tags fit).
pub const MAX_START_OFFSET: u64 = 64;

/// The most stack the translated function uses, in bytes (skb mode's copy
/// of the packet's first bytes is most of it).
pub const STACK_BYTES: usize = 240;

/// How the filter reads packet bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Direct packet access through packet pointers (XDP, TC), with bounds
    /// checks the verifier accepts. Reads at most 65280 bytes past `start`
    /// (the verifier tracks packet offsets up to 65535; `start` may lie up
    /// to [`MAX_START_OFFSET`] bytes past the program's packet pointer) and,
    /// on TC, only the linear part of the skb.
    #[default]
    Direct,
    /// `bpf_skb_load_bytes` (TC and socket filters): reads non-linear skbs.
    /// Where direct reads cannot serve (see [`Options::linear_fast_path`]),
    /// one call copies the first 128 bytes to the stack and the loads
    /// within them read the copy; the helper serves the rest.
    Skb,
    /// `bpf_probe_read_kernel` from a kernel address range (tracing hooks).
    Probe,
}

/// Where the filter runs: decides what ancillary loads (`inbound`,
/// `ifindex`, ...) read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Hook {
    /// No context: any ancillary load is a translation error.
    #[default]
    None,
    /// libpcap's interpreter on a capture file (`tcpdump -r`): an ancillary
    /// load is a load past the packet, so the filter returns 0.
    Offline,
    /// XDP: `r1` is `struct xdp_md`; every packet is incoming.
    Xdp,
    /// TC ingress: `r1` is `struct __sk_buff`.
    TcIngress,
    /// TC egress: `r1` is `struct __sk_buff`; every packet is outgoing.
    TcEgress,
    /// A socket filter: `r1` is `struct __sk_buff`.
    Socket,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::None => "no hook",
            Hook::Offline => "offline",
            Hook::Xdp => "xdp",
            Hook::TcIngress => "tc ingress",
            Hook::TcEgress => "tc egress",
            Hook::Socket => "socket filter",
        }
    }
}

/// Translation options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub hook: Hook,
    /// How many times a backward jump may be taken (each taken backward jump
    /// is one loop iteration, e.g. one IPv6 extension header for `ip6
    /// protochain`). Past it the filter returns 0.
    pub max_loop_iterations: u32,
    /// Skb mode at a TC hook (or offline): read the skb's linear part with
    /// direct packet access and call `bpf_skb_load_bytes` only past it
    /// (about 25 ns a call). Needs `r1` to be a TC `__sk_buff`; never used
    /// for [`Hook::Socket`] or [`Hook::None`].
    pub linear_fast_path: bool,
    /// Whether the kernel that loads the filter has `gotol` (`BPF_JMP32 |
    /// BPF_JA`, a 32-bit offset: Linux 6.6, and 6.1.72 on in the 6.1
    /// series). With it, a jump past the 16-bit offset (32,767
    /// instructions) becomes a `gotol`; without it, the jump goes through
    /// jump islands, chains of plain `ja`s, which every kernel loads.
    /// Programs without far jumps are the same either way. On by default
    /// (the pure translator cannot ask); xcap's loaders ask the kernel once
    /// (`bpf_sys::kernel_has_gotol`), objects for other machines leave it
    /// off.
    pub gotol: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Direct,
            hook: Hook::None,
            max_loop_iterations: DEFAULT_LOOP_ITERATIONS,
            linear_fast_path: true,
            gotol: true,
        }
    }
}

/// Default bound on taken backward jumps; see [`Options::max_loop_iterations`].
pub const DEFAULT_LOOP_ITERATIONS: u32 = 32;

/// Largest translated function, in eBPF instructions.
pub const MAX_EBPF_INSNS: usize = 1_000_000;

/// The translated filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The function body, entry first.
    pub insns: Vec<ebpf::Insn>,
    /// Sizes along the way, for `-v` output and benchmarks.
    pub stats: Stats,
}

/// Instruction counts of a translation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub cbpf_insns: usize,
    pub ir_blocks: usize,
    pub bounds_checks: usize,
    pub ebpf_insns: usize,
}

/// Translates a cBPF program into an eBPF function with the ABI above.
pub fn translate(prog: &[cbpf::Insn], opts: &Options) -> Result<Translation, Error> {
    passes::validate::run(prog)?;
    let mut func = passes::build::run(prog, opts)?;
    passes::simplify::run(&mut func, opts);
    let guards = passes::guards::run(&func, opts);
    let swaps = passes::swaps::run(&func);
    let code = passes::lower::run(&func, &guards, &swaps, opts)?;
    let insns = passes::layout::run(code, opts.gotol)?;
    if insns.len() > MAX_EBPF_INSNS {
        return Err(Error::TooLarge(insns.len()));
    }
    let stats = Stats {
        cbpf_insns: prog.len(),
        ir_blocks: func.blocks.len(),
        bounds_checks: guards.count(),
        ebpf_insns: insns.len(),
    };
    Ok(Translation { insns, stats })
}
