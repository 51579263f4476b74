//! Section 1: filter cost inside the kernel.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cbpf2ebpf::ebpf::Insn;
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::harness::{self, Env, Loaded};
use crate::packets::*;
use crate::stats::{median, median_and_half_iqr};

/// One benchmark filter.
pub struct Case {
    pub expr: String,
    /// Short label for tables (the 100-term list is long).
    pub label: String,
    pub matching: Vec<u8>,
    /// Function in bench/c/filters.c, if there is a C baseline.
    pub c_fn: Option<&'static str>,
    /// cloudflare/cbpfc's figures from the issue: eBPF instructions from its
    /// eBPF backend, clang -O2 on its C backend.
    pub cbpfc: Option<(u32, u32)>,
}

const HOST: [u8; 4] = [10, 0, 0, 1];
const PEER: [u8; 4] = [10, 0, 0, 2];

pub fn cases() -> Vec<Case> {
    let hosts: Vec<String> = (1..=100).map(|i| format!("host 10.1.0.{i}")).collect();
    let c = |expr: &str,
             matching: Vec<u8>,
             c_fn: Option<&'static str>,
             cbpfc: Option<(u32, u32)>| Case {
        expr: expr.to_string(),
        label: format!("`{expr}`"),
        matching,
        c_fn,
        cbpfc,
    };
    vec![
        c(
            "tcp port 443 and tcp[13]&8!=0",
            tcp4(PEER, HOST, 40000, 443, 0x18),
            Some("c_readme"),
            Some((39, 29)),
        ),
        c(
            "tcp port 443",
            tcp4(PEER, HOST, 40000, 443, 0x18),
            Some("c_tcp443"),
            Some((60, 48)),
        ),
        c(
            "host 10.0.0.1 and udp",
            udp4(HOST, PEER, 40000, 5000),
            Some("c_host_udp"),
            Some((23, 18)),
        ),
        c(
            "vlan and tcp",
            vlan_tcp4(5, PEER, HOST, 40000, 80, 0x10),
            None,
            Some((32, 32)),
        ),
        c(
            "tcp[tcpflags] & tcp-syn != 0",
            tcp4(PEER, HOST, 40000, 80, 0x02),
            Some("c_syn"),
            Some((32, 25)),
        ),
        c(
            "icmp or arp",
            icmp4(PEER, HOST),
            Some("c_icmp_arp"),
            Some((19, 17)),
        ),
        c(
            "ip[0] & 0xf > 5",
            udp4_opt(PEER, HOST, 40000, 5000),
            Some("c_ihl"),
            Some((15, 12)),
        ),
        c(
            "udp and not port 53",
            udp4(HOST, PEER, 40000, 5000),
            None,
            Some((55, 48)),
        ),
        Case {
            expr: hosts.join(" or "),
            label: "`host 10.1.0.1 or ... or host 10.1.0.100` (100 terms)".into(),
            matching: udp4(PEER, [10, 1, 0, 100], 40000, 5000),
            c_fn: None,
            cbpfc: None,
        },
        c("ip6 protochain 6", tcp6_hbh(40000, 443, 0x18), None, None),
    ]
}

/// The packet no benchmark filter matches: a DNS query over IPv4 between
/// two addresses none of them names.
pub fn nonmatching() -> Vec<u8> {
    udp4([192, 168, 1, 1], [192, 168, 1, 2], 5353, 53)
}

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

pub struct FilterReport {
    pub case_label: String,
    pub cbpf: Option<usize>,
    pub cbpfc: Option<(u32, u32)>,
    pub rows: Vec<Row>,
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

/// Compiles bench/c/filters.c and returns each function's instructions.
pub fn c_filters(src: &Path) -> Result<HashMap<String, Vec<Insn>>> {
    let obj = std::env::temp_dir().join(format!("xcap-bench-{}.o", std::process::id()));
    let st = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-mcpu=v3", "-c"])
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .status()
        .context("running clang")?;
    if !st.success() {
        bail!("clang failed on {}", src.display());
    }
    let bytes = std::fs::read(&obj)?;
    let _ = std::fs::remove_file(&obj);
    let file = object::File::parse(&*bytes)?;
    let text = file.section_by_name(".text").context("no .text")?;
    if text.relocations().next().is_some() {
        bail!("the C filters need relocations; they must be self-contained");
    }
    let data = text.data()?;
    let mut out = HashMap::new();
    for sym in file.symbols() {
        if sym.section_index() == Some(text.index())
            && sym.kind() == object::SymbolKind::Text
            && sym.size() > 0
        {
            let (a, n) = (sym.address() as usize, sym.size() as usize);
            out.insert(
                sym.name()?.to_string(),
                cbpf2ebpf::ebpf::from_bytes(&data[a..a + n]),
            );
        }
    }
    Ok(out)
}

/// Test runs execute on the calling CPU: keep them all on one, the last
/// (interrupts and the rest of the machine favour CPU 0). Returns the
/// previous mask, to restore: processes started later inherit it.
pub(crate) fn pin_to_last_cpu() -> libc::cpu_set_t {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: zeroed cpu_set_t values, filled by the kernel or libc macros.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, size, &mut old);
        let n = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(n - 1, &mut set);
        libc::sched_setaffinity(0, size, &set);
        old
    }
}

pub(crate) fn restore_affinity(set: &libc::cpu_set_t) {
    // SAFETY: a mask sched_getaffinity filled.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
}

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

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

/// Markdown for section 1.
pub fn markdown(reports: &[FilterReport], bench: &Bench) -> String {
    let mut s = String::new();
    method(&mut s, bench);
    cost_table(&mut s, reports);
    targets_table(&mut s, reports);
    s
}

