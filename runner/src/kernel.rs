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

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R10, R2, R3, R4, R6, R7};
use cbpf2ebpf::Mode;

use crate::{Error, Result};

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

// ---------------------------------------------------------------------------
// bpf(2)

/// The license the wrapper and filter are loaded under: GPL-compatible, as
/// `bpf_probe_read_kernel` requires.
const LICENSE: &CStr = c"Dual MIT/GPL";

/// Size of the buffer for the verifier log when a load fails. The kernel
/// (6.4+) keeps the *end* of the log when it does not fit, which is the part
/// that says why.
const LOG_SIZE: usize = 4 << 20;

/// How many lines of the verifier log an [`Error::Refused`] keeps.
const LOG_TAIL_LINES: usize = 30;

fn syscall_error(what: &'static str, err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EPERM) => Error::PermissionDenied,
        _ => Error::Syscall { what, source: err },
    }
}

/// Loads a whole program of type `prog_type` (SYSCALL programs are loaded
/// sleepable, the only way the kernel takes them). `name` keeps at most 15
/// of its `[A-Za-z0-9_.]` characters. On refusal the error holds the end of the verifier log.
pub fn load_program(prog_type: ProgType, insns: &[Insn], name: &str) -> Result<Fd> {
    load(prog_type, insns, name, 0)
}

/// [`load_program`]; the first `wrapper_len` instructions are our wrapper
/// (for error messages).
fn load(prog_type: ProgType, insns: &[Insn], name: &str, wrapper_len: usize) -> Result<Fd> {
    let bytes = cbpf2ebpf::ebpf::to_bytes(insns);
    // A callback's address (a filter's loop) needs BTF func_info, static,
    // for every function.
    let (btf, func_info) = if cbpf2ebpf::ebpf::takes_function_address(insns) {
        let starts = cbpf2ebpf::ebpf::function_starts(insns);
        let names: Vec<String> = (0..starts.len()).map(|i| format!("xcap_f{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut log = vec![0u8; 64 << 10];
        let btf = bpf_sys::btf_load(&bpf_sys::static_funcs_btf(&names), Some(&mut log))
            .map_err(|e| syscall_error("BPF_BTF_LOAD", e))?;
        (Some(btf), bpf_sys::static_func_info(&starts))
    } else {
        (None, Vec::new())
    };
    let spec = bpf_sys::ProgLoad {
        func_info: btf.as_ref().map(|b| (b.as_fd(), &func_info[..])),
        name,
        prog_type: prog_type.0,
        insns: &bytes,
        license: LICENSE,
        // The kernel loads SYSCALL programs only as sleepable.
        flags: if prog_type == ProgType::SYSCALL {
            bpf_sys::BPF_F_SLEEPABLE
        } else {
            0
        },
        ..Default::default()
    };
    let attempt =
        |log: Option<&mut Vec<u8>>| bpf_sys::prog_load(&spec, log.map(|l| &mut l[..])).map(Fd);
    // Load without a log first (verifying with a log is slower), and again
    // with one only to explain a refusal.
    match attempt(None) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(Error::PermissionDenied),
        Err(first) => {
            let mut log = vec![0u8; LOG_SIZE];
            match attempt(Some(&mut log)) {
                // Should not happen, but a program is a program.
                Ok(fd) => Ok(fd),
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(Error::PermissionDenied),
                Err(_) => Err(refused(&bpf_sys::log_text(&log), &first, wrapper_len)),
            }
        }
    }
}

/// Builds [`Error::Refused`] from a verifier log. The summary is the
/// verifier's message (the lines after the last instruction it printed,
/// without statistics) and where it stopped; instruction indices at or past
/// `wrapper_len` are given relative to the filter.
fn refused(log: &str, err: &io::Error, wrapper_len: usize) -> Error {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail: Vec<String> = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let is_stat = |l: &str| l.starts_with("processed ") || l.starts_with("verification time");
    // "21: (71) r0 = *(u8 *)(r2 +0)" is an instruction; "21: R0=..." or
    // "21: frame1: ..." is state.
    let numbered = |l: &str| -> Option<(usize, Option<String>)> {
        let (n, rest) = l.split_once(": ")?;
        let n: usize = n.parse().ok()?;
        let insn = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(") "))
            .map(|(_, t)| {
                // Drop the state comment the verifier appends.
                t.split(" ; ").next().unwrap_or(t).trim_end().to_string()
            });
        Some((n, insn))
    };
    let last_numbered = lines.iter().rposition(|l| numbered(l).is_some());
    let start = last_numbered.map_or(0, |i| i + 1);
    let messages: Vec<&str> = lines[start..]
        .iter()
        .copied()
        .filter(|l| !is_stat(l))
        .collect();
    let messages = &messages[messages.len().saturating_sub(3)..];
    let mut summary = if messages.is_empty() {
        lines
            .iter()
            .rev()
            .find(|l| !is_stat(l))
            .map(|s| s.to_string())
    } else {
        Some(messages.join("; "))
    }
    .unwrap_or_else(|| format!("{err} (no verifier log)"));
    if let Some((n, Some(insn))) = last_numbered.and_then(|i| numbered(lines[i])) {
        if wrapper_len > 0 && n >= wrapper_len {
            summary += &format!(" (at filter insn {}: {insn})", n - wrapper_len);
        } else if wrapper_len > 0 {
            summary += &format!(" (at wrapper insn {n}: {insn})");
        } else {
            summary += &format!(" (at insn {n}: {insn})");
        }
    }
    Error::Refused {
        summary,
        log_tail: tail,
    }
}

pub use bpf_sys::{ProgInfo, TestRun, TestRunResult};

