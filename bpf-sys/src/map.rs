//! Maps: create, update (one or a batch), look up, freeze.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::{
    bpf, bpf_fd, object_name, BPF_MAP_CREATE, BPF_MAP_FREEZE, BPF_MAP_LOOKUP_ELEM,
    BPF_MAP_UPDATE_BATCH, BPF_MAP_UPDATE_ELEM,
};

/// What `BPF_MAP_CREATE` needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapSpec<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// Maps of maps: a map like the ones it will hold.
    pub inner_map_fd: Option<RawFd>,
    /// BTF naming the key and value types (maps the kernel makes only
    /// with it, such as socket storage).
    pub btf: Option<MapBtf>,
}

/// A map's key and value types, by id in a loaded BTF object.
#[derive(Clone, Copy, Debug)]
pub struct MapBtf {
    pub fd: RawFd,
    pub key_type_id: u32,
    pub value_type_id: u32,
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
        map_ifindex: u32,
        btf_fd: u32,
        btf_key_type_id: u32,
        btf_value_type_id: u32,
        _rest: [u32; 13],
    }
    let btf = spec
        .btf
        .map_or((0, 0, 0), |b| (b.fd as u32, b.key_type_id, b.value_type_id));
    bpf_fd(
        BPF_MAP_CREATE,
        &mut Attr {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags,
            inner_map_fd: spec.inner_map_fd.unwrap_or(0) as u32,
            numa_node: 0,
            map_name: object_name(spec.name),
            map_ifindex: 0,
            btf_fd: btf.0,
            btf_key_type_id: btf.1,
            btf_value_type_id: btf.2,
            _rest: [0; 13],
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
    map_update_flags(map, key, value, 0)
}

/// [`map_update`] with `BPF_*` update flags (`BPF_NOEXIST` = 1: only if
/// there is no value at `key` yet).
pub fn map_update_flags(map: RawFd, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    bpf(
        BPF_MAP_UPDATE_ELEM,
        &mut ElemAttr {
            map_fd: map as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
        },
    )
    .map(drop)
}

/// Writes `count` entries in one call: `keys` and `values` hold them back
/// to back (sizes as for [`map_update`]). For maps of maps this waits for
/// one RCU grace period in all, where [`map_update`] waits for one each.
pub fn map_update_batch(map: RawFd, keys: &[u8], values: &[u8], count: u32) -> io::Result<()> {
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    let mut attr = BatchAttr {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: map as u32,
        elem_flags: 0,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr)?;
    if attr.count != count {
        return Err(io::Error::other(format!(
            "batch update wrote {} of {count} entries",
            attr.count
        )));
    }
    Ok(())
}

/// Reads the value at `key` into `value` (sized as for [`map_update`]).
pub fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    bpf(
        BPF_MAP_LOOKUP_ELEM,
        &mut ElemAttr {
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
        &mut Attr {
            map_fd: map.as_raw_fd() as u32,
            _rest: [0; 7],
        },
    )
    .map(drop)
}
