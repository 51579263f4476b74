//! Section 1: filter cost inside the kernel.
//!
//! For each filter of [`cases`], xcap's translation in each access mode,
//! the hand-written C (bench/c/filters.c) where there is one, and the
//! kernel's LD_ABS-style conversion ([`crate::kstyle`]), measured by
//! [`Bench`] in hand-assembled `bpf_loop` harnesses ([`crate::harness`])
//! and written by [`markdown`].

mod bench;
mod cases;
mod report;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use cbpf2ebpf::ebpf::Insn;
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};

pub use bench::{Bench, Config, Row};
pub use cases::{cases, nonmatching, Case};
pub use report::{markdown, FilterReport};

use crate::clang::c_filters;
use crate::harness::Env;
use crate::pin::{pin_to_last_cpu, restore_affinity};

/// Runs section 1 and returns per-filter results.
pub fn run(
    cfg: Config,
    c_src: &Path,
    with_probe: bool,
    log: &mut dyn FnMut(&str),
) -> Result<(Vec<FilterReport>, Bench)> {
    let affinity = pin_to_last_cpu();
    let result = run_pinned(cfg, c_src, with_probe, log);
    restore_affinity(&affinity);
    result
}

fn run_pinned(
    cfg: Config,
    c_src: &Path,
    with_probe: bool,
    log: &mut dyn FnMut(&str),
) -> Result<(Vec<FilterReport>, Bench)> {
    let mut bench = Bench::new(cfg);
    let cfuncs = c_filters(c_src)?;
    let nomatch = nonmatching();
    let mut reports = Vec::new();
    for case in cases() {
        log(&format!("filter {}", case.label));
        reports.push(measure_case(
            &mut bench, case, &cfuncs, &nomatch, with_probe,
        )?);
    }
    Ok((reports, bench))
}

/// Every implementation of one filter: xcap's access modes, the
/// hand-written C if there is one, and the kernel-style conversion. A
/// filter libpcap cannot compile is a row saying so; a test packet
/// libpcap judges wrongly stops the benchmark.
fn measure_case(
    bench: &mut Bench,
    case: Case,
    cfuncs: &HashMap<String, Vec<Insn>>,
    nomatch: &[u8],
    with_probe: bool,
) -> Result<FilterReport> {
    let packets = [&case.matching[..], nomatch];
    let cbpf = match libpcap::compile(&case.expr, libpcap::DLT_EN10MB, libpcap::DEFAULT_SNAPLEN) {
        Ok(p) => p,
        Err(e) => return Ok(not_compiled(case, e)),
    };
    let expect = [
        libpcap::filter(&cbpf, packets[0], packets[0].len() as u32) != 0,
        libpcap::filter(&cbpf, packets[1], packets[1].len() as u32) != 0,
    ];
    if expect != [true, false] {
        bail!(
            "test packets for {} are wrong: libpcap says {expect:?}",
            case.expr
        );
    }
    let mut rows = Vec::new();
    for (name, mode, hook, env) in xcap_modes(with_probe) {
        let row = translate(
            &cbpf,
            &Options {
                mode,
                hook,
                ..Options::default()
            },
        )
        .map_err(anyhow::Error::from)
        .and_then(|t| bench.measure(env, &t.insns, packets, expect));
        rows.push(named(name, row));
    }
    if let Some(f) = case.c_fn {
        let row = cfuncs
            .get(f)
            .with_context(|| format!("{f} not in the C object"))
            .and_then(|insns| bench.measure(Env::Xdp, insns, packets, expect));
        rows.push(named("hand-written C, clang -O2 (XDP)", row));
    }
    let row = crate::kstyle::convert(&cbpf)
        .and_then(|insns| bench.measure(Env::Skb, &insns, packets, expect));
    rows.push(named("kernel style, LD_ABS/LD_IND (TC)", row));
    Ok(FilterReport {
        case_label: case.label,
        cbpf: Some(cbpf.len()),
        cbpfc: case.cbpfc,
        rows,
    })
}

/// xcap's access modes: (row name, mode, hook, harness).
fn xcap_modes(with_probe: bool) -> Vec<(&'static str, Mode, Hook, Env)> {
    let mut modes = vec![
        ("xcap direct (XDP)", Mode::Direct, Hook::Xdp, Env::Xdp),
        ("xcap skb (TC)", Mode::Skb, Hook::TcIngress, Env::Skb),
    ];
    if with_probe {
        modes.push((
            "xcap probe (SYSCALL)",
            Mode::Probe,
            Hook::None,
            Env::Syscall,
        ));
    }
    modes
}

/// The report of a filter libpcap did not compile.
fn not_compiled(case: Case, e: impl std::fmt::Display) -> FilterReport {
    FilterReport {
        case_label: case.label,
        cbpf: None,
        cbpfc: case.cbpfc,
        rows: vec![Row {
            implementation: "libpcap".into(),
            note: Some(format!("compile error: {e}")),
            ..Default::default()
        }],
    }
}

fn named(name: &str, r: Result<Row>) -> Row {
    match r {
        Ok(mut row) => {
            row.implementation = name.into();
            row
        }
        Err(e) => {
            eprintln!("[bench] {name}: {e:#}");
            Row {
                implementation: name.into(),
                note: Some(format!("{:#}", e).lines().next().unwrap_or("").to_string()),
                ..Default::default()
            }
        }
    }
}
