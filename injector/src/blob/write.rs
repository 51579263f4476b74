//! ELF objects for blobs, written with the `object` crate, with hand-built
//! BTF.

use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};

use super::btf::{Btf, BtfExt, LineInfo, Linkage, TypeId};
use super::{BlobError, FilterBlob, ProgramKind};

/// The name of the filter function inside program objects.
pub const PROGRAM_FILTER_NAME: &str = "xcap_filter";

/// The file name line info records point at.
const LINE_FILE: &str = "xcap";

/// The BTF prototype of the filter ABI: `__u32 (void *ctx, void *start,
/// void *end, __u32 wirelen)`.
fn filter_proto(btf: &mut Btf) -> TypeId {
    let uint = btf.int("unsigned int", 4, false);
    let u32_ = btf.typedef("__u32", uint);
    let void_ptr = btf.ptr(0);
    btf.func_proto(
        u32_,
        &[
            ("ctx", void_ptr),
            ("start", void_ptr),
            ("end", void_ptr),
            ("wirelen", u32_),
        ],
    )
}

fn new_object() -> Object<'static> {
    Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little)
}

fn code_section(obj: &mut Object<'_>, name: &str, bytes: &[u8]) -> SectionId {
    let id = obj.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Text);
    obj.append_section_data(id, bytes, 8);
    id
}

fn func_symbol(
    obj: &mut Object<'_>,
    name: &str,
    section: SectionId,
    size: usize,
    bind: u8,
    visibility: u8,
) -> SymbolId {
    obj.add_symbol(Symbol {
        name: name.as_bytes().to_vec(),
        value: 0,
        size: size as u64,
        kind: SymbolKind::Text,
        scope: if bind == elf::STB_LOCAL {
            SymbolScope::Compilation
        } else if visibility == elf::STV_HIDDEN {
            SymbolScope::Linkage
        } else {
            SymbolScope::Dynamic
        },
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::Elf {
            st_info: (bind << 4) | elf::STT_FUNC,
            st_other: visibility,
        },
    })
}

fn line(btf: &mut Btf, insn_off: u32, text: &str) -> LineInfo {
    LineInfo {
        insn_off,
        file_name_off: btf.string(LINE_FILE),
        line_off: btf.string(text),
        line: 1,
        col: 0,
    }
}

fn add_btf(obj: &mut Object<'_>, btf: &Btf, ext: &BtfExt) {
    for (name, data) in [(".BTF", btf.to_bytes()), (".BTF.ext", ext.to_bytes())] {
        let id = obj.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Other);
        obj.append_section_data(id, &data, 4);
    }
}

fn finish(obj: Object<'_>) -> Result<Vec<u8>, BlobError> {
    obj.write().map_err(|e| BlobError::Write(e.to_string()))
}

pub(super) fn function_object(blob: &FilterBlob, name: &str) -> Result<Vec<u8>, BlobError> {
    let mut obj = new_object();
    let code = blob.bytes();
    let text = code_section(&mut obj, ".text", &code);
    func_symbol(
        &mut obj,
        name,
        text,
        code.len(),
        elf::STB_GLOBAL,
        elf::STV_HIDDEN,
    );

    let mut btf = Btf::default();
    let proto = filter_proto(&mut btf);
    // Global: libbpf's linker resolves externs only against non-static
    // BTF functions; libbpf makes it static at load (hidden symbol).
    let func = btf.func(name, proto, Linkage::Global);
    let mut ext = BtfExt::default();
    let sec = btf.string(".text");
    ext.func(sec, 0, func);
    let l = line(&mut btf, 0, &format!("xcap filter: {}", blob.source()));
    ext.line(sec, l);
    add_btf(&mut obj, &btf, &ext);
    finish(obj)
}

pub(super) fn program_object(
    blob: &FilterBlob,
    kind: ProgramKind,
    invert: bool,
) -> Result<Vec<u8>, BlobError> {
    let mut obj = new_object();
    let mut btf = Btf::default();
    let mut ext = BtfExt::default();
    let verdict = match (kind, invert) {
        (ProgramKind::Xdp, false) => "XDP_PASS if it matches, else XDP_DROP",
        (ProgramKind::Xdp, true) => "XDP_DROP if it matches, else XDP_PASS",
        (ProgramKind::Tc, false) => "TC_ACT_OK if it matches, else TC_ACT_SHOT",
        (ProgramKind::Tc, true) => "TC_ACT_SHOT if it matches, else TC_ACT_OK",
    };
    let (entry, call) = kind.code(blob.mode(), invert);

    // The filter inlined into the entry: a bpf2bpf call and return cost
    // more than most filters. If the inliner refuses (it never has on a
    // translated filter), the filter stays a static function in .text,
    // called and verified in the caller's context.
    let mut linked = entry.clone();
    linked[call].imm = (entry.len() - call - 1) as i32;
    linked.extend_from_slice(blob.insns());
    let inlined = crate::inline::inline_calls(&linked, entry.len()).ok();
    let filter = match inlined {
        Some(_) => None,
        None => {
            let filter_proto = filter_proto(&mut btf);
            let code = blob.bytes();
            let text = code_section(&mut obj, ".text", &code);
            let filter = func_symbol(
                &mut obj,
                PROGRAM_FILTER_NAME,
                text,
                code.len(),
                elf::STB_LOCAL,
                elf::STV_DEFAULT,
            );
            let func = btf.func(PROGRAM_FILTER_NAME, filter_proto, Linkage::Static);
            let text_name = btf.string(".text");
            ext.func(text_name, 0, func);
            let l = line(&mut btf, 0, &format!("xcap filter: {}", blob.source()));
            ext.line(text_name, l);
            Some(filter)
        }
    };

    // The programs: `int name(struct ctx *ctx)`.
    let int = btf.int("int", 4, true);
    let ctx = btf.fwd_struct(kind.ctx_struct());
    let ctx_ptr = btf.ptr(ctx);
    let proto = btf.func_proto(int, &[("ctx", ctx_ptr)]);
    let entry_bytes = match &inlined {
        Some(done) => cbpf2ebpf::ebpf::to_bytes(&done.insns),
        None => cbpf2ebpf::ebpf::to_bytes(&entry),
    };
    for e in kind.entries() {
        let sec = code_section(&mut obj, e.section, &entry_bytes);
        func_symbol(
            &mut obj,
            e.name,
            sec,
            entry_bytes.len(),
            elf::STB_GLOBAL,
            elf::STV_DEFAULT,
        );
        if let Some(filter) = filter {
            obj.add_relocation(
                sec,
                Relocation {
                    offset: (call * 8) as u64,
                    symbol: filter,
                    addend: 0,
                    flags: RelocationFlags::Elf {
                        r_type: elf::R_BPF_64_32,
                    },
                },
            )
            .map_err(|e| BlobError::Write(e.to_string()))?;
        }
        let func = btf.func(e.name, proto, Linkage::Global);
        let sec_name = btf.string(e.section);
        ext.func(sec_name, 0, func);
        let text = match filter {
            Some(_) => format!("{}: {verdict}", e.name),
            None => format!("{}: {verdict}; filter: {}", e.name, blob.source()),
        };
        let l = line(&mut btf, 0, &text);
        ext.line(sec_name, l);
    }

    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(license, b"GPL\0", 1);

    add_btf(&mut obj, &btf, &ext);
    finish(obj)
}
