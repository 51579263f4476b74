//! Links: create one for a program on an interface, swap its program.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::{bpf, bpf_fd, BPF_LINK_CREATE, BPF_LINK_UPDATE, BPF_RAW_TRACEPOINT_OPEN};

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
        &mut Attr {
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
        &mut Attr {
            link_fd: link.as_raw_fd() as u32,
            new_prog_fd: prog.as_raw_fd() as u32,
            flags: 0,
            old_prog_fd: 0,
            _rest: [0; 2],
        },
    )
    .map(drop)
}

/// Attaches a tracing program (fentry, fexit) to the target it was loaded
/// for and returns its link (`BPF_RAW_TRACEPOINT_OPEN` without a name,
/// which every kernel with trampolines takes; `BPF_LINK_CREATE` takes
/// fentry only from 6.6 on).
pub fn tracing_attach(prog: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        name: u64,
        prog_fd: u32,
        _pad: u32,
        cookie: u64,
    }
    bpf_fd(
        BPF_RAW_TRACEPOINT_OPEN,
        &mut Attr {
            name: 0,
            prog_fd: prog.as_raw_fd() as u32,
            _pad: 0,
            cookie: 0,
        },
    )
}
