//! What attribution needs from `bpf(2)`: programs attached to a cgroup v2
//! through links, and socket storage (`BPF_MAP_TYPE_SK_STORAGE`), which
//! the kernel makes only with BTF naming its key and value.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use btf::write::BtfWriter;

use crate::map::{map_create, MapBtf, MapSpec};
use crate::{bpf_fd, BPF_LINK_CREATE};

/// `enum bpf_prog_type` values of the cgroup socket hooks.
pub const PROG_TYPE_CGROUP_SOCK: u32 = 9;
pub const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;

/// `BPF_MAP_TYPE_SK_STORAGE`.
pub const MAP_TYPE_SK_STORAGE: u32 = 24;
/// `BPF_F_NO_PREALLOC`: socket storage is allocated per socket.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_F_CLONE`: a socket made by accept() gets a copy of its listener's.
const BPF_F_CLONE: u32 = 1 << 9;

/// Links `prog` to the cgroup v2 directory `cgroup` at `attach_type`
/// (`BPF_CGROUP_*`). Several links may share a hook; the program runs for
/// every task in the cgroup and below until the link's last fd closes.
pub fn cgroup_link_create(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        target_fd: u32,
        attach_type: u32,
        flags: u32,
        _rest: [u64; 6],
    }
    bpf_fd(
        BPF_LINK_CREATE,
        &mut Attr {
            prog_fd: prog.as_raw_fd() as u32,
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type,
            flags: 0,
            _rest: [0; 6],
        },
    )
}

/// A socket storage map of `value_size`-byte values, cloned on accept.
/// Its BTF describes the key as `int` and the value as a byte array: the
/// kernel checks only their sizes (and that the key is a 32-bit int).
pub fn sk_storage_create(name: &str, value_size: u32) -> io::Result<OwnedFd> {
    let btf = crate::btf_load(&sk_storage_btf(value_size), None)?;
    map_create(&MapSpec {
        name,
        map_type: MAP_TYPE_SK_STORAGE,
        key_size: 4,
        value_size,
        max_entries: 0,
        flags: BPF_F_NO_PREALLOC | BPF_F_CLONE,
        inner_map_fd: None,
        btf: Some(MapBtf {
            fd: btf.as_raw_fd(),
            key_type_id: 1,
            value_type_id: 3,
        }),
    })
}

/// BTF types 1: `int`, 2: `unsigned char`, 3: `unsigned char[value_size]`.
fn sk_storage_btf(value_size: u32) -> Vec<u8> {
    let mut btf = BtfWriter::default();
    let int = btf.int("int", 4, true);
    let byte = btf.int("unsigned char", 1, false);
    btf.array(byte, int, value_size);
    btf.to_bytes()
}
