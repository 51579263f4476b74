//! xcap's capture programs (`capture-bpf/`), built for the BPF target by
//! `build.rs` and embedded here, and the filters spliced into them.
//!
//! The object holds the XDP and TC programs (`capture_abi::live`) and the
//! tracing programs (`capture_abi::trace`), each calling a filter stub;
//! [`splice`] puts translated filters in the stubs' place, with the
//! injector's generic splice.

use cbpf2ebpf::ebpf::Insn;

use crate::Error;

/// The compiled object (ELF, bpfel, with `.BTF` and `.BTF.ext`).
pub static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/capture.o"));

/// [`OBJECT`] with each `(stub, filter)`'s filter in place of the stub.
pub fn splice(filters: &[(&str, &[Insn])]) -> Result<injector::Spliced, Error> {
    injector::splice(OBJECT, filters).map_err(|e| Error::Load(e.to_string()))
}
