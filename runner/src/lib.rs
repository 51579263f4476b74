//! # xcap-runner
//!
//! Runs a translated filter function (the output of `cbpf2ebpf`, with the
//! filter ABI described in that crate: `r1` = ctx, `r2` = start, `r3` = end,
//! `r4` = wire length, `r0` = the cBPF return value) on one packet and gives
//! back its return value, with one of two engines:
//!
//! - [`kernel`]: the real kernel. The filter is loaded behind a small wrapper
//!   program (XDP, SCHED_CLS or SYSCALL, by [`Mode`]) with raw `bpf(2)` calls,
//!   verified by the kernel's verifier, and run with `BPF_PROG_TEST_RUN`.
//!   Needs root (or `CAP_BPF` + `CAP_NET_ADMIN` + `CAP_PERFMON`).
//! - [`vm`]: our user-space eBPF interpreter, which checks every memory access
//!   against the packet and the stack. Runs anywhere, any packet size.
//!
//! ```no_run
//! use cbpf2ebpf::ebpf::{Insn, R0, R4};
//! use cbpf2ebpf::Mode;
//! use xcap_runner::{Engine, Filter, RunFilter};
//!
//! // A filter that returns the wire length.
//! let filter = [Insn::mov32_reg(R0, R4), Insn::exit()];
//! for engine in [Engine::Kernel, Engine::Vm] {
//!     let f = Filter::load(engine, &filter, Mode::Direct)?;
//!     assert_eq!(f.run(&[0u8; 60], 1514)?, 1514);
//! }
//! # Ok::<(), xcap_runner::Error>(())
//! ```

pub mod kernel;
pub mod vm;

use std::fmt;
use std::str::FromStr;

use cbpf2ebpf::ebpf::Insn;
pub use cbpf2ebpf::Mode;

/// Whether the kernel loads `gotol`, for [`cbpf2ebpf::Options::gotol`]
/// (asked once per process).
pub use bpf_sys::kernel_has_gotol;
pub use kernel::KernelFilter;
pub use vm::VmFilter;

/// Everything that can go wrong. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("permission denied: run as root or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN")]
    PermissionDenied,
    /// The verifier refused the program. `summary` is the verifier's reason
    /// (the last line of its log that is not a statistic).
    #[error("the kernel refused the program: {summary}")]
    Refused {
        summary: String,
        /// The last lines of the verifier log.
        log_tail: Vec<String>,
    },
    #[error("{what} failed: {source}")]
    Syscall {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "packet of {len} bytes is too large for the kernel engine in {mode:?} mode (at most {max})"
    )]
    PacketTooLarge { len: usize, max: usize, mode: Mode },
    /// The wrapper program did not report a result (a bug in this crate).
    #[error("wrapper program failed: {0}")]
    Wrapper(String),
    /// The filter could not be inlined ([`Engine::KernelInlined`]).
    #[error("{0}")]
    Inline(String),
    /// The interpreter refused the program or stopped it.
    #[error("vm: {0}")]
    Vm(#[from] vm::VmError),
}

impl Error {
    /// The end of the verifier log, for [`Error::Refused`].
    pub fn verifier_log(&self) -> Option<&[String]> {
        match self {
            Error::Refused { log_tail, .. } => Some(log_tail),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which engine runs the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// The kernel, through `BPF_PROG_TEST_RUN`.
    #[default]
    Kernel,
    /// The user-space interpreter in [`vm`].
    Vm,
    /// The kernel, with the filter inlined into the wrapper instead of
    /// called (`injector::inline`, what live capture loads).
    KernelInlined,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Kernel, Engine::Vm, Engine::KernelInlined];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Kernel => "kernel",
            Engine::Vm => "vm",
            Engine::KernelInlined => "kernel-inlined",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kernel" => Ok(Engine::Kernel),
            "vm" => Ok(Engine::Vm),
            "kernel-inlined" => Ok(Engine::KernelInlined),
            _ => Err(format!(
                "unknown engine {s:?} (expected kernel, vm or kernel-inlined)"
            )),
        }
    }
}

/// Something that runs a filter on a packet.
pub trait RunFilter {
    /// Runs the filter on `packet` (the captured bytes, possibly fewer than
    /// `wirelen`) and returns its `r0` (the cBPF return value).
    fn run(&self, packet: &[u8], wirelen: u32) -> Result<u32>;
}

impl RunFilter for KernelFilter {
    fn run(&self, packet: &[u8], wirelen: u32) -> Result<u32> {
        KernelFilter::run(self, packet, wirelen)
    }
}

impl RunFilter for VmFilter {
    fn run(&self, packet: &[u8], wirelen: u32) -> Result<u32> {
        VmFilter::run(self, packet, wirelen)
    }
}

/// A filter ready to run on either engine.
#[derive(Debug)]
pub enum Filter {
    Kernel(KernelFilter),
    Vm(VmFilter),
}

impl Filter {
    /// Loads (kernel) or checks (vm) the translated filter `insns`.
    pub fn load(engine: Engine, insns: &[Insn], mode: Mode) -> Result<Self> {
        Ok(match engine {
            Engine::Kernel => Filter::Kernel(KernelFilter::load(insns, mode)?),
            Engine::KernelInlined => Filter::Kernel(KernelFilter::load_inlined(insns, mode)?),
            Engine::Vm => Filter::Vm(VmFilter::new(insns, mode)?),
        })
    }

    pub fn engine(&self) -> Engine {
        match self {
            Filter::Kernel(k) if k.inlined() => Engine::KernelInlined,
            Filter::Kernel(_) => Engine::Kernel,
            Filter::Vm(_) => Engine::Vm,
        }
    }

    /// The largest packet [`RunFilter::run`] accepts.
    pub fn max_packet_len(&self) -> usize {
        match self {
            Filter::Kernel(k) => kernel::max_packet_len(k.mode()),
            Filter::Vm(_) => usize::MAX,
        }
    }
}

impl RunFilter for Filter {
    fn run(&self, packet: &[u8], wirelen: u32) -> Result<u32> {
        match self {
            Filter::Kernel(k) => k.run(packet, wirelen),
            Filter::Vm(v) => v.run(packet, wirelen),
        }
    }
}
