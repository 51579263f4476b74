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
//! A program with backward jumps (libpcap's `protochain`) becomes two
//! functions ([`LoopForm::Callback`]): the filter, and after it its loop
//! callback ([`Translation::callback`]), which the filter hands to
//! `bpf_loop` (Linux 5.17+) by address. The kernel then wants BTF
//! func_info, with static linkage, for every function of the program.
//!
//! ## The pipeline
//!
//! [`translate`] reads as its list of passes: validate the cBPF, build the
//! IR (the first passes of loops unrolled, the rest as the loop callback's
//! IR), simplify, place bounds checks, find loads that may stay in wire
//! byte order, lower to eBPF (zeroing only what is read first), lay out
//! jumps; the last four run once per function. Each pass lives in its own
//! module under [`passes`].

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

/// The most stack the loop callback uses, in bytes (its frame comes on
/// top of the filter's and its caller's: 512 bytes in all).
pub const CALLBACK_STACK_BYTES: usize = 112;

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

/// How backward jumps (libpcap's `protochain` loops) are translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LoopForm {
    /// The first [`Options::unrolled_loop_passes`] passes of a loop are
    /// unrolled in the filter; the rest run in a second function, the loop
    /// callback, two passes per call of `bpf_loop` (Linux 5.17+), with A, X
    /// and the scratch words in the filter's stack. The verdict is
    /// libpcap's for every loop that ends within
    /// [`Options::max_loop_iterations`] calls; a loop whose state repeats
    /// never ends in libpcap, and returns 0 (see [`Translation::callback`]).
    #[default]
    Callback,
    /// Every pass unrolled, at most [`Options::max_loop_iterations`] of
    /// them; a path that needs more returns 0 where libpcap would go on.
    /// One function, any kernel, but not exact past the bound.
    Unrolled,
}

/// Translation options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub hook: Hook,
    pub loops: LoopForm,
    /// [`LoopForm::Callback`]: how many backward jumps a path takes in the
    /// filter itself (unrolled, no call) before its loop continues in the
    /// callback. Speed and size only: the verdict does not depend on it.
    pub unrolled_loop_passes: u32,
    /// The most passes of a loop: past them the filter returns 0.
    /// [`LoopForm::Callback`]: calls of the loop callback, at most
    /// [`ebpf::BPF_MAX_LOOPS`] (the default); a walk of libpcap's
    /// `protochain` that ends does so well within it on any packet up to
    /// 1.3 MiB (fewer than 6 passes a captured byte), so it never decides
    /// a verdict there.
    /// [`LoopForm::Unrolled`]: taken backward jumps, each a copy of the
    /// loop's code (32 is a sensible bound).
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
            loops: LoopForm::Callback,
            unrolled_loop_passes: DEFAULT_UNROLLED_PASSES,
            max_loop_iterations: DEFAULT_LOOP_ITERATIONS,
            linear_fast_path: true,
            gotol: true,
        }
    }
}

/// Default bound on calls of the loop callback; see
/// [`Options::max_loop_iterations`].
pub const DEFAULT_LOOP_ITERATIONS: u32 = ebpf::BPF_MAX_LOOPS;

/// Default for [`Options::unrolled_loop_passes`].
pub const DEFAULT_UNROLLED_PASSES: u32 = 4;

/// Largest translated function, in eBPF instructions.
pub const MAX_EBPF_INSNS: usize = 1_000_000;

/// The translated filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The filter function, entry first, followed by its loop callback if
    /// it has one (see [`Translation::callback`]).
    pub insns: Vec<ebpf::Insn>,
    /// Where the loop callback starts in [`Translation::insns`], for a
    /// program with backward jumps translated as [`LoopForm::Callback`].
    /// The callback is a second BPF function (`long cb(u64 index, void
    /// *loop)`, [`CALLBACK_STACK_BYTES`] of stack), reached only through
    /// the filter's `ld_imm64` of its address (`BPF_PSEUDO_FUNC`, relative,
    /// so the two must stay in this order and adjacent in an instruction
    /// array; an ELF object needs a function symbol and a relocation for
    /// it) passed to `bpf_loop`.
    pub callback: Option<usize>,
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
    /// The loop callback stops a loop whose state repeats (its state is
    /// the loop header, A and X, and it reads no random numbers): true for
    /// every libpcap `protochain`.
    pub cycle_detection: bool,
}

