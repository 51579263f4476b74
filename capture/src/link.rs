//! XDP and TCX links. A link detaches when its last fd is closed, so the
//! kernel detaches xcap's programs when xcap exits, however it exits
//! (SIGKILL included).

pub use crate::sys::{link_create as create, link_update as update};
pub use crate::sys::{BPF_TCX_EGRESS, BPF_TCX_INGRESS, BPF_XDP};

pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub const BPF_F_BEFORE: u32 = 1 << 3;
pub const BPF_F_AFTER: u32 = 1 << 4;
