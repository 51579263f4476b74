//! Step 2: each requested stub found and checked (one match, a subprogram,
//! its BTF signature, called by a program), its filter checked, and the
//! edit that replaces its body planned. A filter with loop callbacks
//! places them after its body; an earlier splice's callbacks of the stub
//! are replaced with it and their symbols reused.

use std::collections::BTreeMap;

use cbpf2ebpf::ebpf::{self, Insn};

use super::code::{CallGraph, Code};
use super::{Edit, StubReport, CALL, INSN, LD_IMM64, PSEUDO_FUNC};
use crate::elf::Elf;
use crate::{names, Error};
use btf::ext::{func_type_at, BtfExt};
use btf::{Btf, Kind};

/// A stub with callbacks: where they go and which symbols name them.
pub(super) struct CallbackPlan {
    /// The stub's function (index into [`Code::funcs`]).
    pub func: usize,
    /// The filter's instructions.
    pub insns: Vec<Insn>,
    /// Slot where each callback starts.
    pub starts: Vec<usize>,
    /// The symbol of each callback: one of an earlier splice's, else new.
    pub symbols: Vec<usize>,
}

/// What the splice changes.
pub(super) struct Plan {
    /// (function, report) of each requested stub, in request order.
    pub stubs: Vec<(usize, StubReport)>,
    /// The replaced bodies of each edited section, sorted by offset.
    pub edits: BTreeMap<usize, Vec<Edit>>,
    pub callbacks: Vec<CallbackPlan>,
    /// Symbols appended for callbacks: (name, section).
    pub new_syms: Vec<(String, usize)>,
    /// Symbols of an earlier splice's callbacks that this one rewrites.
    pub rewritten: Vec<usize>,
}

impl Plan {
    /// The edits of section `sec` (none if it is not edited).
    pub fn edits_of(&self, sec: usize) -> &[Edit] {
        self.edits.get(&sec).map_or(&[], |v| &v[..])
    }
}

