//! Measuring one filter in one harness: verifier and JIT figures, and ns
//! per call as the median of paired differences with the empty function.

use std::collections::HashMap;

use anyhow::{bail, Result};
use cbpf2ebpf::ebpf::Insn;

use crate::harness::{self, Env, Loaded};
use crate::stats::{median, median_and_half_iqr};

#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Filter calls per BPF_PROG_TEST_RUN (bpf_loop iterations).
    pub loops: u32,
    /// BPF_PROG_TEST_RUN repeat count per sample.
    pub repeat: u32,
    /// Samples per figure; filter and empty alternate, and the figure is
    /// the median of the paired differences.
    pub samples: usize,
}

impl Config {
    pub const FULL: Config = Config {
        loops: 1 << 16,
        repeat: 8,
        samples: 15,
    };
    /// For the smoke test.
    pub const TINY: Config = Config {
        loops: 4,
        repeat: 1,
        samples: 1,
    };
}

/// One implementation of one filter, measured.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub implementation: String,
    pub ebpf: Option<usize>,
    pub verified: Option<i64>,
    pub jit: Option<u32>,
    /// ns per call above an empty call: matching, non-matching packet.
    pub ns: Option<[f64; 2]>,
    /// Half the interquartile range of those differences, per call: how
    /// far apart two runs of the same code land.
    pub spread: Option<[f64; 2]>,
    pub note: Option<String>,
}

/// Loads and measures harnesses; keeps the empty-function harnesses.
pub struct Bench {
    pub cfg: Config,
    empty_loop: HashMap<&'static str, Loaded>,
    empty_once: HashMap<&'static str, (u32, Option<u32>)>,
    /// Mean time per loop iteration with the empty function, per env.
    pub empty_ns: HashMap<&'static str, f64>,
}

fn key(env: Env) -> &'static str {
    match env {
        Env::Xdp => "XDP",
        Env::Skb => "SCHED_CLS",
        Env::Syscall => "SYSCALL",
    }
}

impl Bench {
    pub fn new(cfg: Config) -> Self {
        Bench {
            cfg,
            empty_loop: HashMap::new(),
            empty_once: HashMap::new(),
            empty_ns: HashMap::new(),
        }
    }

    fn ensure_empty(&mut self, env: Env) -> Result<()> {
        if self.empty_loop.contains_key(key(env)) {
            return Ok(());
        }
        let e = harness::empty_filter();
        let once = harness::load(env, &harness::build(env, &e, None))?;
        let info = xcap_runner::kernel::prog_info(&once.fd)?;
        let jit = crate::sys::jited_func_lens(&once.fd)?.get(2).copied();
        self.empty_once
            .insert(key(env), (info.verified_insns.unwrap_or(0), jit));
        let lp = harness::load(env, &harness::build(env, &e, Some(self.cfg.loops)))?;
        self.empty_loop.insert(key(env), lp);
        Ok(())
    }

    /// Verifier count, JIT size and ns per call (matching, non-matching)
    /// of `filter` in `env`. `expect` is libpcap's verdict per packet.
    pub fn measure(
        &mut self,
        env: Env,
        filter: &[Insn],
        packets: [&[u8]; 2],
        expect: [bool; 2],
    ) -> Result<Row> {
        self.ensure_empty(env)?;
        let once = harness::load(env, &harness::build(env, filter, None))?;
        let info = xcap_runner::kernel::prog_info(&once.fd)?;
        let (empty_verified, _) = self.empty_once[key(env)];
        let verified = info
            .verified_insns
            .map(|v| v as i64 - empty_verified as i64 + 2);
        let jit = crate::sys::jited_func_lens(&once.fd)?.get(2).copied();
        let lp = harness::load(env, &harness::build(env, filter, Some(self.cfg.loops)))?;
        let mut ns = [0.0; 2];
        let mut spread = [0.0; 2];
        for (i, pkt) in packets.iter().enumerate() {
            let input = harness::input(env, pkt);
            let (m, _) = harness::run(&once, &input, 1)?;
            if m != expect[i] {
                bail!(
                    "{} packet: the kernel says {m}, libpcap says {}",
                    ["matching", "non-matching"][i],
                    expect[i]
                );
            }
            let (m, _) = harness::run(&lp, &input, 1)?;
            if m != expect[i] {
                bail!(
                    "looped harness disagrees with libpcap on the {} packet",
                    ["matching", "non-matching"][i]
                );
            }
            let empty = &self.empty_loop[key(env)];
            // Paired: each filter run minus the empty run just before it,
            // so slow drifts of the machine cancel.
            let (mut diff, mut te) = (Vec::new(), Vec::new());
            for _ in 0..self.cfg.samples {
                let e = harness::run(empty, &input, self.cfg.repeat)?.1;
                let f = harness::run(&lp, &input, self.cfg.repeat)?.1;
                te.push(e);
                diff.push(f - e);
            }
            let e = median(&mut te);
            let per = self.cfg.loops as f64;
            let (diff, diff_spread) = median_and_half_iqr(diff);
            ns[i] = diff / per;
            spread[i] = diff_spread / per;
            let slot = self.empty_ns.entry(key(env)).or_insert(e / per);
            *slot = slot.min(e / per);
        }
        Ok(Row {
            ebpf: Some(filter.len()),
            verified,
            jit,
            ns: Some(ns),
            spread: Some(spread),
            ..Default::default()
        })
    }
}
