//! ELF objects for blobs, written with the `object` crate, with hand-built
//! BTF.

use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};

use cbpf2ebpf::ebpf::{op, Insn};

use super::{BlobError, FilterBlob, ProgramKind};
use btf::write::{BtfWriter, ExtWriter, LineInfo, Linkage};
use btf::TypeId;

/// The name of the filter function inside program objects.
pub const PROGRAM_FILTER_NAME: &str = "xcap_filter";

/// The file name line info records point at.
const LINE_FILE: &str = "xcap";

/// The BTF prototype of the filter ABI: `__u32 (void *ctx, void *start,
/// void *end, __u32 wirelen)`.
fn filter_proto(btf: &mut BtfWriter) -> TypeId {
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

/// The BTF prototype of a loop callback: `long (__u64 index, void *ctx)`.
fn callback_proto(btf: &mut BtfWriter) -> TypeId {
    let long = btf.int("long", 8, true);
    let u64_ = btf.int("unsigned long long", 8, false);
    let void_ptr = btf.ptr(0);
    btf.func_proto(long, &[("index", u64_), ("ctx", void_ptr)])
}

/// Code cut at its first function's end: the first function (`head`), the
/// loop callbacks after it (`tail`, for `.text`), and each `ld_imm64` of a
/// callback's address in `head` as (slot in head, slot in tail).
struct Split {
    head: Vec<Insn>,
    tail: Vec<Insn>,
    /// Where each callback starts in `tail`.
    starts: Vec<usize>,
    refs: Vec<(usize, usize)>,
}

fn split(code: &[Insn]) -> Split {
    let starts = cbpf2ebpf::ebpf::function_starts(code);
    let cut = starts.get(1).copied().unwrap_or(code.len());
    let mut refs = Vec::new();
    let mut head = code[..cut].to_vec();
    for (i, x) in head.iter_mut().enumerate() {
        if x.code == op::LD | op::DW | op::IMM && x.src == op::PSEUDO_FUNC {
            refs.push((i, (i as i64 + 1 + i64::from(x.imm)) as usize - cut));
            // The relocation's section symbol plus imm: filled in by the
            // caller of split, as a byte offset in `.text`.
            x.imm = 0;
        }
    }
    Split {
        head,
        tail: code[cut..].to_vec(),
        starts: starts[1..].iter().map(|s| s - cut).collect(),
        refs,
    }
}

/// Defines `split`'s callbacks, which lie in `.text` at byte `at`: a
/// local function symbol, a static BTF FUNC, a func_info and a line_info
/// record each (the kernel wants func_info for every function of a program
/// that takes a callback's address).
fn define_callbacks(
    obj: &mut Object<'_>,
    btf: &mut BtfWriter,
    ext: &mut ExtWriter,
    split: &Split,
    text: SectionId,
    at: u64,
    name: &str,
) {
    if split.starts.is_empty() {
        return;
    }
    let proto = callback_proto(btf);
    let text_name = btf.string(".text");
    for (k, &start) in split.starts.iter().enumerate() {
        let end = split.starts.get(k + 1).copied().unwrap_or(split.tail.len());
        let suffix = if k == 0 { String::new() } else { k.to_string() };
        let cb_name = format!("{name}_loop{suffix}");
        let value = at + start as u64 * 8;
        obj.add_symbol(Symbol {
            name: cb_name.as_bytes().to_vec(),
            value,
            size: (end - start) as u64 * 8,
            kind: SymbolKind::Text,
            scope: SymbolScope::Compilation,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::Elf {
                st_info: (elf::STB_LOCAL << 4) | elf::STT_FUNC,
                st_other: elf::STV_DEFAULT,
            },
        });
        let func = btf.func(&cb_name, proto, Linkage::Static);
        ext.func(text_name, value as u32, func);
        let l = line(
            btf,
            value as u32,
            &format!("{cb_name}: a pass of the filter's loop"),
        );
        ext.line(text_name, l);
    }
}

/// Relocates `split.head`'s references to its callbacks (in `.text` at
/// byte `at`) where the head lies: section `head_sec` at byte `head_at`.
/// They are relative to `.text`'s section symbol, as clang refers to
/// static functions (libbpf and aya both follow it). Returns the head
/// with each `imm` set for its relocation.
fn relocate_callbacks(
    obj: &mut Object<'_>,
    split: &Split,
    text: SectionId,
    at: u64,
    head_sec: SectionId,
    head_at: u64,
) -> Result<Vec<Insn>, BlobError> {
    let mut head = split.head.clone();
    if split.refs.is_empty() {
        return Ok(head);
    }
    let section_sym = obj.section_symbol(text);
    for &(slot, target) in &split.refs {
        head[slot].imm = (at + target as u64 * 8) as i32;
        obj.add_relocation(
            head_sec,
            Relocation {
                offset: head_at + slot as u64 * 8,
                symbol: section_sym,
                addend: 0,
                flags: RelocationFlags::Elf {
                    r_type: elf::R_BPF_64_64,
                },
            },
        )
        .map_err(|e| BlobError::Write(e.to_string()))?;
    }
    Ok(head)
}

fn new_object() -> Object<'static> {
    Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little)
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

fn line(btf: &mut BtfWriter, insn_off: u32, text: &str) -> LineInfo {
    LineInfo {
        insn_off,
        file_name_off: btf.string(LINE_FILE),
        line_off: btf.string(text),
        line: 1,
        col: 0,
    }
}

