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

mod btf;
mod elf;
mod names;

// Each documented in its own file: filters as eBPF blobs (raw
// instructions, a function object to link, a complete XDP or TC program);
// loads of frozen settings replaced by their values in a linked program;
// bpf2bpf calls of a filter replaced by its body.
pub mod blob;
pub mod fold;
pub mod inline;

use std::collections::{BTreeMap, HashMap, VecDeque};

use cbpf2ebpf::ebpf::{self, Insn};

use elf::{Elf, Rel, R_BPF_64_32, R_BPF_64_64, R_BPF_NONE};

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

/// The spliced object and what was found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spliced {
    /// The new ELF object.
    pub elf: Vec<u8>,
    /// Every program in the object (functions in code sections other than
    /// `.text*`), with the requested stubs it reaches through calls.
    pub programs: Vec<Program>,
    /// One entry per requested stub, in request order.
    pub stubs: Vec<StubReport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// ELF section, e.g. `xdp` or `classifier` (its attach type for loaders).
    pub section: String,
    /// Function symbol.
    pub name: String,
    /// Requested stub names this program calls, directly or through other
    /// subprograms.
    pub stubs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubReport {
    /// The name as requested.
    pub name: String,
    /// The symbol it matched (possibly mangled).
    pub symbol: String,
    pub section: String,
    /// Size of the stub body that was replaced, and of the filter, in
    /// instruction slots.
    pub old_insns: usize,
    pub new_insns: usize,
    /// Names of the programs that call it.
    pub programs: Vec<String>,
}

const INSN: u64 = 8;
const CALL: u8 = 0x85;
const LD_IMM64: u8 = 0x18;
const PSEUDO_CALL: u8 = 1;
const PSEUDO_FUNC: u8 = 4;

