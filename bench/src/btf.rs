//! The BTF a harness is loaded with: a blob written by hand that names
//! one `int (void)` function per subprogram, and its `BTF_LOAD`.
//!
//! The benchmark's only BTF code, kept alone in this module so that the
//! project's shared BTF code, once there is one, replaces this file and
//! nothing else (its one caller: [`crate::sys::load_with_btf`]).

use std::io;
use std::os::fd::OwnedFd;

/// A minimal BTF blob: `int`, one `int (void)` prototype and `nfuncs`
/// static functions `f0`, `f1`, ... of that prototype (type ids 3..).
pub fn functions(nfuncs: usize) -> Vec<u8> {
    let mut strings = b"\0int\0".to_vec();
    let mut types: Vec<u32> = vec![
        // 1: INT "int", 4 bytes, signed, 32 bits.
        1,
        1 << 24,
        4,
        0x0100_0020,
        // 2: FUNC_PROTO returning int, no parameters.
        0,
        13 << 24,
        1,
    ];
    for i in 0..nfuncs {
        let off = strings.len() as u32;
        strings.extend_from_slice(format!("f{i}\0").as_bytes());
        // FUNC, static linkage, type 2.
        types.extend_from_slice(&[off, 12 << 24, 2]);
    }
    let type_bytes: Vec<u8> = types.iter().flat_map(|t| t.to_le_bytes()).collect();
    let mut b = Vec::new();
    b.extend_from_slice(&0xeb9fu16.to_le_bytes());
    b.push(1); // version
    b.push(0); // flags
    b.extend_from_slice(&24u32.to_le_bytes()); // hdr_len
    b.extend_from_slice(&0u32.to_le_bytes()); // type_off
    b.extend_from_slice(&(type_bytes.len() as u32).to_le_bytes());
    b.extend_from_slice(&(type_bytes.len() as u32).to_le_bytes()); // str_off
    b.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    b.extend_from_slice(&type_bytes);
    b.extend_from_slice(&strings);
    b
}

pub fn load(blob: &[u8]) -> io::Result<OwnedFd> {
    let mut log = vec![0u8; 64 << 10];
    bpf_sys::btf_load(blob, Some(&mut log)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("BTF_LOAD: {e}: {}", bpf_sys::log_text(&log)),
        )
    })
}