pub(super) fn plan(
    obj: &Elf<'_>,
    code: &Code,
    calls: &CallGraph,
    btf: Option<&Btf>,
    ext: Option<&(usize, BtfExt)>,
    filters: &[(&str, &[Insn])],
) -> Result<Plan, Error> {
    let (secs, syms, funcs) = (&obj.sections, &obj.symbols, &code.funcs);
    let mut plan = Plan {
        stubs: Vec::new(),
        edits: BTreeMap::new(),
        callbacks: Vec::new(),
        new_syms: Vec::new(),
        rewritten: Vec::new(),
    };
    for &(name, insns) in filters {
        let f = find_stub(obj, code, name)?;
        let func = &funcs[f];
        let sym = &syms[func.sym];
        if plan.stubs.iter().any(|(g, r)| *g == f || r.name == name) {
            return Err(Error::DuplicateStub(name.into()));
        }
        let sec = &secs[func.section];
        let callbacks = check_stub(obj, code, btf, ext, name, insns, f)?;
        let callers: Vec<String> = calls
            .callers(f)
            .map(|p| syms[funcs[p].sym].name.clone())
            .collect();
        if callers.is_empty() {
            return Err(Error::StubNeverCalled {
                stub: name.into(),
                symbol: sym.name.clone(),
            });
        }
        let (end, old_callbacks) = earlier_callbacks(obj, code, f)?;
        plan.rewritten.extend(&old_callbacks);
        // Function addresses get relocations against the callbacks'
        // symbols: their `imm` is the loader's to fill.
        let mut body = insns.to_vec();
        if !callbacks.is_empty() {
            let mut symbols = Vec::new();
            for k in 0..callbacks.len() {
                symbols.push(match old_callbacks.get(k) {
                    Some(&sym) => sym,
                    None => {
                        plan.new_syms
                            .push((callback_name(&sym.name, k + 1), func.section));
                        syms.len() + plan.new_syms.len() - 1
                    }
                });
            }
            for x in body.iter_mut() {
                if x.code == LD_IMM64 && x.src == PSEUDO_FUNC {
                    x.imm = 0;
                }
            }
            plan.callbacks.push(CallbackPlan {
                func: f,
                insns: insns.to_vec(),
                starts: callbacks,
                symbols,
            });
        }
        plan.edits.entry(func.section).or_default().push(Edit {
            start: func.start,
            end,
            new: ebpf::to_bytes(&body),
        });
        plan.stubs.push((
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
    for e in plan.edits.values_mut() {
        e.sort_by_key(|e| e.start);
    }
    Ok(plan)
}

/// Checks stub `f` and its filter: a subprogram, a filter that fits, BTF
/// for its callbacks, the filter's signature in BTF. Returns where the
/// filter's callbacks start.
fn check_stub(
    obj: &Elf<'_>,
    code: &Code,
    btf: Option<&Btf>,
    ext: Option<&(usize, BtfExt)>,
    name: &str,
    insns: &[Insn],
    f: usize,
) -> Result<Vec<usize>, Error> {
    let func = &code.funcs[f];
    let sym = &obj.symbols[func.sym];
    let sec = &obj.sections[func.section];
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
    if let (Some((_, ext)), Some(btf)) = (ext, btf) {
        if let Some(ty) = func_type_at(ext, &sec.name, func.start) {
            check_signature(btf, ty).map_err(|detail| Error::StubSignature {
                stub: name.into(),
                detail,
            })?;
        }
    }
    Ok(callbacks)
}

/// The one sized function `name` matches; the error names what could be
/// meant.
fn find_stub(obj: &Elf<'_>, code: &Code, name: &str) -> Result<usize, Error> {
    let (secs, syms, funcs) = (&obj.sections, &obj.symbols, &code.funcs);
    let matching: Vec<usize> = (0..funcs.len())
        .filter(|&f| names::matches(&syms[funcs[f].sym].name, name))
        .collect();
    match matching[..] {
        [f] => Ok(f),
        [] => {
            if let Some(s) = syms
                .iter()
                .find(|s| s.is_func() && s.size == 0 && names::matches(&s.name, name))
            {
                return Err(Error::StubUnsupported {
                    stub: name.into(),
                    detail: format!(
                        "`{}`, a function symbol without a size (declare it `static`, with a body)",
                        s.name
                    ),
                });
            }
            let candidates = (0..funcs.len())
                .filter(|&f| !secs[funcs[f].section].holds_programs())
                .map(|f| names::short(&syms[funcs[f].sym].name))
                .take(20)
                .collect();
            Err(Error::StubMissing {
                stub: name.into(),
                candidates,
            })
        }
        _ => Err(Error::StubAmbiguous {
            stub: name.into(),
            matches: matching
                .iter()
                .map(|&f| syms[funcs[f].sym].name.clone())
                .collect(),
        }),
    }
}

/// An earlier splice's callbacks of stub `f`, which follow its body: where
/// the replaced range ends, and their symbols.
fn earlier_callbacks(obj: &Elf<'_>, code: &Code, f: usize) -> Result<(u64, Vec<usize>), Error> {
    let (syms, funcs) = (&obj.symbols, &code.funcs);
    let func = &funcs[f];
    let mut end = func.end;
    let mut old_callbacks = Vec::new();
    for k in 1.. {
        let cb_name = callback_name(&syms[func.sym].name, k);
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
    Ok((end, old_callbacks))
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

/// Checks that FUNC `func_id` has the filter's signature: four parameters
/// and an integer result. `Ok` when BTF cannot tell.
fn check_signature(btf: &Btf, func_id: u32) -> Result<(), String> {
    let Some((ret, params)) = btf.prototype(func_id) else {
        return Ok(());
    };
    if params != 4 {
        return Err(format!(
            "its BTF prototype takes {params} parameters, not 4"
        ));
    }
    let ret = btf.resolve(ret);
    if ret == 0 {
        return Err("its BTF prototype returns void".into());
    }
    match btf.get(ret).and_then(|t| t.kind) {
        None => Ok(()),
        Some(Kind::Int | Kind::Enum | Kind::Enum64) => Ok(()),
        Some(Kind::Ptr) => Err("its BTF prototype returns a pointer".into()),
        Some(k) if k.is_alias() => Ok(()),
        Some(_) => Err("its BTF prototype returns a non-integer type".into()),
    }
}
