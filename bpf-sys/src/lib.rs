//! # xcap-bpf-sys
//!
//! The `bpf(2)` commands xcap uses, on raw file descriptors, with no libbpf
//! and no aya: loading programs (with an optional verifier log and BTF
//! function info), running them (`BPF_PROG_TEST_RUN`), reading what the
//! kernel made of them, and the map and link commands of a live capture.
//! Each attr struct is the prefix of the kernel's `union bpf_attr` that the
//! command reads, padded with zeros (the kernel accepts a longer attr whose
//! tail is zero). Errors are `io::Error`s; what a refusal means is the
//! caller's to say (see [`log_text`]).
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! // r0 = 2 (XDP_PASS); exit
//! let insns = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
//! let prog = bpf_sys::prog_load(
//!     &bpf_sys::ProgLoad {
//!         name: "pass",
//!         prog_type: bpf_sys::PROG_TYPE_XDP,
//!         insns: &insns,
//!         ..Default::default()
//!     },
//!     None,
//! )?;
//! let run = bpf_sys::test_run(prog.as_fd(), &bpf_sys::TestRun {
//!     data_in: &[0u8; 64],
//!     ..Default::default()
//! })?;
//! assert_eq!(run.retval, 2);
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod cgroup;
mod func_info;
mod link;
mod map;
mod prog;

use std::borrow::Cow;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub use func_info::{btf_load, static_func_info, static_funcs_btf};
pub use link::{
    link_by_id, link_create, link_ids, link_info, link_update, tracing_attach, LinkInfo,
    LINK_TYPE_TRACING,
};
pub use map::{
    map_create, map_freeze, map_lookup, map_update, map_update_batch, map_update_flags, MapBtf,
    MapSpec,
};
pub use prog::{
    enable_run_time_stats, kernel_has_gotol, obj_get, prog_by_id, prog_ids, prog_info, prog_load,
    test_run, ProgInfo, ProgLoad, TestRun, TestRunResult,
};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
const BPF_PROG_GET_NEXT_ID: libc::c_int = 11;
const BPF_OBJ_GET: libc::c_int = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_int = 17;
const BPF_BTF_LOAD: libc::c_int = 18;
const BPF_MAP_FREEZE: libc::c_int = 22;
const BPF_MAP_UPDATE_BATCH: libc::c_int = 26;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_LINK_UPDATE: libc::c_int = 29;
const BPF_LINK_GET_FD_BY_ID: libc::c_int = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_int = 31;
const BPF_ENABLE_STATS: libc::c_int = 32;

/// `enum bpf_prog_type` values xcap loads.
pub const PROG_TYPE_SOCKET_FILTER: u32 = 1;
pub const PROG_TYPE_SCHED_CLS: u32 = 3;
pub const PROG_TYPE_XDP: u32 = 6;
pub const PROG_TYPE_TRACING: u32 = 26;
/// An extension (`freplace`): replaces a function of another program.
pub const PROG_TYPE_EXT: u32 = 28;
pub const PROG_TYPE_SYSCALL: u32 = 31;

/// `enum bpf_map_type` values xcap creates by hand.
pub const MAP_TYPE_ARRAY: u32 = 2;
pub const MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;
pub const MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
pub const MAP_TYPE_RINGBUF: u32 = 27;

/// `enum bpf_attach_type` values xcap links with.
/// Tracing programs: `tp_btf` (`BPF_TRACE_RAW_TP`), fentry, fexit.
pub const BPF_TRACE_RAW_TP: u32 = 23;
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;
pub const BPF_XDP: u32 = 37;
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;

/// `BPF_F_SLEEPABLE`: the only way the kernel loads SYSCALL programs.
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_XDP_HAS_FRAGS`: an XDP program that handles multi-buffer packets.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// `BPF_F_MMAPABLE`: an array map user space can mmap.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, fully initialised repr(C) struct of the
    // layout `cmd` expects; the pointers inside it point at live buffers of
    // the sizes given next to them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bpf_fd<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the command returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Every id a `*_GET_NEXT_ID` command lists, in increasing order.
fn next_ids(cmd: libc::c_int) -> io::Result<Vec<u32>> {
    #[repr(C)]
    struct Attr {
        start_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut ids = Vec::new();
    let mut attr = Attr {
        start_id: 0,
        next_id: 0,
        open_flags: 0,
    };
    loop {
        match bpf(cmd, &mut attr) {
            Ok(_) => {
                ids.push(attr.next_id);
                attr.start_id = attr.next_id;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(ids),
            Err(e) => return Err(e),
        }
    }
}

fn ptr_or_null(b: &[u8]) -> u64 {
    if b.is_empty() {
        0
    } else {
        b.as_ptr() as u64
    }
}

/// A kernel object name: at most 15 bytes of `[A-Za-z0-9_.]`, NUL-padded.
pub fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(
        name.bytes()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
            .take(15),
    ) {
        *o = b;
    }
    out
}

/// The text of a verifier (or BTF) log buffer, up to its NUL.
pub fn log_text(log: &[u8]) -> Cow<'_, str> {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    String::from_utf8_lossy(&log[..end])
}

/// (level, size, address) of an optional log buffer: level 1 with one.
fn log_fields(log: Option<&mut [u8]>) -> (u32, u32, u64) {
    match log {
        Some(l) if !l.is_empty() => (1, l.len() as u32, l.as_mut_ptr() as u64),
        _ => (0, 0, 0),
    }
}
