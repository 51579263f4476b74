//! # injector
//!
//! Splices translated filters into a compiled BPF ELF object: the body of a
//! *filter stub* (a local, never-inlined function with the filter ABI of
//! [`cbpf2ebpf`]) is replaced by the filter's instructions, so every call to
//! the stub calls the filter as a bpf2bpf subprogram, verified in its
//! caller's context. The result loads with aya (`EbpfLoader::load`) and
//! libbpf (`bpftool prog load`) like any compiled object.
//!
//! ```no_run
//! # let object: Vec<u8> = Vec::new();
//! # let insns: Vec<cbpf2ebpf::ebpf::Insn> = Vec::new();
//! let spliced = injector::splice(&object, &[("xcap_filter", &insns[..])]).unwrap();
//! for p in &spliced.programs {
//!     println!("{} ({}) calls {:?}", p.name, p.section, p.stubs);
//! }
//! std::fs::write("out.o", &spliced.elf).unwrap();
//! ```
//!
//! What changes in the object (see README.md for the stub contract):
//! - the stub's section grows or shrinks; every later symbol, every
//!   relocation and every call or function reference (relocated or
//!   pc-relative) into that section follows;
//! - with `.BTF.ext`, func_info, line_info and CO-RE records of that section
//!   move with the code: the stub keeps its func_info record (its BTF FUNC,
//!   whose prototype is checked: four parameters, an integer result) and one
//!   line_info record at its first instruction; records that pointed inside
//!   the old body are dropped, and `.rel.BTF.ext` is rewritten to match;
//! - DWARF (`.debug_*` and their relocations) is emptied: it would describe
//!   the old code, and no loader reads it (BTF line_info keeps source lines).

mod elf;
mod names;

// Each documented in its own file: filters as eBPF blobs (raw
// instructions, a function object to link, a complete XDP or TC program);
// loads of frozen settings replaced by their values in a linked program;
// bpf2bpf calls of a filter replaced by its body.
pub mod blob;
pub mod fold;
pub mod inline;

mod splice;
pub use splice::{splice, Program, Spliced, StubReport};

/// Why an object could not be spliced. Each message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not an ELF object (no ELF magic)")]
    NotElf,
    #[error("not an eBPF object: ELF machine {machine} ({name}), expected 247 (EM_BPF)")]
    NotBpf { machine: u16, name: &'static str },
    #[error("unsupported eBPF object: {0}")]
    Unsupported(String),
    #[error("malformed ELF object: {0}")]
    Malformed(String),
    #[error("filter stub `{stub}` not found; functions that could be stubs: {}", list(.candidates))]
    StubMissing {
        stub: String,
        candidates: Vec<String>,
    },
    #[error("filter stub `{stub}` is ambiguous: it matches {}", list(.matches))]
    StubAmbiguous { stub: String, matches: Vec<String> },
    #[error("filter stub `{stub}` ({symbol}) is not called by any program")]
    StubNeverCalled { stub: String, symbol: String },
    #[error("filter stub `{stub}` has the wrong signature: {detail} (the filter ABI is `u32 f(void *ctx, void *start, void *end, u32 wirelen)`)")]
    StubSignature { stub: String, detail: String },
    #[error("filter stub `{stub}` is {detail}")]
    StubUnsupported { stub: String, detail: String },
    #[error("filter stub `{0}` is listed twice")]
    DuplicateStub(String),
    #[error("relocation not understood in section `{section}` at offset {offset:#x}: {detail}")]
    Relocation {
        section: String,
        offset: u64,
        detail: String,
    },
    #[error("filter for stub `{stub}`: {detail}")]
    BadFilter { stub: String, detail: String },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
