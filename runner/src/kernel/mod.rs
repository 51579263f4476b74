//! The kernel engine: raw `bpf(2)` calls (no libbpf, no aya) and
//! [`KernelFilter`], which loads a translated filter behind a small wrapper
//! program and runs it with `BPF_PROG_TEST_RUN`.
//!
//! ## Wrappers
//!
//! Each [`Mode`] gets the program type whose context matches the filter's
//! packet access, and a hand-assembled wrapper that sets `r1`..`r4` as the
//! filter ABI says, calls the filter (bpf2bpf `call`, the filter appended
//! after the wrapper's `exit`) and reports `r0`:
//!
//! | mode | program type | test input | result |
//! |---|---|---|---|
//! | `Direct` | XDP | data = 16-byte header (wire length at 0..4) + packet; `r2`/`r3` = packet pointers | written to header bytes 4..8, read from `data_out` (XDP may only return 0..=4) |
//! | `Skb` | SCHED_CLS | data = 16-byte header (wire length at 0..4) + packet; `r2` = 16, `r3` = `skb->len` | the program's return value (any `u32` is allowed) |
//! | `Probe` | SYSCALL | ctx = 16-byte header (wire length at 0..4, captured length at 4..8) + packet; `r2`/`r3` = kernel addresses (scalars) | the program's return value |
//!
//! The header makes a 0-byte packet possible: XDP and skb test runs need at
//! least 14 bytes of data (an Ethernet header).

mod syscalls;
mod wrapper;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use cbpf2ebpf::ebpf::Insn;
use cbpf2ebpf::Mode;

use crate::{Error, Result};
use syscalls::load;
use wrapper::XDP_PASS;

pub use syscalls::{load_program, prog_info, test_run, ProgInfo, TestRun, TestRunResult};
pub use wrapper::{max_packet_len, prog_type, wrapper, HEADER_LEN};

/// A BPF program type (`enum bpf_prog_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProgType(pub u32);

impl ProgType {
    pub const SOCKET_FILTER: ProgType = ProgType(bpf_sys::PROG_TYPE_SOCKET_FILTER);
    pub const SCHED_CLS: ProgType = ProgType(bpf_sys::PROG_TYPE_SCHED_CLS);
    pub const XDP: ProgType = ProgType(bpf_sys::PROG_TYPE_XDP);
    pub const SYSCALL: ProgType = ProgType(bpf_sys::PROG_TYPE_SYSCALL);
}

/// An owned file descriptor of a loaded program; closed on drop.
#[derive(Debug)]
pub struct Fd(OwnedFd);

