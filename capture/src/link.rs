//! XDP and TCX links. A link detaches when its last fd is closed, so the
//! kernel detaches xcap's programs when xcap exits, however it exits
//! (SIGKILL included). Kernels before 6.6 have no TCX: TC then goes
//! through [`crate::clsact`].

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::OnceLock;

pub use crate::sys::{link_create as create, link_update as update};
pub use crate::sys::{BPF_TCX_EGRESS, BPF_TCX_INGRESS, BPF_XDP};

pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub const BPF_F_BEFORE: u32 = 1 << 3;
pub const BPF_F_AFTER: u32 = 1 << 4;

/// Whether the kernel has TCX (Linux 6.6+), asked once per process with
/// `prog` (a TC program): a TCX link on interface 0 fails with ENODEV where
/// TCX exists (the device lookup), with EINVAL where the attach type is
/// unknown. Nothing gets attached either way, and no grace period passes.
pub fn have_tcx(prog: BorrowedFd<'_>) -> io::Result<bool> {
    static HAVE: OnceLock<bool> = OnceLock::new();
    if let Some(&have) = HAVE.get() {
        return Ok(have);
    }
    let have = match create(prog, 0, BPF_TCX_INGRESS, 0) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
        Err(e) => return Err(e),
    };
    Ok(*HAVE.get_or_init(|| have))
}