/// `BPF_PROG_TEST_RUN`.
pub fn test_run(prog: impl AsFd, args: &TestRun<'_>) -> Result<TestRunResult> {
    bpf_sys::test_run(prog.as_fd(), args).map_err(|e| syscall_error("BPF_PROG_TEST_RUN", e))
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a program.
pub fn prog_info(prog: impl AsFd) -> Result<ProgInfo> {
    bpf_sys::prog_info(prog.as_fd()).map_err(|e| syscall_error("BPF_OBJ_GET_INFO_BY_FD", e))
}

// ---------------------------------------------------------------------------
// The wrappers

/// Bytes before the packet in the test input (see the module docs).
pub const HEADER_LEN: usize = 16;

/// The largest packet [`KernelFilter::run`] accepts in `Direct` mode: an XDP
/// test run takes at most a page minus `XDP_PACKET_HEADROOM` (256) minus the
/// aligned `skb_shared_info` (320) = 3520 bytes of linear data with 4 KiB
/// pages (more would go to fragments, which packet pointers cannot see),
/// less our header.
pub fn max_packet_len(mode: Mode) -> usize {
    let page = page_size();
    match mode {
        Mode::Direct => page - 256 - 320 - HEADER_LEN,
        // skb test runs: a page minus NET_SKB_PAD (64) and the aligned
        // skb_shared_info (320); NET_IP_ALIGN is 0 on x86.
        Mode::Skb => page - 64 - 320 - HEADER_LEN,
        // SYSCALL programs take up to U16_MAX bytes of context.
        Mode::Probe => 65535 - HEADER_LEN,
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The program type [`KernelFilter`] uses for `mode`.
pub fn prog_type(mode: Mode) -> ProgType {
    match mode {
        Mode::Direct => ProgType::XDP,
        Mode::Skb => ProgType::SCHED_CLS,
        Mode::Probe => ProgType::SYSCALL,
    }
}

const XDP_ABORTED: i32 = 0;
const XDP_PASS: i32 = 2;
const W: u8 = op::W;
const DW: u8 = op::DW;

/// Fixes up the wrapper's single bpf2bpf call so it reaches the filter,
/// which starts right after the wrapper.
fn link(mut wrapper: Vec<Insn>) -> Vec<Insn> {
    let n = wrapper.len() as i32;
    let call = wrapper
        .iter()
        .position(|i| i.code == op::JMP | op::CALL && i.src == op::PSEUDO_CALL)
        .expect("wrapper has a call");
    wrapper[call].imm = n - (call as i32 + 1);
    wrapper
}

fn pseudo_call() -> Insn {
    Insn::new(op::JMP | op::CALL, 0, op::PSEUDO_CALL, 0, 0)
}

/// The wrapper for `mode`, without the filter. Its call is already linked to
/// the instruction after its last one.
pub fn wrapper(mode: Mode) -> Vec<Insn> {
    let h = HEADER_LEN as i32;
    let w = match mode {
        // XDP: r1 = struct xdp_md *.
        Mode::Direct => vec![
            Insn::mov64_reg(R6, R1),
            Insn::ldx(W, R2, R6, 0), // data
            Insn::ldx(W, R3, R6, 4), // data_end
            Insn::mov64_reg(R0, R2),
            Insn::alu64_imm(op::ADD, R0, h),
            Insn::jmp_reg(op::JGT, R0, R3, 13), // -> abort
            Insn::ldx(W, R4, R2, 0),            // wire length
            Insn::alu64_imm(op::ADD, R2, h),    // start
            Insn::mov64_reg(R1, R6),
            pseudo_call(),
            Insn::mov64_reg(R7, R0),
            Insn::ldx(W, R2, R6, 0),
            Insn::ldx(W, R3, R6, 4),
            Insn::mov64_reg(R1, R2),
            Insn::alu64_imm(op::ADD, R1, h),
            Insn::jmp_reg(op::JGT, R1, R3, 3), // -> abort
            Insn::stx(W, R2, R7, 4),
            Insn::mov64_imm(R0, XDP_PASS),
            Insn::exit(),
            Insn::mov64_imm(R0, XDP_ABORTED), // abort:
            Insn::exit(),
        ],
        // SCHED_CLS: r1 = struct __sk_buff *; len at 0, data at 76,
        // data_end at 80.
        Mode::Skb => vec![
            Insn::ldx(W, R2, R1, 76),
            Insn::ldx(W, R3, R1, 80),
            Insn::mov64_reg(R0, R2),
            Insn::alu64_imm(op::ADD, R0, h),
            Insn::jmp_reg(op::JGT, R0, R3, 5), // -> abort
            Insn::ldx(W, R4, R2, 0),           // wire length
            Insn::ldx(W, R3, R1, 0),           // end = skb->len
            Insn::mov64_imm(R2, h),            // start
            pseudo_call(),
            Insn::exit(),
            // abort: a value no filter returns for a header it never saw
            // would be ambiguous; the header is always there (we build it),
            // so this path only exists for the verifier.
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ],
        // SYSCALL: r1 = our context buffer (kernel memory). The filter wants
        // plain addresses: turn the pointer into a scalar. As root
        // (allow_ptr_leaks) `w2 = w1` may copy the low half, and a 4-byte
        // store over a spilled pointer turns the slot into plain data.
        Mode::Probe => vec![
            Insn::stx(DW, R10, R1, -8),
            Insn::mov32_reg(R2, R1),
            Insn::stx(W, R10, R2, -8),
            Insn::ldx(DW, R2, R10, -8), // r2 = address of the context
            Insn::ldx(W, R4, R1, 0),    // wire length
            Insn::ldx(W, R3, R1, 4),    // captured length
            Insn::alu64_imm(op::ADD, R2, h),
            Insn::alu64_reg(op::ADD, R3, R2),
            pseudo_call(),
            Insn::exit(),
        ],
    };
    link(w)
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
