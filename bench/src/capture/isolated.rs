//! Section 2, last table: what each XDP and TC program costs on a packet
//! its filter rejects, without the network path around it.
//!
//! The live figures (BPF statistics over trafgen's traffic) move by 5 to
//! 15 ns from run to run, about the size of what is measured. Here
//! `BPF_PROG_TEST_RUN` runs each program a million times on the capture
//! benchmark's non-matching frame, with the kernel's run-time statistics
//! on (their `run_time_ns / run_cnt` has sub-ns resolution, the test run's
//! own duration whole ns only); rounds alternate the programs, pinned to
//! one CPU, and each figure is the median over rounds of the difference
//! with the bare pass program of the same hook in the same round. xcap's
//! programs are the ones `xcap --xdp` and `xcap --tc` loaded (inlined
//! filter, snap length and settings as in the capture runs), taken by id
//! while xcap is listening; the hand-written C programs (bench/c/
//! programs.c) run the same filter with direct packet access.

use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use cbpf2ebpf::ebpf::{to_bytes, Insn};

use super::config::Config;
use super::netns::{Netns, CAP_IF};
use super::runs::cell;
use super::setups::{FILTER, SNAPLEN};
use super::tool::Tool;
use super::traffic::frame;
use crate::pin::{pin_to_last_cpu, restore_affinity};
use crate::stats::{median, median_and_half_iqr, paired_differences};

/// Runs per program and round.
const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 31;

struct Program {
    name: String,
    /// Index of the bare program of the same hook in the list.
    bare: usize,
    fd: OwnedFd,
}

/// Measures and writes the table, or a line saying why it is missing;
/// nothing at all when xcap is not measured.
pub(super) fn measure_and_write(
    s: &mut String,
    cfg: &Config,
    xcap_note: Option<&str>,
    n: &Netns,
    log: &mut dyn FnMut(&str),
) {
    let (None, Some(xcap)) = (xcap_note, &cfg.xcap) else {
        return;
    };
    log("isolated fixed cost");
    match run(&n.cap, xcap, &cfg.c_dir, log) {
        Ok(t) => s.push_str(&t),
        Err(e) => {
            let _ = writeln!(s, "Fixed cost in isolation: not measured ({}).\n", cell(&e));
        }
    }
}

/// Starts xcap at XDP and at TC, takes their programs beside the bare and
/// hand-written ones, measures them and stops xcap.
fn run(cap_ns: &str, xcap: &Path, c_dir: &Path, log: &mut dyn FnMut(&str)) -> Result<String> {
    let c = c_programs(c_dir)?;
    let (xdp_tool, xdp_fd) = xcap_program(
        cap_ns,
        &xcap_cmd(xcap, &["--xdp", "--xdp-mode", "native"]),
        "xcap_xdp",
    )?;
    let (tc_tool, tc_fd) =
        match xcap_program(cap_ns, &xcap_cmd(xcap, &["--tc", "-Q", "in"]), "xcap_tc") {
            Ok(t) => t,
            Err(e) => {
                let _ = xdp_tool.stop();
                return Err(e);
            }
        };
    let result = programs(&c, xdp_fd, tc_fd).and_then(|p| {
        let ns = measure(&p, &frame(10), log)?;
        table(&p, &ns)
    });
    let _ = xdp_tool.stop();
    let _ = tc_tool.stop();
    result
}

/// xcap's command line with `hook`'s options, as in the capture runs.
fn xcap_cmd(xcap: &Path, hook: &[&str]) -> Vec<String> {
    let mut v = vec![xcap.display().to_string(), "-i".into(), CAP_IF.into()];
    v.extend(hook.iter().map(|s| s.to_string()));
    v.extend([
        "-s".into(),
        SNAPLEN.into(),
        "-w".into(),
        "/dev/null".into(),
        FILTER.into(),
    ]);
    v
}

/// The programs, per hook the bare one first: bare, hand-written C, xcap.
fn programs(
    c: &std::collections::HashMap<String, Vec<Insn>>,
    xdp_fd: OwnedFd,
    tc_fd: OwnedFd,
) -> Result<Vec<Program>> {
    let c_prog = |name: &str| -> Result<&Vec<Insn>> {
        c.get(name)
            .with_context(|| format!("programs.c has no {name}"))
    };
    let xdp = bpf_sys::PROG_TYPE_XDP;
    let tc = bpf_sys::PROG_TYPE_SCHED_CLS;
    let frags = bpf_sys::BPF_F_XDP_HAS_FRAGS;
    Ok(vec![
        Program {
            name: "bare XDP pass program, frags".into(),
            bare: 0,
            fd: load(
                "xdp_pass",
                xdp,
                frags,
                &[Insn::mov64_imm(0, 2), Insn::exit()],
            )?,
        },
        Program {
            name: format!("hand-written C `{FILTER}`, clang -O2 (XDP, frags)"),
            bare: 0,
            fd: load("xdp_c", xdp, frags, c_prog("xdp_udp_port_9")?)?,
        },
        Program {
            name: "`xcap --xdp` (native)".into(),
            bare: 0,
            fd: xdp_fd,
        },
        Program {
            name: "bare TC pass program".into(),
            bare: 3,
            fd: load("tc_pass", tc, 0, &[Insn::mov64_imm(0, -1), Insn::exit()])?,
        },
        Program {
            name: format!("hand-written C `{FILTER}`, clang -O2 (TC)"),
            bare: 3,
            fd: load("tc_c", tc, 0, c_prog("tc_udp_port_9")?)?,
        },
        Program {
            name: "`xcap --tc`".into(),
            bare: 3,
            fd: tc_fd,
        },
    ])
}