/// Translates a cBPF program into an eBPF function with the ABI above.
pub fn translate(prog: &[cbpf::Insn], opts: &Options) -> Result<Translation, Error> {
    passes::validate::run(prog)?;
    let built = passes::build::run(prog, opts)?;
    let mut main = built.main;
    passes::simplify::run(&mut main, opts);
    // A loop no path of the filter enters (after dead code is gone)
    // needs no callback.
    let enters = main
        .layout
        .iter()
        .any(|&b| matches!(main.blocks[b].term, ir::Terminator::Enter(_)));
    let mut callback = built.callback.filter(|_| enters);
    if let Some(cb) = callback.as_mut() {
        passes::simplify::run(cb, opts);
    }
    let plan = callback.as_ref().map(|cb| loop_plan(&main, cb, opts));
    let filter_frame = passes::lower::Frame::Filter(plan.as_ref());
    let (mut insns, mut bounds_checks) = lower_function(&main, opts, filter_frame)?;
    let mut callback_at = None;
    let mut ir_blocks = main.layout.len();
    if let (Some(cb), Some(plan)) = (&callback, &plan) {
        let frame = passes::lower::Frame::Callback(plan);
        let (code, checks) = lower_function(cb, opts, frame)?;
        link_callback(&mut insns)?;
        callback_at = Some(insns.len());
        insns.extend(code);
        ir_blocks += cb.layout.len();
        bounds_checks += checks;
    }
    if insns.len() > MAX_EBPF_INSNS {
        return Err(Error::TooLarge(insns.len()));
    }
    let stats = Stats {
        cbpf_insns: prog.len(),
        ir_blocks,
        bounds_checks,
        ebpf_insns: insns.len(),
        cycle_detection: callback_at.is_some() && plan.as_ref().is_some_and(|p| p.detect_cycles),
    };
    Ok(Translation {
        insns,
        callback: callback_at,
        stats,
    })
}

/// Places bounds checks, finds wire-order loads, lowers and lays out one
/// function; also returns how many bounds checks it has.
fn lower_function(
    func: &ir::Function,
    opts: &Options,
    frame: passes::lower::Frame<'_>,
) -> Result<(Vec<ebpf::Insn>, usize), Error> {
    let guards = passes::guards::run(func, opts);
    let swaps = passes::swaps::run(func);
    let code = passes::lower::run(func, &guards, &swaps, opts, frame)?;
    Ok((passes::layout::run(code, opts.gotol)?, guards.count()))
}

/// Points the filter's `ld_imm64`s of the callback's address (the only
/// `BPF_PSEUDO_FUNC`s in it) at the first instruction after the filter.
fn link_callback(filter: &mut [ebpf::Insn]) -> Result<(), Error> {
    let len = filter.len() as i64;
    let mut linked = false;
    for (at, i) in filter.iter_mut().enumerate() {
        if i.code == ebpf::op::LD | ebpf::op::DW && i.src == ebpf::op::PSEUDO_FUNC {
            i.imm =
                i32::try_from(len - at as i64 - 1).map_err(|_| Error::TooLarge(len as usize))?;
            linked = true;
        }
    }
    if linked {
        Ok(())
    } else {
        Err(Error::Internal("a loop program without a bpf_loop call"))
    }
}

/// What the filter and the loop callback must agree on.
fn loop_plan(
    main: &ir::Function,
    callback: &ir::Function,
    opts: &Options,
) -> passes::lower::LoopPlan {
    use passes::init::Values;
    let a_x = Values::A | Values::X;
    let carried = passes::init::run(callback, 0, a_x).0 | a_x;
    let any = |pred: &dyn Fn(&ir::InstData) -> bool| {
        [main, callback]
            .iter()
            .any(|f| f.layout.iter().any(|&b| f.block_insts(b).any(pred)))
    };
    let random = callback.layout.iter().any(|&b| {
        callback.block_insts(b).any(
            |i| matches!(i, ir::InstData::LoadAncillary { ad } if *ad == cbpf::ancillary::RANDOM),
        )
    });
    passes::lower::LoopPlan {
        carried: Values(carried),
        uses_len: any(&|i| matches!(i, ir::InstData::LoadLen { .. })),
        packet_loads: any(&|i| {
            matches!(
                i,
                ir::InstData::LoadAbs { .. }
                    | ir::InstData::LoadInd { .. }
                    | ir::InstData::LoadMsh { .. }
            )
        }),
        detect_cycles: carried == a_x && !random,
        max_passes: opts.max_loop_iterations.min(ebpf::BPF_MAX_LOOPS),
    }
}
