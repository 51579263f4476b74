//! Links: create one for a program on an interface, swap its program,
//! attach a tracing program, list links and read what they join.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::{
    bpf, bpf_fd, next_ids, BPF_LINK_CREATE, BPF_LINK_GET_FD_BY_ID, BPF_LINK_GET_NEXT_ID,
    BPF_LINK_UPDATE, BPF_OBJ_GET_INFO_BY_FD, BPF_RAW_TRACEPOINT_OPEN,
};

/// `BPF_LINK_TYPE_TRACING`: fentry, fexit and freplace (extension) links.
pub const LINK_TYPE_TRACING: u32 = 2;

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

/// The ids of every link, in increasing order (`BPF_LINK_GET_NEXT_ID`).
pub fn link_ids() -> io::Result<Vec<u32>> {
    next_ids(BPF_LINK_GET_NEXT_ID)
}

/// An fd of link `id` (`BPF_LINK_GET_FD_BY_ID`).
pub fn link_by_id(id: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        link_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    bpf_fd(
        BPF_LINK_GET_FD_BY_ID,
        &mut Attr {
            link_id: id,
            next_id: 0,
            open_flags: 0,
        },
    )
}

/// The parts of `struct bpf_link_info` xcap reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// `BPF_LINK_TYPE_*` ([`LINK_TYPE_TRACING`], ...).
    pub link_type: u32,
    pub id: u32,
    /// The program the link attaches.
    pub prog_id: u32,
    /// Tracing links (fentry, fexit, freplace): the id of the program
    /// whose function is hooked or replaced (on a kernel function: the id
    /// of the BTF object holding it) and that function's BTF id; 0 for
    /// other link types.
    pub target_prog_id: u32,
    pub target_btf_id: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a link.
pub fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // type, id, prog_id, then a union at 16; its `tracing` member is
    // attach_type, target_obj_id, target_btf_id.
    let mut info = [0u8; 64];
    let mut attr = Attr {
        bpf_fd: link.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let u32_at = |off: usize| u32::from_le_bytes(info[off..off + 4].try_into().unwrap());
    let link_type = u32_at(0);
    let tracing = link_type == LINK_TYPE_TRACING;
    Ok(LinkInfo {
        link_type,
        id: u32_at(4),
        prog_id: u32_at(8),
        target_prog_id: if tracing { u32_at(20) } else { 0 },
        target_btf_id: if tracing { u32_at(24) } else { 0 },
    })
}
