//! The `bpf(2)` calls of the engine, through bpf-sys: loading a filter
//! behind its wrapper (a refusal explained by the verifier log's tail),
//! test runs and program info.

use std::ffi::CStr;
use std::io;
use std::os::fd::AsFd;

use cbpf2ebpf::ebpf::Insn;

use super::{Fd, ProgType};
use crate::{Error, Result};

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
pub(super) fn load(
    prog_type: ProgType,
    insns: &[Insn],
    name: &str,
    wrapper_len: usize,
) -> Result<Fd> {
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
