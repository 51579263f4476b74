//! # xcap-btf
//!
//! BTF, the kernel's type format, as xcap reads and writes it, with one
//! table of kinds ([`Kind`]) for all of it:
//!
//! - [`Btf`] reads a `.BTF` blob: the running kernel's
//!   ([`Btf::vmlinux`], parsed once per capture and passed along), or an
//!   object's `.BTF` section. It answers what the tracing hooks and the
//!   injector ask: struct member offsets, function prototypes, tracepoint
//!   arguments, enum values, a type's kind through typedefs and
//!   qualifiers.
//! - [`ext`] reads an object's `.BTF.ext` and writes it back with its
//!   records moved (the injector's splice moves code).
//! - [`write`](mod@write) builds the few types a filter object or a test-run program
//!   needs (integers, pointers, prototypes, functions) and their func_info
//!   and line_info records.
//!
//! Layouts follow the kernel's `include/uapi/linux/btf.h` and libbpf's
//! `btf_ext_header`.

pub mod ext;
mod kind;
mod read;
pub mod write;

pub use kind::Kind;
pub use read::{Btf, Param, Type, VMLINUX};

/// `BTF_MAGIC`, little-endian: the first two bytes of `.BTF` and `.BTF.ext`.
pub const MAGIC: u16 = 0xeb9f;
/// The only BTF version.
pub const VERSION: u8 = 1;

/// A BTF type id (0 is `void`).
pub type TypeId = u32;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}
