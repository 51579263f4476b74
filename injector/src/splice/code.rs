//! Step 1: the object's code as the later steps need it: its sized
//! functions, every instruction that refers to code (with the place it
//! reaches), and the call graph from each program.

use std::collections::{BTreeMap, VecDeque};

use super::{insn_at, CALL, INSN, LD_IMM64, PSEUDO_CALL};
use crate::elf::{Elf, Section, R_BPF_64_32, R_BPF_64_64, R_BPF_NONE};
use crate::Error;

/// A sized function symbol in a code section.
pub(super) struct Func {
    pub sym: usize,
    pub section: usize,
    pub start: u64,
    pub end: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RefKind {
    /// `call` of a BPF function.
    Call,
    /// `ld_imm64` of a function's address (bpf_loop callbacks and the like).
    FuncAddr,
}

/// An instruction that refers to code: where it is, how, and what it
/// reaches (section, byte offset).
pub(super) struct CodeRef {
    pub section: usize,
    pub off: u64,
    pub kind: RefKind,
    /// The relocation's symbol; `None` for a pc-relative call.
    pub sym: Option<usize>,
    pub target: (usize, u64),
}

/// The functions of the object's code sections, sorted by place, and the
/// instructions that refer to code.
pub(super) struct Code {
    pub funcs: Vec<Func>,
    pub refs: Vec<CodeRef>,
}

impl Code {
    pub fn scan(obj: &Elf<'_>) -> Result<Self, Error> {
        let funcs = functions(obj)?;
        let mut refs = Vec::new();
        for (si, s) in obj.sections.iter().enumerate() {
            if s.is_code() {
                references(obj, si, s, &mut refs)?;
            }
        }
        check_targets(obj, &refs)?;
        Ok(Code { funcs, refs })
    }

    /// The function that holds byte `off` of section `sec`.
    pub fn func_at(&self, sec: usize, off: u64) -> Option<usize> {
        let funcs = &self.funcs;
        let i = funcs.partition_point(|f| (f.section, f.start) <= (sec, off));
        (i > 0 && funcs[i - 1].section == sec && off < funcs[i - 1].end).then(|| i - 1)
    }
}

/// Sized function symbols in code sections, aligned, inside their section
/// and not overlapping.
fn functions(obj: &Elf<'_>) -> Result<Vec<Func>, Error> {
    let (secs, syms) = (&obj.sections, &obj.symbols);
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
    Ok(funcs)
}

/// The relocations of code section `si`, by instruction offset, checked:
/// one per instruction, of a type that fits the instruction.
fn code_relocations(
    obj: &Elf<'_>,
    si: usize,
    s: &Section<'_>,
) -> Result<BTreeMap<u64, crate::elf::Rel>, Error> {
    let len = s.data.len() as u64;
    let rel_err = |offset: u64, detail: String| Error::Relocation {
        section: s.name.clone(),
        offset,
        detail,
    };
    let mut rels = BTreeMap::new();
    let Some((_, rs)) = obj.rels_for(si) else {
        return Ok(rels);
    };
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
                    format!("relocation type {k} in code (expected R_BPF_64_64 or R_BPF_64_32)"),
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
    Ok(rels)
}

/// Calls (relocated or pc-relative) and function addresses in code
/// section `si`, appended to `refs`.
fn references(
    obj: &Elf<'_>,
    si: usize,
    s: &Section<'_>,
    refs: &mut Vec<CodeRef>,
) -> Result<(), Error> {
    let (secs, syms) = (&obj.sections, &obj.symbols);
    let len = s.data.len() as u64;
    if !len.is_multiple_of(INSN) {
        return Err(Error::Malformed(format!(
            "code section `{}` is not a whole number of instructions",
            s.name
        )));
    }
    let rels = code_relocations(obj, si, s)?;
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
                    return Err(Error::Relocation {
                        section: s.name.clone(),
                        offset: off,
                        detail: format!(
                            "call relocated against `{}`, which is not code",
                            syms[r.sym as usize].name
                        ),
                    })
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
    Ok(())
}

/// Every reference reaches an instruction inside its target section.
fn check_targets(obj: &Elf<'_>, refs: &[CodeRef]) -> Result<(), Error> {
    let secs = &obj.sections;
    for r in refs {
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
    Ok(())
}

/// The programs (functions in sections that hold programs, by index into
/// [`Code::funcs`]) and, for each, the functions it reaches through calls
/// and function addresses.
pub(super) struct CallGraph {
    pub programs: Vec<usize>,
    pub reached: Vec<Vec<bool>>,
}

impl CallGraph {
    pub fn build(obj: &Elf<'_>, code: &Code) -> Self {
        let n = code.funcs.len();
        let mut callees: Vec<Vec<usize>> = vec![Vec::new(); n];
        for r in &code.refs {
            let (from, to) = (
                code.func_at(r.section, r.off),
                code.func_at(r.target.0, r.target.1),
            );
            if let (Some(from), Some(to)) = (from, to) {
                callees[from].push(to);
            }
        }
        let programs: Vec<usize> = (0..n)
            .filter(|&f| obj.sections[code.funcs[f].section].holds_programs())
            .collect();
        let reach = |from: usize| -> Vec<bool> {
            let mut seen = vec![false; n];
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
        let reached = programs.iter().map(|&p| reach(p)).collect();
        CallGraph { programs, reached }
    }

    /// The programs that reach function `f`.
    pub fn callers(&self, f: usize) -> impl Iterator<Item = usize> + '_ {
        self.programs
            .iter()
            .zip(&self.reached)
            .filter(move |(_, seen)| seen[f])
            .map(|(&p, _)| p)
    }
}
