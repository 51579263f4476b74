//! [`splice`]: the filters go into the object in named steps, one module
//! each, as [`cbpf2ebpf::translate`] runs its passes:
//!
//! 1. [`code`]: the object's functions, every instruction that refers to
//!    code (calls, function addresses), and which programs reach which
//!    function;
//! 2. [`stubs`]: each requested stub found and checked, and the edit that
//!    replaces its body (and an earlier splice's callbacks) by the filter;
//! 3. [`rewrite`]: the edited sections' new bytes, calls and addresses
//!    that follow the moved code, jumps checked, callbacks placed,
//!    relocations moved and added, DWARF emptied;
//! 4. [`symbols`]: the symbol table follows the code; new callbacks named;
//! 5. [`ext`]: `.BTF.ext` records move with the code;
//! 6. the report: programs and the stubs they call.

mod code;
mod ext;
mod rewrite;
mod stubs;
mod symbols;

use cbpf2ebpf::ebpf::Insn;

use crate::elf::Elf;
use crate::Error;

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

/// Bytes per instruction slot.
const INSN: u64 = 8;
const CALL: u8 = 0x85;
const LD_IMM64: u8 = 0x18;
const PSEUDO_CALL: u8 = 1;
const PSEUDO_FUNC: u8 = 4;

/// Replaces the body of each named stub by its filter. See the crate docs.
pub fn splice(elf: &[u8], filters: &[(&str, &[Insn])]) -> Result<Spliced, Error> {
    let obj = Elf::parse(elf)?;
    let code = code::Code::scan(&obj)?;
    let calls = code::CallGraph::build(&obj, &code);
    let (btf, mut ext) = ext::read(&obj)?;
    let plan = stubs::plan(&obj, &code, &calls, btf.as_ref(), ext.as_ref(), filters)?;

    let mut contents = rewrite::section_contents(&obj, &plan)?;
    rewrite::follow_moved_code(&obj, &code, &plan, &mut contents)?;
    rewrite::check_jumps(&obj, &plan)?;
    let placed = rewrite::place_callbacks(&code, &plan);
    let extra_sections = rewrite::relocations(&obj, &plan, &placed, &mut contents)?;
    rewrite::empty_dwarf(&obj, &plan, &mut contents);
    symbols::rewrite(&obj, &code, &plan, &placed, &mut contents)?;
    if let Some((ext_idx, ext)) = ext.as_mut() {
        ext::rewrite(&obj, &code, &plan, &placed, *ext_idx, ext, &mut contents);
    }

    Ok(Spliced {
        elf: obj.write(&contents, &extra_sections),
        programs: report_programs(&obj, &code, &calls, &plan),
        stubs: plan.stubs.into_iter().map(|(_, r)| r).collect(),
    })
}

/// Every program with the requested stubs it reaches, by section and name.
fn report_programs(
    obj: &Elf<'_>,
    code: &code::Code,
    calls: &code::CallGraph,
    plan: &stubs::Plan,
) -> Vec<Program> {
    let (secs, syms, funcs) = (&obj.sections, &obj.symbols, &code.funcs);
    let mut progs: Vec<Program> = calls
        .programs
        .iter()
        .zip(&calls.reached)
        .map(|(&p, seen)| Program {
            section: secs[funcs[p].section].name.clone(),
            name: syms[funcs[p].sym].name.clone(),
            stubs: plan
                .stubs
                .iter()
                .filter(|(f, _)| seen[*f])
                .map(|(_, r)| r.name.clone())
                .collect(),
        })
        .collect();
    progs.sort_by(|a, b| (&a.section, &a.name).cmp(&(&b.section, &b.name)));
    progs
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
