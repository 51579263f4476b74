//! `-d`, `-dd`, `-ddd` and `--ebpf`: the filter's program, as tcpdump
//! prints cBPF, or its translation to eBPF with the translator's counts.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use cbpf2ebpf::cbpf::{dump, Insn};
use cbpf2ebpf::{libpcap, translate};

use crate::filter::Filter;
use crate::plan::{CompileFor, Listing, ShowProgram};
use crate::source::file::Input;

pub fn show(plan: &ShowProgram) -> Result<ExitCode> {
    let prog = program(plan)?;
    let text = listing(&plan.listing, &prog)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The cBPF program: a raw one as it is, an expression compiled for the
/// file (`-r`, which is opened in any case) or for `-y` and `-s`.
fn program(plan: &ShowProgram) -> Result<Vec<Insn>> {
    match (&plan.compile_for, &plan.filter) {
        (CompileFor::File(path), filter) => Input::open(path)?.program(filter),
        (CompileFor::LinkType { linktype, snaplen }, Filter::Expression(e)) => {
            compile_on_dead_handle(e, *linktype, *snaplen)
        }
        (CompileFor::LinkType { .. }, Filter::Raw(prog)) => Ok(prog.clone()),
    }
}

/// libpcap's compiler as `tcpdump -d` runs it (a dead handle of the link
/// type, netmask 0), with its error text as the whole message.
fn compile_on_dead_handle(expr: &str, linktype: i32, snaplen: u32) -> Result<Vec<Insn>> {
    libpcap::compile_with(expr, linktype, snaplen, true, 0).map_err(|e| anyhow!("{e}"))
}

fn listing(listing: &Listing, prog: &[Insn]) -> Result<String> {
    Ok(match listing {
        Listing::Cbpf(1) => dump::dump_d(prog),
        Listing::Cbpf(2) => dump::dump_dd(prog),
        Listing::Cbpf(_) => dump::dump_ddd(prog),
        Listing::Ebpf {
            options,
            mode,
            hook,
        } => {
            let t = translate(prog, options).context("can't translate the filter")?;
            format!(
                "; mode {mode}, hook {hook}\n; cBPF instructions: {}\n; eBPF instructions: {}\n; bounds checks: {}\n{}",
                t.stats.cbpf_insns,
                t.stats.ebpf_insns,
                t.stats.bounds_checks,
                cbpf2ebpf::ebpf::disassemble(&t.insns)
            )
        }
    })
}
