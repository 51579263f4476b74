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

use super::tool::Tool;
use crate::filters::{pin_to_last_cpu, restore_affinity};
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
    crate::filters::c_filters(&src).with_context(|| format!("building {}", src.display()))
}

/// Where and what to measure.
pub struct Setup<'a> {
    /// The capture namespace, and the interface xcap listens on there.
    pub cap_ns: &'a str,
    pub cap_if: &'a str,
    pub xcap: &'a Path,
    pub filter: &'a str,
    pub snaplen: &'a str,
    /// bench/c, for programs.c.
    pub c_dir: &'a Path,
    /// The packet every program runs on.
    pub frame: &'a [u8],
}

pub fn run(setup: &Setup<'_>, log: &mut dyn FnMut(&str)) -> Result<String> {
    let Setup {
        cap_ns,
        cap_if,
        xcap,
        filter,
        snaplen,
        c_dir,
        frame,
    } = *setup;
    let c = c_programs(c_dir)?;
    let c_prog = |name: &str| -> Result<&Vec<Insn>> {
        c.get(name)
            .with_context(|| format!("programs.c has no {name}"))
    };
    let xdp = bpf_sys::PROG_TYPE_XDP;
    let tc = bpf_sys::PROG_TYPE_SCHED_CLS;
    let frags = bpf_sys::BPF_F_XDP_HAS_FRAGS;
    let x = xcap.display().to_string();
    let cmd = |hook: &[&str]| -> Vec<String> {
        let mut v = vec![x.clone(), "-i".into(), cap_if.into()];
        v.extend(hook.iter().map(|s| s.to_string()));
        v.extend([
            "-s".into(),
            snaplen.into(),
            "-w".into(),
            "/dev/null".into(),
            filter.into(),
        ]);
        v
    };
    let (xdp_tool, xdp_fd) =
        xcap_program(cap_ns, &cmd(&["--xdp", "--xdp-mode", "native"]), "xcap_xdp")?;
    let tc_started = xcap_program(cap_ns, &cmd(&["--tc", "-Q", "in"]), "xcap_tc");
    let (tc_tool, tc_fd) = match tc_started {
        Ok(t) => t,
        Err(e) => {
            let _ = xdp_tool.stop();
            return Err(e);
        }
    };
    let programs = (|| -> Result<Vec<Program>> {
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
                name: format!("hand-written C `{filter}`, clang -O2 (XDP, frags)"),
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
                name: format!("hand-written C `{filter}`, clang -O2 (TC)"),
                bare: 3,
                fd: load("tc_c", tc, 0, c_prog("tc_udp_port_9")?)?,
            },
            Program {
                name: "`xcap --tc`".into(),
                bare: 3,
                fd: tc_fd,
            },
        ])
    })();
    let result = programs.and_then(|p| measure(&p, frame, filter, snaplen, log));
    let _ = xdp_tool.stop();
    let _ = tc_tool.stop();
    result
}

fn measure(
    programs: &[Program],
    frame: &[u8],
    filter: &str,
    snaplen: &str,
    log: &mut dyn FnMut(&str),
) -> Result<String> {
    let stats = bpf_sys::enable_run_time_stats().context("BPF_ENABLE_STATS")?;
    let old_mask = pin_to_last_cpu();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); programs.len()];
    let r = (|| -> Result<()> {
        for round in 0..ROUNDS {
            log(&format!(
                "isolated fixed cost: round {}/{ROUNDS}",
                round + 1
            ));
            for (k, p) in programs.iter().enumerate() {
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
                ns[k].push((after.run_time_ns - before.run_time_ns) as f64 / runs as f64);
            }
        }
        Ok(())
    })();
    restore_affinity(&old_mask);
    drop(stats);
    r?;

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
         `xcap --tc -Q in` loaded for `{filter}` at snap length {snaplen} (filter inlined), taken by \
         id while xcap listened; the hand-written C programs (bench/c/programs.c) run the same filter with \
         direct packet access and pass every packet. `insns` and `JIT B` are whole programs, \
         the capture path of xcap's included.\n"
    );
    let _ = writeln!(s, "| program | insns | JIT B | ns per run | over bare |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|");
    for (k, p) in programs.iter().enumerate() {
        let info = bpf_sys::prog_info(p.fd.as_fd())?;
        let mut v = ns[k].clone();
        let med = median(&mut v);
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
