//! Who sent each packet: the owner programs (cgroup hooks that record each
//! socket's process in socket storage), the owner record they keep and
//! the TC header carries ([`Owner`], [`super::live::Hdr::owner`]), and the
//! process filters' settings and maps.

/// The socket storage map of each socket's owner (`BPF_MAP_TYPE_SK_STORAGE`,
/// made by the loader with BTF and cloned on accept).
pub const OWNERS_MAP: &str = "XCAP_OWNERS";

/// The owner programs, each linked to the root cgroup at its hook (their
/// sections name it: `cgroup/sock_create`, `cgroup/connect4`, ...).
pub const PROGRAMS: [&str; 9] = [
    "xcap_owner_create",
    "xcap_owner_bind4",
    "xcap_owner_bind6",
    "xcap_owner_connect4",
    "xcap_owner_connect6",
    "xcap_owner_sendmsg4",
    "xcap_owner_sendmsg6",
    "xcap_owner_recvmsg4",
    "xcap_owner_recvmsg6",
];

/// u32 (`.rodata`, frozen): 1 to attribute packets at TC and at the
/// tracing hooks; with 0 the code is dead and plain capture costs nothing
/// more.
pub const GLOBAL_ATTRIBUTION: &str = "XCAP_ATTRIBUTION";
/// u32 (`.rodata`, frozen): which process filters apply (`SELECT_*` bits,
/// ANDed; a filter selects any of its map's keys).
pub const GLOBAL_SELECT: &str = "XCAP_SELECT";
pub const SELECT_PID: u32 = 1;
pub const SELECT_COMM: u32 = 2;
pub const SELECT_CGROUP: u32 = 4;

/// Hash maps of what the process filters select, one-byte values: pids
/// (u32 keys), command names (16 bytes, NUL-padded), cgroup ids (u64).
pub const SEL_PIDS_MAP: &str = "XCAP_SEL_PIDS";
pub const SEL_COMMS_MAP: &str = "XCAP_SEL_COMMS";
pub const SEL_CGROUPS_MAP: &str = "XCAP_SEL_CGROUPS";

/// [`super::live::Hdr::owner_state`]: attribution was off.
pub const OWNER_OFF: u8 = 0;
/// [`super::live::Hdr::owner`] holds the owner.
pub const OWNER_FOUND: u8 = 1;
/// No local socket: forwarded, or addressed to no socket here.
pub const OWNER_NO_SOCKET: u8 = 2;
/// A socket with no owner recorded (made by the kernel, or TIME_WAIT).
pub const OWNER_UNKNOWN: u8 = 3;
/// Tracing hooks: the packet carries no socket where the hook saw it, and
/// these programs cannot look one up (`bpf_sk_lookup_*` is for TC and
/// XDP): received and not yet delivered, forwarded, or the kernel's own.
pub const OWNER_NO_SOCKET_YET: u8 = 4;

/// u32 (`.rodata`, frozen), tracing hooks: the offset of `sk` in
/// `struct sk_buff`, from the kernel's BTF. The tracing programs read the
/// packet's socket there as a typed pointer, which `bpf_sk_storage_get`
/// takes from them.
pub const GLOBAL_SKB_SK_OFFSET: &str = "XCAP_SKB_SK_OFFSET";

/// The process a socket belongs to, as its last user from user space left
/// it: in the socket storage, and copied into a TC record's header and a
/// tracing sample's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// Thread group id (what `ps` calls the pid).
    pub pid: u32,
    /// The thread's id.
    pub tid: u32,
    /// The cgroup v2 id (the inode number of its directory).
    pub cgroup: u64,
    /// `bpf_get_netns_cookie` of the socket's network namespace.
    pub netns: u64,
    /// The thread's command name, NUL-padded.
    pub comm: [u8; 16],
}

/// Bytes of [`Owner`] (the socket storage's value size).
pub const OWNER_BYTES: usize = core::mem::size_of::<Owner>();
const _: () = assert!(OWNER_BYTES == 40);

// SAFETY: integers only, and no padding (40 bytes, checked above).
unsafe impl super::Plain for Owner {}