/// ns per run of each program in each round, the statistics on and the
/// process pinned to one CPU.
fn measure(programs: &[Program], frame: &[u8], log: &mut dyn FnMut(&str)) -> Result<Vec<Vec<f64>>> {
    let stats = bpf_sys::enable_run_time_stats().context("BPF_ENABLE_STATS")?;
    let old_mask = pin_to_last_cpu();
    let r = rounds(programs, frame, log);
    restore_affinity(&old_mask);
    drop(stats);
    r
}

/// The rounds: every program once per round, in the same order.
fn rounds(programs: &[Program], frame: &[u8], log: &mut dyn FnMut(&str)) -> Result<Vec<Vec<f64>>> {
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); programs.len()];
    for round in 0..ROUNDS {
        log(&format!(
            "isolated fixed cost: round {}/{ROUNDS}",
            round + 1
        ));
        for (k, p) in programs.iter().enumerate() {
            ns[k].push(ns_per_run(p, frame)?);
        }
    }
    Ok(ns)
}

/// `REPEAT` test runs of `p` on `frame`: the kernel's run time per run.
fn ns_per_run(p: &Program, frame: &[u8]) -> Result<f64> {
    let before = bpf_sys::prog_info(p.fd.as_fd())?;
    bpf_sys::test_run(
        p.fd.as_fd(),
        &bpf_sys::TestRun {
            data_in: frame,
            repeat: REPEAT,
            ..Default::default()
        },
    )
    .with_context(|| format!("test run of {}", p.name))?;
    let after = bpf_sys::prog_info(p.fd.as_fd())?;
    let runs = after.run_cnt.saturating_sub(before.run_cnt);
    if runs == 0 {
        bail!("{}: no run counted (run-time statistics off?)", p.name);
    }
    Ok((after.run_time_ns - before.run_time_ns) as f64 / runs as f64)
}

/// The table: each program's size, median and paired difference with the
/// bare program of its hook.
fn table(programs: &[Program], ns: &[Vec<f64>]) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(s, "### The programs' fixed cost, in isolation\n");
    let _ = writeln!(
        s,
        "What a packet the filter rejects costs each program, without the network path around it: \
         `BPF_PROG_TEST_RUN` runs each program {REPEAT} times on the non-matching frame of the runs \
         above (UDP to port 10) with the kernel's run-time statistics on, {ROUNDS} rounds alternating \
         the programs, pinned to one CPU. **ns per run**: the median over rounds (the test run's own \
         loop and the statistics' two clock reads included, the same for every program); **over bare**: \
         the median of the per-round differences with the bare pass program of the same hook, ± half \
         their interquartile range. xcap's programs are those `xcap --xdp --xdp-mode native` and \
         `xcap --tc -Q in` loaded for `{FILTER}` at snap length {SNAPLEN} (filter inlined), taken by \
         id while xcap listened; the hand-written C programs (bench/c/programs.c) run the same filter with \
         direct packet access and pass every packet. `insns` and `JIT B` are whole programs, \
         the capture path of xcap's included.\n"
    );
    let _ = writeln!(s, "| program | insns | JIT B | ns per run | over bare |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|");
    for (k, p) in programs.iter().enumerate() {
        let info = bpf_sys::prog_info(p.fd.as_fd())?;
        let med = median(&mut ns[k].clone());
        let over = if p.bare == k {
            String::new()
        } else {
            let (d, spread) = median_and_half_iqr(paired_differences(&ns[k], &ns[p.bare]));
            format!("{d:+.2} ±{spread:.2}")
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {med:.2} | {over} |",
            p.name,
            info.xlated_prog_len / 8,
            info.jited_prog_len
        );
    }
    let _ = writeln!(s);
    Ok(s)
}

fn load(name: &str, prog_type: u32, flags: u32, insns: &[Insn]) -> Result<OwnedFd> {
    let mut log = vec![0u8; 1 << 16];
    bpf_sys::prog_load(
        &bpf_sys::ProgLoad {
            name,
            prog_type,
            expected_attach_type: if prog_type == bpf_sys::PROG_TYPE_XDP {
                bpf_sys::BPF_XDP
            } else {
                0
            },
            flags,
            insns: &to_bytes(insns),
            license: c"GPL",
            ..Default::default()
        },
        Some(&mut log),
    )
    .with_context(|| format!("loading {name}: {}", bpf_sys::log_text(&log)))
}

/// The newest loaded program called `name` with an id above `after`.
fn loaded_by_name(name: &str, after: u32) -> Result<OwnedFd> {
    for id in bpf_sys::prog_ids()?.into_iter().rev() {
        if id <= after {
            break;
        }
        let Ok(fd) = bpf_sys::prog_by_id(id) else {
            continue;
        };
        if bpf_sys::prog_info(fd.as_fd())?.name == name {
            return Ok(fd);
        }
    }
    bail!("no program {name} loaded")
}

/// Starts xcap in the capture namespace and takes its program `prog`.
fn xcap_program(cap_ns: &str, cmd: &[String], prog: &str) -> Result<(Tool, OwnedFd)> {
    let before = bpf_sys::prog_ids()?.last().copied().unwrap_or(0);
    let tool = Tool::start(cap_ns, cmd)?;
    match loaded_by_name(prog, before) {
        Ok(fd) => Ok((tool, fd)),
        Err(e) => {
            let _ = tool.stop();
            Err(e)
        }
    }
}

/// Compiles bench/c/programs.c and returns each function's instructions.
fn c_programs(c_dir: &Path) -> Result<std::collections::HashMap<String, Vec<Insn>>> {
    let src = c_dir.join("programs.c");
    crate::clang::c_filters(&src).with_context(|| format!("building {}", src.display()))
}
