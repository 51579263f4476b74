//! xcap's capture programs (`capture-bpf/`), built for the BPF target by
//! `build.rs` and embedded here, ready for [`crate::splice`]. Their
//! programs, stubs, maps, globals and record headers are named in the
//! `capture-abi` crate.

/// The compiled object (ELF, bpfel, with `.BTF` and `.BTF.ext`).
pub static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/capture.o"));
