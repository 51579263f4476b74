//! Section 1's markdown: the cost of every implementation of every filter,
//! and the filters against the targets.

use std::fmt::Write;

use super::bench::{Bench, Row};

/// What section 1 measured of one filter: a row per implementation.
pub struct FilterReport {
    pub case_label: String,
    pub cbpf: Option<usize>,
    pub cbpfc: Option<(u32, u32)>,
    pub rows: Vec<Row>,
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
