//! The few `bpf(2)` commands a live capture needs, on raw file descriptors.
//! Each attr struct is the prefix of the kernel's `union bpf_attr` that the
//! command reads, padded with zeros (the kernel accepts a longer attr whose
//! tail is zero).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_MAP_FREEZE: libc::c_int = 22;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_LINK_UPDATE: libc::c_int = 29;

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_int, attr: &T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, fully initialised repr(C) struct of the
    // layout `cmd` expects; pointers inside it point at live memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bpf_fd<T>(cmd: libc::c_int, attr: &T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the command returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A kernel object name: at most 15 bytes of `[A-Za-z0-9_.]`, NUL-padded.
fn object_name(name: &str) -> [u8; 16] {
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

/// What `BPF_MAP_CREATE` needs.
pub struct MapSpec<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

pub fn map_create(spec: &MapSpec<'_>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; 16],
        _rest: [u32; 17],
    }
    bpf_fd(
        BPF_MAP_CREATE,
        &Attr {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags,
            inner_map_fd: 0,
            numa_node: 0,
            map_name: object_name(spec.name),
            _rest: [0; 17],
        },
    )
}

#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Writes `value` at `key`. The caller passes slices of the map's key and
/// value sizes (for per-CPU maps: the value size rounded up to 8, times the
/// number of possible CPUs).
pub fn map_update(map: RawFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    bpf(
        BPF_MAP_UPDATE_ELEM,
        &ElemAttr {
            map_fd: map as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags: 0,
        },
    )
    .map(drop)
}

/// Reads the value at `key` into `value` (sized as for [`map_update`]).
pub fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    bpf(
        BPF_MAP_LOOKUP_ELEM,
        &ElemAttr {
            map_fd: map.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        },
    )
    .map(drop)
}

/// Makes a map read-only for user space (`.rodata` after its values are set).
pub fn map_freeze(map: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _rest: [u32; 7],
    }
    bpf(
        BPF_MAP_FREEZE,
        &Attr {
            map_fd: map.as_raw_fd() as u32,
            _rest: [0; 7],
        },
    )
    .map(drop)
}

/// What `BPF_PROG_LOAD` needs. `insns` are 8-byte eBPF instructions.
pub struct ProgSpec<'a> {
    pub name: &'a str,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub flags: u32,
    pub insns: &'a [u64],
    pub license: &'a std::ffi::CStr,
    pub kernel_version: u32,
}

/// Loads a program. On a refusal the verifier runs again with its log on,
/// and the error carries the log's last meaningful line.
pub fn prog_load(spec: &ProgSpec<'_>) -> Result<OwnedFd, String> {
    #[repr(C)]
    struct Attr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
        _rest: [u64; 12],
    }
    let attr = |log: &mut [u8]| Attr {
        prog_type: spec.prog_type,
        insn_cnt: spec.insns.len() as u32,
        insns: spec.insns.as_ptr() as u64,
        license: spec.license.as_ptr() as u64,
        log_level: if log.is_empty() { 0 } else { 1 },
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        kern_version: spec.kernel_version,
        prog_flags: spec.flags,
        prog_name: object_name(spec.name),
        prog_ifindex: 0,
        expected_attach_type: spec.expected_attach_type,
        _rest: [0; 12],
    };
    // The fast path runs the verifier once, without a log.
    let first = match bpf_fd(BPF_PROG_LOAD, &attr(&mut [])) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; 16 << 20];
    let second = bpf_fd(BPF_PROG_LOAD, &attr(&mut log));
    let text =
        String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("processed "))
        .map(str::trim);
    Err(match (second, last) {
        (Ok(_), _) => format!("{first} (the kernel accepted it with the verifier log on)"),
        (Err(e), Some(line)) => format!("{e}: verifier: {line}"),
        (Err(e), None) => e.to_string(),
    })
}

pub const BPF_XDP: u32 = 37;
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;

/// Creates a link of `attach_type` for `prog` on `ifindex`. A link
/// detaches when its last fd is closed, however the process ends.
pub fn link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        target_ifindex: u32,
        attach_type: u32,
        flags: u32,
        /// tcx.relative_fd / relative_id
        relative: u32,
        _pad: u32,
        /// tcx.expected_revision
        expected_revision: u64,
        _rest: [u64; 4],
    }
    bpf_fd(
        BPF_LINK_CREATE,
        &Attr {
            prog_fd: prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type,
            flags,
            relative: 0,
            _pad: 0,
            expected_revision: 0,
            _rest: [0; 4],
        },
    )
}

/// Swaps the program of a link in place: no detach, no window without a
/// program, and (unlike a new attach) no RCU grace period to wait for.
pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
        _rest: [u64; 2],
    }
    bpf(
        BPF_LINK_UPDATE,
        &Attr {
            link_fd: link.as_raw_fd() as u32,
            new_prog_fd: prog.as_raw_fd() as u32,
            flags: 0,
            old_prog_fd: 0,
            _rest: [0; 2],
        },
    )
    .map(drop)
}