impl Fd {
    pub fn into_owned(self) -> OwnedFd {
        self.0
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A translated filter loaded into the kernel behind a wrapper (see the
/// module docs), run with `BPF_PROG_TEST_RUN`.
#[derive(Debug)]
pub struct KernelFilter {
    fd: Fd,
    mode: Mode,
    info: Option<ProgInfo>,
    inlined: bool,
}

impl KernelFilter {
    /// Loads `filter` (a function with the cbpf2ebpf ABI, ending in `exit`)
    /// behind the wrapper for `mode`.
    pub fn load(filter: &[Insn], mode: Mode) -> Result<Self> {
        Self::load_linked(filter, mode, false)
    }

    /// [`KernelFilter::load`] with the filter inlined into the wrapper
    /// (`injector::inline`), as xcap's live capture loads it.
    pub fn load_inlined(filter: &[Insn], mode: Mode) -> Result<Self> {
        Self::load_linked(filter, mode, true)
    }

    fn load_linked(filter: &[Insn], mode: Mode, inlined: bool) -> Result<Self> {
        let mut insns = wrapper(mode);
        let mut wrapper_len = insns.len();
        insns.extend_from_slice(filter);
        if inlined {
            insns = injector::inline::inline_calls(&insns, wrapper_len)
                .map_err(|e| Error::Inline(e.to_string()))?
                .insns;
            wrapper_len = 0;
        }
        let name = match mode {
            Mode::Direct => "xcap_direct",
            Mode::Skb => "xcap_skb",
            Mode::Probe => "xcap_probe",
        };
        let fd = load(prog_type(mode), &insns, name, wrapper_len)?;
        let info = prog_info(&fd).ok();
        Ok(KernelFilter {
            fd,
            mode,
            info,
            inlined,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the filter was inlined into the wrapper.
    pub fn inlined(&self) -> bool {
        self.inlined
    }

    /// The loaded program (wrapper and filter).
    pub fn fd(&self) -> &Fd {
        &self.fd
    }

    /// Runs the filter on `packet` (the captured bytes) whose original length
    /// was `wirelen`, and returns the filter's `r0`.
    pub fn run(&self, packet: &[u8], wirelen: u32) -> Result<u32> {
        Ok(self.run_timed(packet, wirelen, 1)?.0)
    }

    /// Runs `repeat` times; returns the result and the kernel's mean run time
    /// in nanoseconds (wrapper included).
    pub fn run_timed(&self, packet: &[u8], wirelen: u32, repeat: u32) -> Result<(u32, u32)> {
        let max = max_packet_len(self.mode);
        if packet.len() > max {
            return Err(Error::PacketTooLarge {
                len: packet.len(),
                max,
                mode: self.mode,
            });
        }
        let mut input = Vec::with_capacity(HEADER_LEN + packet.len());
        input.extend_from_slice(&wirelen.to_le_bytes());
        input.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        input.resize(HEADER_LEN, 0);
        input.extend_from_slice(packet);
        match self.mode {
            Mode::Direct => {
                let out = test_run(
                    &self.fd,
                    &TestRun {
                        data_in: &input,
                        data_out_len: input.len(),
                        repeat,
                        ..Default::default()
                    },
                )?;
                if out.retval != XDP_PASS as u32 || out.data_out.len() < 8 {
                    return Err(Error::Wrapper(format!(
                        "XDP wrapper returned {} with {} bytes of data",
                        out.retval,
                        out.data_out.len()
                    )));
                }
                Ok((
                    u32::from_le_bytes(out.data_out[4..8].try_into().unwrap()),
                    out.duration_ns,
                ))
            }
            Mode::Skb => {
                let out = test_run(
                    &self.fd,
                    &TestRun {
                        data_in: &input,
                        repeat,
                        ..Default::default()
                    },
                )?;
                Ok((out.retval, out.duration_ns))
            }
            Mode::Probe => {
                // SYSCALL test runs take neither data nor `repeat`.
                let mut total = 0u64;
                let n = repeat.max(1);
                let mut retval = 0;
                for _ in 0..n {
                    let start = std::time::Instant::now();
                    retval = test_run(
                        &self.fd,
                        &TestRun {
                            ctx_in: &input,
                            ..Default::default()
                        },
                    )?
                    .retval;
                    total += start.elapsed().as_nanos() as u64;
                }
                Ok((retval, (total / n as u64).min(u32::MAX as u64) as u32))
            }
        }
    }

    /// Instructions the verifier processed for the whole program (wrapper
    /// included), from `bpf_prog_info.verified_insns`.
    pub fn verified_insns(&self) -> Option<u32> {
        self.info.as_ref().and_then(|i| i.verified_insns)
    }

    /// Size in bytes of the JIT-compiled program (wrapper included), if the
    /// JIT is on.
    pub fn jited_len(&self) -> Option<u32> {
        self.info
            .as_ref()
            .map(|i| i.jited_prog_len)
            .filter(|&n| n > 0)
    }

    /// Size in bytes of the program after the kernel's rewrites.
    pub fn xlated_len(&self) -> Option<u32> {
        self.info
            .as_ref()
            .map(|i| i.xlated_prog_len)
            .filter(|&n| n > 0)
    }
}
