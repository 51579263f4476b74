//! `BPF_LINK_CREATE` for XDP and TCX. A link detaches when its last fd is
//! closed, so the kernel detaches xcap's programs when xcap exits, however
//! it exits (SIGKILL included).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_LINK_CREATE: libc::c_int = 28;
pub const BPF_XDP: u32 = 37;
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub const BPF_F_BEFORE: u32 = 1 << 3;
pub const BPF_F_AFTER: u32 = 1 << 4;

#[repr(C)]
struct LinkCreate {
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

/// Creates a link of `attach_type` for `prog` on `ifindex`.
pub fn create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type,
        flags,
        relative: 0,
        _pad: 0,
        expected_revision: 0,
        _rest: [0; 4],
    };
    // SAFETY: a valid, fully initialised attr.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &attr as *const LinkCreate,
            std::mem::size_of::<LinkCreate>() as u32,
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