fn add_btf(obj: &mut Object<'_>, btf: &BtfWriter, ext: &ExtWriter) {
    for (name, data) in [(".BTF", btf.to_bytes()), (".BTF.ext", ext.to_bytes())] {
        let id = obj.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Other);
        obj.append_section_data(id, &data, 4);
    }
}

fn finish(obj: Object<'_>) -> Result<Vec<u8>, BlobError> {
    obj.write().map_err(|e| BlobError::Write(e.to_string()))
}

/// The filter at the start of `text` and its callbacks after it, their
/// addresses relocated; returns the filter's size in bytes.
fn place_filter(
    obj: &mut Object<'_>,
    btf: &mut BtfWriter,
    ext: &mut ExtWriter,
    blob: &FilterBlob,
    text: SectionId,
    name: &str,
) -> Result<usize, BlobError> {
    let split = split(blob.insns());
    let filter_bytes = split.head.len() * 8;
    define_callbacks(obj, btf, ext, &split, text, filter_bytes as u64, name);
    let head = relocate_callbacks(obj, &split, text, filter_bytes as u64, text, 0)?;
    let mut code = cbpf2ebpf::ebpf::to_bytes(&head);
    code.extend(cbpf2ebpf::ebpf::to_bytes(&split.tail));
    obj.append_section_data(text, &code, 8);
    Ok(filter_bytes)
}

/// The filter as function `name` at the start of `text`, with its symbol,
/// BTF FUNC, func_info and line_info: `exported`, a global symbol with
/// hidden visibility and a global BTF function (for libbpf's linker);
/// otherwise local and static.
fn filter_function(
    obj: &mut Object<'_>,
    btf: &mut BtfWriter,
    ext: &mut ExtWriter,
    blob: &FilterBlob,
    text: SectionId,
    name: &str,
    exported: bool,
) -> Result<SymbolId, BlobError> {
    let filter_bytes = place_filter(obj, btf, ext, blob, text, name)?;
    let (bind, visibility, linkage) = if exported {
        (elf::STB_GLOBAL, elf::STV_HIDDEN, Linkage::Global)
    } else {
        (elf::STB_LOCAL, elf::STV_DEFAULT, Linkage::Static)
    };
    let symbol = func_symbol(obj, name, text, filter_bytes, bind, visibility);
    let proto = filter_proto(btf);
    let func = btf.func(name, proto, linkage);
    let sec = btf.string(".text");
    ext.func(sec, 0, func);
    let l = line(btf, 0, &format!("xcap filter: {}", blob.source()));
    ext.line(sec, l);
    Ok(symbol)
}

pub(super) fn function_object(blob: &FilterBlob, name: &str) -> Result<Vec<u8>, BlobError> {
    let mut obj = new_object();
    let mut btf = BtfWriter::default();
    let mut ext = ExtWriter::default();
    let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    // Global: libbpf's linker resolves externs only against non-static
    // BTF functions; libbpf makes it static at load (hidden symbol).
    filter_function(&mut obj, &mut btf, &mut ext, blob, text, name, true)?;
    add_btf(&mut obj, &btf, &ext);
    finish(obj)
}

pub(super) fn program_object(
    blob: &FilterBlob,
    kind: ProgramKind,
    invert: bool,
) -> Result<Vec<u8>, BlobError> {
    let mut obj = new_object();
    let mut btf = BtfWriter::default();
    let mut ext = ExtWriter::default();
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
    // A loop callback goes to .text either way: libbpf takes functions
    // from .text only. The entry's or the filter's references to it are
    // relocated against .text.
    let text = match (&inlined, blob.callback()) {
        (None, _) | (_, Some(_)) => {
            Some(obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text))
        }
        _ => None,
    };
    // The entry, with the filter inlined and its callbacks cut off.
    let entry_split = inlined.as_ref().map(|done| split(&done.insns));
    let filter = match inlined {
        Some(_) => {
            if let (Some(text), Some(s)) = (text, &entry_split) {
                obj.append_section_data(text, &cbpf2ebpf::ebpf::to_bytes(&s.tail), 8);
                define_callbacks(
                    &mut obj,
                    &mut btf,
                    &mut ext,
                    s,
                    text,
                    0,
                    PROGRAM_FILTER_NAME,
                );
            }
            None
        }
        None => {
            let text = text.expect("made above");
            Some(filter_function(
                &mut obj,
                &mut btf,
                &mut ext,
                blob,
                text,
                PROGRAM_FILTER_NAME,
                false,
            )?)
        }
    };

    // The programs: `int name(struct ctx *ctx)`.
    let int = btf.int("int", 4, true);
    let ctx = btf.fwd_struct(kind.ctx_struct());
    let ctx_ptr = btf.ptr(ctx);
    let proto = btf.func_proto(int, &[("ctx", ctx_ptr)]);
    for e in kind.entries() {
        let sec = obj.add_section(Vec::new(), e.section.as_bytes().to_vec(), SectionKind::Text);
        let code = match (&entry_split, text) {
            (Some(s), Some(text)) => relocate_callbacks(&mut obj, s, text, 0, sec, 0)?,
            (Some(s), None) => s.head.clone(),
            (None, _) => entry.clone(),
        };
        let entry_bytes = cbpf2ebpf::ebpf::to_bytes(&code);
        obj.append_section_data(sec, &entry_bytes, 8);
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