/// How the figures are taken, with this run's loop counts.
fn method(s: &mut String, bench: &Bench) {
    let _ = writeln!(s, "## 1. Filter cost inside the kernel\n");
    let _ = writeln!(
        s,
        "Each figure: a program calls the filter {} times per `BPF_PROG_TEST_RUN` through `bpf_loop` \
         (callback -> bpf2bpf call -> filter, results `|=`-accumulated), run with repeat {}; the same \
         program calling an empty non-inlined function (`r0 = 0; exit`) is run just before each sample and \
         its time subtracted; the figure is the median of {} such paired differences, in ns per filter call \
         above the empty call, and ± half their interquartile range (how far apart runs of the same code \
         land; differences smaller than that are noise). The process is pinned to one CPU. \
         Matching packet: one per filter (below); non-matching packet: an IPv4 UDP DNS query \
         192.168.1.1:5353 -> 192.168.1.2:53, which no filter matches (filters that need TCP reject it early). \
         `eBPF` is the filter function's instructions; `verifier` the instructions the verifier processed \
         for the program minus those for the same program with the empty function, plus 2; `JIT` the \
         filter function's JIT-compiled bytes (`jited_func_lens`). Every result was checked against \
         libpcap's interpreter on both packets.\n",
        bench.cfg.loops, bench.cfg.repeat, bench.cfg.samples
    );
    let mut envs: Vec<_> = bench.empty_ns.iter().collect();
    envs.sort_by_key(|(k, _)| *k);
    let _ = writeln!(
        s,
        "Loop iteration with the empty call (subtracted): {}.\n",
        envs.iter()
            .map(|(k, v)| format!("{k} {v:.2} ns"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Every implementation of every filter: sizes and ns per call.
fn cost_table(s: &mut String, reports: &[FilterReport]) {
    let _ = writeln!(
        s,
        "| filter | implementation | cBPF | eBPF | verifier | JIT B | ns match | ns non-match |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|");
    for r in reports {
        for (i, row) in r.rows.iter().enumerate() {
            let f = if i == 0 {
                r.case_label.clone()
            } else {
                String::new()
            };
            let cb = if i == 0 { opt(r.cbpf) } else { String::new() };
            let (m, n) = match (&row.ns, &row.note) {
                (Some([m, n]), _) => {
                    let [sm, sn] = row.spread.unwrap_or_default();
                    (format!("{m:.2} ±{sm:.2}"), format!("{n:.2} ±{sn:.2}"))
                }
                (None, Some(note)) => (format!("n/a: {note}"), String::new()),
                _ => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                s,
                "| {f} | {} | {cb} | {} | {} | {} | {m} | {n} |",
                row.implementation,
                opt(row.ebpf),
                opt(row.verified),
                opt(row.jit)
            );
        }
        if let Some((e, c)) = r.cbpfc {
            let _ = writeln!(
                s,
                "| | cloudflare/cbpfc (issue's figures) | | {e} (C: {c}) | | | | |"
            );
        }
    }
}

/// Per filter: xcap's size against cbpfc's, direct mode against C, skb
/// mode against the kernel-style conversion.
fn targets_table(s: &mut String, reports: &[FilterReport]) {
    let _ = writeln!(s, "\n### Against the targets\n");
    let _ = writeln!(s, "| filter | xcap direct eBPF vs cbpfc eBPF (clang on cbpfc C) | direct ns vs C ns (match / non-match) | skb ns vs kernel-style ns (match / non-match) |");
    let _ = writeln!(s, "|---|---|---|---|");
    for r in reports {
        let get = |p: &str| r.rows.iter().find(|x| x.implementation.starts_with(p));
        let d = get("xcap direct");
        let size = size_vs_cbpfc(d, r.cbpfc);
        let c =
            pair(d, get("hand-written")) + &versus_c(d, get("hand-written")).unwrap_or_default();
        let k = pair(get("xcap skb"), get("kernel style"));
        let _ = writeln!(s, "| {} | {size} | {c} | {k} |", r.case_label);
    }
}

/// xcap's direct-mode instructions against cbpfc's eBPF (and clang on its C).
fn size_vs_cbpfc(direct: Option<&Row>, cbpfc: Option<(u32, u32)>) -> String {
    match (direct.and_then(|d| d.ebpf), cbpfc) {
        (Some(n), Some((e, c))) => format!(
            "{n} vs {e} ({c}){}",
            if (n as u32) < e { "" } else { " **over**" }
        ),
        (Some(n), None) => format!("{n} (no cbpfc figure)"),
        _ => "–".into(),
    }
}

/// Both rows' ns (matching / non-matching), or a dash.
fn pair(a: Option<&Row>, b: Option<&Row>) -> String {
    match (a.and_then(|a| a.ns), b.and_then(|b| b.ns)) {
        (Some(a), Some(b)) => format!("{:.2} / {:.2} vs {:.2} / {:.2}", a[0], a[1], b[0], b[1]),
        _ => "–".into(),
    }
}

/// Per packet: met within 0.5 ns of C, within noise when closer than the
/// two figures' spreads added, over otherwise.
fn versus_c(a: Option<&Row>, b: Option<&Row>) -> Option<String> {
    let (a, b) = (a?, b?);
    let (an, bn) = (a.ns?, b.ns?);
    let (asp, bsp) = (a.spread.unwrap_or_default(), b.spread.unwrap_or_default());
    let verdicts: Vec<&str> = (0..2)
        .map(|i| {
            let over = an[i] - bn[i];
            if over <= 0.5 {
                "met"
            } else if over <= 0.5 + asp[i] + bsp[i] {
                "within noise"
            } else {
                "**over**"
            }
        })
        .collect();
    Some(format!(" ({} / {})", verdicts[0], verdicts[1]))
}