/// A sized function symbol in a code section.
struct Func {
    sym: usize,
    section: usize,
    start: u64,
    end: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefKind {
    /// `call` of a BPF function.
    Call,
    /// `ld_imm64` of a function's address (bpf_loop callbacks and the like).
    FuncAddr,
}

/// An instruction that refers to code: where it is, how, and what it
/// reaches (section, byte offset).
struct CodeRef {
    section: usize,
    off: u64,
    kind: RefKind,
    /// The relocation's symbol; `None` for a pc-relative call.
    sym: Option<usize>,
    target: (usize, u64),
}

/// One replaced stub body.
struct Edit {
    start: u64,
    end: u64,
    new: Vec<u8>,
}

/// New position of byte offset `off` of a section with these (sorted)
/// edits; `None` when it lies strictly inside a replaced body.
fn shift(edits: &[Edit], off: u64) -> Option<u64> {
    let mut delta: i64 = 0;
    for e in edits {
        if off <= e.start {
            break;
        }
        if off < e.end {
            return None;
        }
        delta += e.new.len() as i64 - (e.end - e.start) as i64;
    }
    Some((off as i64 + delta) as u64)
}

fn insn_at(data: &[u8], off: u64) -> Insn {
    let o = off as usize;
    Insn::from_bytes(data[o..o + 8].try_into().unwrap())
}

fn set_imm(data: &mut [u8], off: u64, imm: i32) {
    let o = off as usize + 4;
    data[o..o + 4].copy_from_slice(&imm.to_le_bytes());
}

/// Checks a filter's instructions; returns where its callbacks start (the
/// functions after the first, reached through `ld_imm64` of their address,
/// as `cbpf2ebpf` lays out a loop callback).
fn check_filter(stub: &str, insns: &[Insn]) -> Result<Vec<usize>, Error> {
    let bad = |detail: String| Error::BadFilter {
        stub: stub.to_owned(),
        detail,
    };
    if insns.is_empty() {
        return Err(bad("no instructions".into()));
    }
    if insns.len() > cbpf2ebpf::MAX_EBPF_INSNS {
        return Err(bad(format!(
            "{} instructions, more than {}",
            insns.len(),
            cbpf2ebpf::MAX_EBPF_INSNS
        )));
    }
    let starts = ebpf::function_starts(insns);
    let mut i = 0;
    while i < insns.len() {
        let x = insns[i];
        if x.code == LD_IMM64 {
            let target = i as i64 + 1 + i64::from(x.imm);
            match x.src {
                0 => {}
                PSEUDO_FUNC if target > 0 && starts.binary_search(&(target as usize)).is_ok() => {}
                PSEUDO_FUNC => {
                    return Err(bad(format!(
                        "instruction {i} takes the address of instruction {target}, not of a function after the filter's first"
                    )))
                }
                src => return Err(bad(format!("instruction {i} loads a map or other address (ld_imm64 src {src}), which needs a relocation"))),
            }
            if i + 1 == insns.len() {
                return Err(bad("it ends in the first half of an ld_imm64".into()));
            }
            i += 2;
            continue;
        }
        if x.code == CALL && x.src != 0 {
            return Err(bad(format!(
                "instruction {i} calls a BPF function or kfunc; a filter may call helpers only"
            )));
        }
        i += 1;
    }
    Ok(starts[1..].to_vec())
}

/// The name of a stub's `k`-th callback symbol (1-based).
fn callback_name(stub_symbol: &str, k: usize) -> String {
    if k == 1 {
        format!("xcap_loop.{stub_symbol}")
    } else {
        format!("xcap_loop{k}.{stub_symbol}")
    }
}

/// A stub with callbacks: where they go and which symbols name them.
struct CallbackPlan {
    /// The stub's function (index into `funcs`).
    func: usize,
    /// The filter's instructions.
    insns: Vec<Insn>,
    /// Slot where each callback starts.
    starts: Vec<usize>,
    /// The symbol of each callback: one of an earlier splice's, else new.
    symbols: Vec<usize>,
}

/// Replaces the body of each named stub by its filter. See the crate docs.
pub fn splice(elf: &[u8], filters: &[(&str, &[Insn])]) -> Result<Spliced, Error> {
    let obj = Elf::parse(elf)?;
    let secs = &obj.sections;
    let syms = &obj.symbols;

    // --- Functions and code references -------------------------------
    let mut funcs: Vec<Func> = Vec::new();
    for (i, s) in syms.iter().enumerate() {
        let Some(sec) = s.section.filter(|&x| secs[x].is_code()) else {
            continue;
        };
        if !s.is_func() || s.size == 0 {
            continue;
        }
        let end = s
            .value
            .checked_add(s.size)
            .filter(|&e| e <= secs[sec].data.len() as u64);
        match end {
            Some(end) if s.value % INSN == 0 && s.size % INSN == 0 => funcs.push(Func {
                sym: i,
                section: sec,
                start: s.value,
                end,
            }),
            _ => {
                return Err(Error::Malformed(format!(
                    "function `{}` lies outside its section or is misaligned",
                    s.name
                )))
            }
        }
    }
    funcs.sort_by_key(|f| (f.section, f.start));
    for w in funcs.windows(2) {
        if w[0].section == w[1].section && w[1].start < w[0].end {
            return Err(Error::Malformed(format!(
                "functions `{}` and `{}` overlap",
                syms[w[0].sym].name, syms[w[1].sym].name
            )));
        }
    }
    let func_at = |sec: usize, off: u64| -> Option<usize> {
        let i = funcs.partition_point(|f| (f.section, f.start) <= (sec, off));
        (i > 0 && funcs[i - 1].section == sec && off < funcs[i - 1].end).then(|| i - 1)
    };

    let mut refs: Vec<CodeRef> = Vec::new();
    let mut rels_of: HashMap<usize, BTreeMap<u64, Rel>> = HashMap::new();
    for (si, s) in secs.iter().enumerate() {
        if !s.is_code() {
            continue;
        }
        let len = s.data.len() as u64;
        if !len.is_multiple_of(INSN) {
            return Err(Error::Malformed(format!(
                "code section `{}` is not a whole number of instructions",
                s.name
            )));
        }
        let rel_err = |offset: u64, detail: String| Error::Relocation {
            section: s.name.clone(),
            offset,
            detail,
        };
        let mut rels = BTreeMap::new();
        if let Some((_, rs)) = obj.rels_for(si) {
            for r in &rs.rels {
                if r.kind == R_BPF_NONE {
                    continue;
                }
                if r.offset % INSN != 0 || r.offset.checked_add(INSN).is_none_or(|e| e > len) {
                    return Err(rel_err(
                        r.offset,
                        "not at an instruction of the section".into(),
                    ));
                }
                let code = s.data[r.offset as usize];
                match r.kind {
                    R_BPF_64_32 if code == CALL => {}
                    R_BPF_64_64 if code == LD_IMM64 && r.offset + 2 * INSN <= len => {}
                    R_BPF_64_32 | R_BPF_64_64 => {
                        return Err(rel_err(
                            r.offset,
                            format!(
                                "relocation type {} on instruction opcode {code:#04x}",
                                r.kind
                            ),
                        ))
                    }
                    k => {
                        return Err(rel_err(
                            r.offset,
                            format!(
                                "relocation type {k} in code (expected R_BPF_64_64 or R_BPF_64_32)"
                            ),
                        ))
                    }
                }
                if rels.insert(r.offset, *r).is_some() {
                    return Err(rel_err(
                        r.offset,
                        "two relocations for one instruction".into(),
                    ));
                }
            }
        }
        let mut off = 0;
        while off < len {
            let x = insn_at(s.data, off);
            let step = if x.code == LD_IMM64 { 2 * INSN } else { INSN };
            let rel = rels.get(&off);
            let code_sym = rel.and_then(|r| {
                let sym = &syms[r.sym as usize];
                sym.section
                    .filter(|&t| secs[t].is_code())
                    .map(|t| (r.sym as usize, t, sym.value))
            });
            if x.code == CALL && x.src == PSEUDO_CALL {
                match (rel, code_sym) {
                    (Some(_), Some((sym, t, v))) => {
                        let target = v as i64 + (i64::from(x.imm) + 1) * INSN as i64;
                        refs.push(CodeRef {
                            section: si,
                            off,
                            kind: RefKind::Call,
                            sym: Some(sym),
                            target: (t, target as u64),
                        });
                    }
                    (Some(r), None) if syms[r.sym as usize].section.is_some() => {
                        return Err(rel_err(
                            off,
                            format!(
                                "call relocated against `{}`, which is not code",
                                syms[r.sym as usize].name
                            ),
                        ))
                    }
                    // A call to an undefined (extern) function: not ours to resolve.
                    (Some(_), None) => {}
                    (None, _) => {
                        let target = off as i64 + (i64::from(x.imm) + 1) * INSN as i64;
                        refs.push(CodeRef {
                            section: si,
                            off,
                            kind: RefKind::Call,
                            sym: None,
                            target: (si, target as u64),
                        });
                    }
                }
            } else if x.code == LD_IMM64 {
                if let Some((sym, t, v)) = code_sym {
                    let target = if syms[sym].is_func() {
                        v as i64
                    } else {
                        v as i64 + i64::from(x.imm)
                    };
                    refs.push(CodeRef {
                        section: si,
                        off,
                        kind: RefKind::FuncAddr,
                        sym: Some(sym),
                        target: (t, target as u64),
                    });
                }
            }
            off += step;
        }
        rels_of.insert(si, rels);
    }
    for r in &refs {
        let (t, off) = r.target;
        if (off as i64) < 0 || off % INSN != 0 || off >= secs[t].data.len() as u64 {
            return Err(Error::Relocation {
                section: secs[r.section].name.clone(),
                offset: r.off,
                detail: format!(
                    "refers to offset {:#x} outside section `{}`",
                    off as i64, secs[t].name
                ),
            });
        }
    }

    // --- Call graph and programs ---------------------------------------
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); funcs.len()];
    for r in &refs {
        if let (Some(from), Some(to)) = (func_at(r.section, r.off), func_at(r.target.0, r.target.1))
        {
            callees[from].push(to);
        }
    }
    let programs: Vec<usize> = (0..funcs.len())
        .filter(|&f| secs[funcs[f].section].holds_programs())
        .collect();
    let reach = |from: usize| -> Vec<bool> {
        let mut seen = vec![false; funcs.len()];
        let mut queue = VecDeque::from([from]);
        seen[from] = true;
        while let Some(f) = queue.pop_front() {
            for &c in &callees[f] {
                if !seen[c] {
                    seen[c] = true;
                    queue.push_back(c);
                }
            }
        }
        seen
    };
    let reached: Vec<Vec<bool>> = programs.iter().map(|&p| reach(p)).collect();

    // --- Stubs -----------------------------------------------------------
    let btf = match obj.section_by_name(".BTF") {
        Some((_, s)) => {
            Some(btf::Btf::parse(s.data).map_err(|e| Error::Malformed(format!(".BTF: {e}")))?)
        }
        None => None,
    };
    let mut ext = match (obj.section_by_name(".BTF.ext"), &btf) {
        (Some((i, s)), Some(b)) => Some((
            i,
            btf::BtfExt::parse(s.data, b)
                .map_err(|e| Error::Malformed(format!(".BTF.ext: {e}")))?,
        )),
        (Some(_), None) => return Err(Error::Malformed(".BTF.ext without .BTF".into())),
        _ => None,
    };

    let mut stubs: Vec<(usize, StubReport)> = Vec::new(); // (func, report)
    let mut edits: BTreeMap<usize, Vec<Edit>> = BTreeMap::new();
    let mut plans: Vec<CallbackPlan> = Vec::new();
    // Symbols appended for callbacks: (name, section).
    let mut new_syms: Vec<(String, usize)> = Vec::new();
    // Symbols of an earlier splice's callbacks that this one rewrites.
    let mut rewritten: Vec<usize> = Vec::new();
    for &(name, insns) in filters {
        let matching: Vec<usize> = (0..funcs.len())
            .filter(|&f| names::matches(&syms[funcs[f].sym].name, name))
            .collect();
        let f = match matching[..] {
            [f] => f,
            [] => {
                if let Some(s) = syms
                    .iter()
                    .find(|s| s.is_func() && s.size == 0 && names::matches(&s.name, name))
                {
                    return Err(Error::StubUnsupported {
                        stub: name.into(),
                        detail: format!("`{}`, a function symbol without a size (declare it `static`, with a body)", s.name),
                    });
                }
                let candidates = (0..funcs.len())
                    .filter(|&f| !secs[funcs[f].section].holds_programs())
                    .map(|f| names::short(&syms[funcs[f].sym].name))
                    .take(20)
                    .collect();
                return Err(Error::StubMissing {
                    stub: name.into(),
                    candidates,
                });
            }
            _ => {
                return Err(Error::StubAmbiguous {
                    stub: name.into(),
                    matches: matching
                        .iter()
                        .map(|&f| syms[funcs[f].sym].name.clone())
                        .collect(),
                })
            }
        };
        let func = &funcs[f];
        let sym = &syms[func.sym];
        let sec = &secs[func.section];
        if stubs.iter().any(|(g, r)| *g == f || r.name == name) {
            return Err(Error::DuplicateStub(name.into()));
        }
        if sec.holds_programs() {
            return Err(Error::StubUnsupported {
                stub: name.into(),
                detail: format!(
                    "the program `{}` in section `{}`, not a subprogram in .text",
                    sym.name, sec.name
                ),
            });
        }
        let callbacks = check_filter(name, insns)?;
        if !callbacks.is_empty() && ext.is_none() {
            return Err(Error::BadFilter {
                stub: name.into(),
                detail: "it has a loop callback, and the kernel wants BTF func_info for a program that takes a callback's address, but the object has no .BTF.ext (build it with debug info: clang -g, or rustc -C debuginfo=2 with bpf-linker --btf)".into(),
            });
        }
        if let (Some((_, ext)), Some(btf)) = (&ext, &btf) {
            if let Some(ty) = btf::func_type_at(ext, &sec.name, func.start) {
                btf.check_filter_func(ty)
                    .map_err(|detail| Error::StubSignature {
                        stub: name.into(),
                        detail,
                    })?;
            }
        }
        let callers: Vec<String> = programs
            .iter()
            .zip(&reached)
            .filter(|(_, seen)| seen[f])
            .map(|(&p, _)| syms[funcs[p].sym].name.clone())
            .collect();
        if callers.is_empty() {
            return Err(Error::StubNeverCalled {
                stub: name.into(),
                symbol: sym.name.clone(),
            });
        }
        // An earlier splice's callbacks of this stub follow its body: they
        // are replaced with it, and their symbols reused.
        let mut end = func.end;
        let mut old_callbacks = Vec::new();
        for k in 1.. {
            let cb_name = callback_name(&sym.name, k);
            let Some(g) = funcs
                .iter()
                .position(|g| syms[g.sym].name == cb_name && g.section == func.section)
            else {
                break;
            };
            if funcs[g].start != end {
                return Err(Error::Malformed(format!(
                    "callback `{cb_name}` does not follow its stub's body"
                )));
            }
            end = funcs[g].end;
            old_callbacks.push(funcs[g].sym);
        }
        rewritten.extend(&old_callbacks);
        // Function addresses get relocations against the callbacks'
        // symbols: their `imm` is the loader's to fill.
        let mut body = insns.to_vec();
        if !callbacks.is_empty() {
            let mut symbols = Vec::new();
            for k in 0..callbacks.len() {
                symbols.push(match old_callbacks.get(k) {
                    Some(&sym) => sym,
                    None => {
                        new_syms.push((callback_name(&sym.name, k + 1), func.section));
                        syms.len() + new_syms.len() - 1
                    }
                });
            }
            for x in body.iter_mut() {
                if x.code == LD_IMM64 && x.src == PSEUDO_FUNC {
                    x.imm = 0;
                }
            }
            plans.push(CallbackPlan {
                func: f,
                insns: insns.to_vec(),
                starts: callbacks.clone(),
                symbols,
            });
        }
        edits.entry(func.section).or_default().push(Edit {
            start: func.start,
            end,
            new: ebpf::to_bytes(&body),
        });
        stubs.push((
            f,
            StubReport {
                name: name.into(),
                symbol: sym.name.clone(),
                section: sec.name.clone(),
                old_insns: ((func.end - func.start) / INSN) as usize,
                new_insns: insns.len(),
                programs: callers,
            },
        ));
    }
    for e in edits.values_mut() {
        e.sort_by_key(|e| e.start);
    }
    let no_edits: &[Edit] = &[];
    let edits_of = |sec: usize| edits.get(&sec).map_or(no_edits, |v| &v[..]);

    // --- New section contents -------------------------------------------
    let mut contents: Vec<Vec<u8>> = secs.iter().map(|s| s.data.to_vec()).collect();
    for (&si, es) in &edits {
        let old = secs[si].data;
        let mut new = Vec::with_capacity(old.len() + es.iter().map(|e| e.new.len()).sum::<usize>());
        let mut pos = 0usize;
        for e in es {
            new.extend_from_slice(&old[pos..e.start as usize]);
            new.extend_from_slice(&e.new);
            pos = e.end as usize;
        }
        new.extend_from_slice(&old[pos..]);
        if new.len() > u32::MAX as usize {
            return Err(Error::BadFilter {
                stub: stubs[0].1.name.clone(),
                detail: "section larger than 4 GiB".into(),
            });
        }
        contents[si] = new;
    }

    // Calls and function addresses into or across an edited section.
    for r in &refs {
        let (es_here, (t, target)) = (edits_of(r.section), r.target);
        if edits.is_empty() || (es_here.is_empty() && edits_of(t).is_empty()) {
            continue;
        }
        let Some(new_off) = shift(es_here, r.off) else {
            continue;
        }; // inside a replaced body
        let rel_err = |detail: &str| Error::Relocation {
            section: secs[r.section].name.clone(),
            offset: r.off,
            detail: detail.into(),
        };
        let new_target = shift(edits_of(t), target)
            .ok_or_else(|| rel_err("refers to the middle of a filter stub"))?
            as i64;
        let base = match r.sym {
            Some(sym) => shift(edits_of(t), syms[sym].value).unwrap_or(syms[sym].value) as i64,
            None => new_off as i64,
        };
        let imm = match (r.kind, r.sym) {
            (RefKind::Call, _) => (new_target - base) / INSN as i64 - 1,
            (RefKind::FuncAddr, Some(sym)) if !syms[sym].is_func() => new_target - base,
            (RefKind::FuncAddr, _) => continue,
        };
        let imm =
            i32::try_from(imm).map_err(|_| rel_err("call distance does not fit in 32 bits"))?;
        set_imm(&mut contents[r.section], new_off, imm);
    }

    // Jumps may not cross a replaced body (they never do in compiled code:
    // they stay inside their function).
    for (&si, es) in &edits {
        let data = secs[si].data;
        let mut off = 0;
        while off < data.len() as u64 {
            let x = insn_at(data, off);
            let step = if x.code == LD_IMM64 { 2 * INSN } else { INSN };
            let class = x.code & 7;
            let op = x.code & 0xf0;
            if (class == 5 || class == 6) && op != 0x80 && op != 0x90 && shift(es, off).is_some() {
                let delta = if x.code == 0x06 {
                    i64::from(x.imm)
                } else {
                    i64::from(x.off)
                };
                let target = off as i64 + (delta + 1) * INSN as i64;
                let moved = (target >= 0)
                    .then(|| shift(es, target as u64))
                    .flatten()
                    .map(|t| t as i64 - shift(es, off).unwrap() as i64 == target - off as i64);
                if moved != Some(true) {
                    return Err(Error::Unsupported(format!(
                        "the jump at offset {off:#x} in section `{}` crosses a filter stub",
                        secs[si].name
                    )));
                }
            }
            off += step;
        }
    }

    // Callbacks: where they went, and a relocation for each address taken.
    let mut callback_syms: HashMap<usize, (u64, u64)> = HashMap::new(); // symbol -> (value, size)
    let mut stub_sizes: HashMap<usize, u64> = HashMap::new(); // stub symbol -> size
    let mut added_rels: BTreeMap<usize, Vec<Rel>> = BTreeMap::new();
    for plan in &plans {
        let func = &funcs[plan.func];
        let start =
            shift(edits_of(func.section), func.start).expect("a body starts outside others");
        stub_sizes.insert(func.sym, plan.starts[0] as u64 * INSN);
        for (k, &cb) in plan.starts.iter().enumerate() {
            let end = plan.starts.get(k + 1).copied().unwrap_or(plan.insns.len());
            let placed = (start + cb as u64 * INSN, (end - cb) as u64 * INSN);
            callback_syms.insert(plan.symbols[k], placed);
        }
        for (i, x) in plan.insns.iter().enumerate() {
            if x.code == LD_IMM64 && x.src == PSEUDO_FUNC {
                let target = (i as i64 + 1 + i64::from(x.imm)) as usize;
                let k = plan.starts.binary_search(&target).expect("checked");
                added_rels.entry(func.section).or_default().push(Rel {
                    offset: start + i as u64 * INSN,
                    sym: plan.symbols[k] as u32,
                    kind: R_BPF_64_64,
                });
            }
        }
    }

    // Relocations of edited sections; a section that had none and now
    // takes a callback's address gets a relocation section.
    let mut extra_sections: Vec<elf::NewSection> = Vec::new();
    for (&si, es) in &edits {
        let added = added_rels.get(&si).map_or(&[][..], |v| &v[..]);
        if let Some((ri, rs)) = obj.rels_for(si) {
            let mut out = Vec::with_capacity((rs.rels.len() + added.len()) * 16);
            for r in &rs.rels {
                if let Some(off) = shift(es, r.offset) {
                    out.extend_from_slice(&elf::rel_bytes(&Rel { offset: off, ..*r }));
                }
            }
            for r in added {
                out.extend_from_slice(&elf::rel_bytes(r));
            }
            contents[ri] = out;
        } else if !added.is_empty() {
            let st = obj.symtab.ok_or_else(|| {
                Error::Unsupported(
                    "an object without a symbol table cannot take a loop filter".into(),
                )
            })?;
            extra_sections.push(elf::NewSection::rel(
                &format!(".rel{}", secs[si].name),
                st,
                si,
                added.iter().flat_map(elf::rel_bytes).collect(),
            ));
        }
    }

    // DWARF describes the old code (addresses, line tables, frames) and
    // nothing loads it: empty it rather than leave it wrong. BTF line_info
    // keeps the source lines for the kernel and bpftool.
    if !edits.is_empty() {
        for (i, s) in secs.iter().enumerate() {
            let target = obj.rel_sections[i].as_ref().map(|r| &secs[r.target]);
            if s.name.starts_with(".debug_")
                || target.is_some_and(|t| t.name.starts_with(".debug_"))
            {
                contents[i].clear();
            }
        }
    }

    // Symbols of edited sections.
    if let Some(st) = obj.symtab.filter(|_| !edits.is_empty()) {
        for (i, s) in syms.iter().enumerate() {
            let Some(es) = s.section.and_then(|sec| edits.get(&sec)) else {
                continue;
            };
            let stub = stubs.iter().find(|(f, _)| funcs[*f].sym == i);
            let at = i * elf::SYM_SIZE;
            // A callback, placed after its stub's new body, or an earlier
            // splice's callback left without a function: a plain label.
            if let Some(&(value, size)) = callback_syms.get(&i) {
                elf::set_symbol(&mut contents[st], at, value, size, None);
                continue;
            }
            if rewritten.contains(&i) {
                let at_stub = es.iter().find(|e| e.start < s.value && s.value < e.end);
                let value = at_stub.and_then(|e| shift(es, e.start)).unwrap_or(0);
                elf::set_symbol(&mut contents[st], at, value, 0, Some(elf::STT_NOTYPE));
                continue;
            }
            let value = match shift(es, s.value) {
                Some(v) => v,
                None if s.is_func() => {
                    return Err(Error::Malformed(format!(
                        "function `{}` lies inside a filter stub",
                        s.name
                    )))
                }
                None => shift(
                    es,
                    es.iter()
                        .find(|e| e.start < s.value && s.value < e.end)
                        .unwrap()
                        .start,
                )
                .unwrap(),
            };
            let size = match stub {
                Some((_, r)) => stub_sizes
                    .get(&i)
                    .copied()
                    .unwrap_or(r.new_insns as u64 * INSN),
                None => s.size,
            };
            if stub.is_none()
                && s.is_func()
                && es
                    .iter()
                    .any(|e| s.value < e.start && s.value + s.size > e.start)
            {
                return Err(Error::Malformed(format!(
                    "function `{}` overlaps a filter stub",
                    s.name
                )));
            }
            elf::set_symbol(&mut contents[st], at, value, size, None);
        }
        // New callbacks: global (appended after the local symbols) and
        // hidden, which libbpf takes for static.
        let strtab = secs[st].hdr.sh_link.get(object::LittleEndian) as usize;
        for (n, (name, sec)) in new_syms.iter().enumerate() {
            let (value, size) = callback_syms[&(syms.len() + n)];
            let name_off = contents[strtab].len() as u32;
            contents[strtab].extend_from_slice(name.as_bytes());
            contents[strtab].push(0);
            contents[st].extend_from_slice(&elf::func_symbol(name_off, *sec, value, size));
        }
    }

    // .BTF.ext and its relocations.
    if let Some((ext_idx, ext)) = ext.as_mut().filter(|_| !edits.is_empty()) {
        let by_name: HashMap<&str, usize> = edits
            .keys()
            .rev()
            .map(|&si| (secs[si].name.as_str(), si))
            .collect();
        for kind in [btf::Kind::Func, btf::Kind::Line, btf::Kind::CoreRelo] {
            let Some(set) = ext.set_mut(kind) else {
                continue;
            };
            for block in &mut set.blocks {
                let Some(es) = by_name.get(block.name.as_str()).map(|&si| &edits[&si][..]) else {
                    continue;
                };
                let mut first_inside: Vec<Option<btf::Record>> = vec![None; es.len()];
                let mut kept = Vec::with_capacity(block.records.len());
                for mut r in block.records.drain(..) {
                    let off = u64::from(r.insn_off());
                    if let Some(k) = es.iter().position(|e| e.start < off && off < e.end) {
                        first_inside[k].get_or_insert(r);
                        continue;
                    }
                    if kind == btf::Kind::CoreRelo && es.iter().any(|e| e.start == off) {
                        continue;
                    }
                    r.set_insn_off(shift(es, off).unwrap() as u32);
                    kept.push(r);
                }
                if kind == btf::Kind::Line && !kept.is_empty() {
                    for (k, e) in es.iter().enumerate() {
                        let start = shift(es, e.start).unwrap() as u32;
                        if kept.iter().any(|r| r.insn_off() == start) {
                            continue;
                        }
                        let template = first_inside[k]
                            .clone()
                            .or_else(|| kept.iter().rfind(|r| r.insn_off() < start).cloned())
                            .unwrap_or_else(|| kept[0].clone());
                        let mut r = btf::Record {
                            old_pos: None,
                            ..template
                        };
                        r.set_insn_off(start);
                        kept.push(r);
                    }
                }
                // Each callback: the records its stub has, moved to it
                // (its func_info names the stub's BTF FUNC: static, and the
                // kernel checks no argument of a static callback).
                if kind != btf::Kind::CoreRelo {
                    for plan in plans
                        .iter()
                        .filter(|p| secs[funcs[p.func].section].name == block.name)
                    {
                        let es = &edits[&funcs[plan.func].section];
                        let stub_at = shift(es, funcs[plan.func].start).unwrap() as u32;
                        let Some(template) = kept.iter().find(|r| r.insn_off() == stub_at).cloned()
                        else {
                            continue;
                        };
                        for sym in &plan.symbols {
                            let mut r = btf::Record {
                                old_pos: None,
                                ..template.clone()
                            };
                            r.set_insn_off(callback_syms[sym].0 as u32);
                            kept.push(r);
                        }
                    }
                }
                kept.sort_by_key(|r| r.insn_off());
                block.records = kept;
            }
        }
        let (bytes, moved) = ext.write();
        contents[*ext_idx] = bytes;
        if let Some((ri, rs)) = obj.rels_for(*ext_idx) {
            let by_pos: HashMap<u64, &Rel> = rs.rels.iter().map(|r| (r.offset, r)).collect();
            let mut out = Vec::new();
            for m in moved {
                let old = m.old.or(m.sibling).and_then(|p| by_pos.get(&(p as u64)));
                if let Some(r) = old {
                    out.extend_from_slice(&elf::rel_bytes(&Rel {
                        offset: m.new as u64,
                        ..**r
                    }));
                }
            }
            contents[ri] = out;
        }
    }

    // --- Report -----------------------------------------------------------
    let mut progs: Vec<Program> = programs
        .iter()
        .zip(&reached)
        .map(|(&p, seen)| Program {
            section: secs[funcs[p].section].name.clone(),
            name: syms[funcs[p].sym].name.clone(),
            stubs: stubs
                .iter()
                .filter(|(f, _)| seen[*f])
                .map(|(_, r)| r.name.clone())
                .collect(),
        })
        .collect();
    progs.sort_by(|a, b| (&a.section, &a.name).cmp(&(&b.section, &b.name)));

    Ok(Spliced {
        elf: obj.write(&contents, &extra_sections),
        programs: progs,
        stubs: stubs.into_iter().map(|(_, r)| r).collect(),
    })
}
