//! BTF for func_info: the minimal blob and records a program with static
//! subprograms needs, and `BPF_BTF_LOAD`.

use std::io;
use std::os::fd::OwnedFd;

use btf::write::{BtfWriter, Linkage};

use crate::{bpf_fd, log_fields, BPF_BTF_LOAD};

/// A minimal BTF blob for `func_info`: `int`, one `int (void)` prototype
/// and a static function of that prototype per name in `names` (type ids
/// 3, 4, ...). The kernel wants func_info, with static linkage, for every
/// function of a program that takes a callback's address (`bpf_loop`) and
/// of one whose subprograms use LD_ABS; it checks no argument of a static
/// function against its prototype.
pub fn static_funcs_btf(names: &[&str]) -> Vec<u8> {
    let mut btf = BtfWriter::default();
    let int = btf.int("int", 4, true);
    let proto = btf.func_proto(int, &[]);
    for name in names {
        let clean: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        btf.func(&clean, proto, Linkage::Static);
    }
    btf.to_bytes()
}

/// func_info records for functions starting at `starts` (slot indices,
/// the first 0) described by [`static_funcs_btf`] with as many names.
pub fn static_func_info(starts: &[usize]) -> Vec<[u32; 2]> {
    starts
        .iter()
        .enumerate()
        .map(|(i, &off)| [off as u32, 3 + i as u32])
        .collect()
}

/// Loads a BTF blob; `log` as for [`prog_load`](crate::prog_load).
pub fn btf_load(blob: &[u8], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        btf: u64,
        btf_log_buf: u64,
        btf_size: u32,
        btf_log_size: u32,
        btf_log_level: u32,
        _rest: [u32; 5],
    }
    let (level, size, buf) = log_fields(log);
    bpf_fd(
        BPF_BTF_LOAD,
        &mut Attr {
            btf: blob.as_ptr() as u64,
            btf_log_buf: buf,
            btf_size: blob.len() as u32,
            btf_log_size: size,
            btf_log_level: level,
            _rest: [0; 5],
        },
    )
}
