//! Smoke test: the harnesses assemble, load and agree with libpcap, with a
//! tiny loop count. Speed is never checked. Needs root (BPF_PROG_TEST_RUN).

use std::path::PathBuf;
use std::sync::Mutex;

use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};
use xcap_bench::clang::c_filters;
use xcap_bench::filters::{cases, nonmatching, Bench, Config};
use xcap_bench::harness::Env;

/// `c_filters` compiles to one object file per process: tests that call
/// it take turns.
static C_OBJECT: Mutex<()> = Mutex::new(());

#[test]
fn harnesses_run_once() {
    let _turn = C_OBJECT.lock().unwrap_or_else(|e| e.into_inner());
    let mut bench = Bench::new(Config::TINY);
    let case = &cases()[1]; // tcp port 443
    let cbpf = libpcap::compile(&case.expr, libpcap::DLT_EN10MB, libpcap::DEFAULT_SNAPLEN).unwrap();
    let nm = nonmatching();
    let packets = [&case.matching[..], &nm[..]];
    for (mode, hook, env) in [
        (Mode::Direct, Hook::Xdp, Env::Xdp),
        (Mode::Skb, Hook::TcIngress, Env::Skb),
        (Mode::Probe, Hook::None, Env::Syscall),
    ] {
        let t = translate(
            &cbpf,
            &Options {
                mode,
                hook,
                ..Options::default()
            },
        )
        .unwrap();
        let row = bench
            .measure(env, &t.insns, packets, [true, false])
            .unwrap();
        assert!(
            row.verified.unwrap() > 0 && row.jit.unwrap() > 0,
            "{mode:?}: {row:?}"
        );
    }
    let c = c_filters(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("c/filters.c")).unwrap();
    bench
        .measure(Env::Xdp, &c["c_tcp443"], packets, [true, false])
        .unwrap();
    let k = xcap_bench::kstyle::convert(&cbpf).unwrap();
    bench.measure(Env::Skb, &k, packets, [true, false]).unwrap();
}

#[test]
fn every_case_has_the_right_packets() {
    let nm = nonmatching();
    for case in cases() {
        let cbpf =
            libpcap::compile(&case.expr, libpcap::DLT_EN10MB, libpcap::DEFAULT_SNAPLEN).unwrap();
        assert_ne!(
            libpcap::filter(&cbpf, &case.matching, case.matching.len() as u32),
            0,
            "{}",
            case.expr
        );
        assert_eq!(
            libpcap::filter(&cbpf, &nm, nm.len() as u32),
            0,
            "{}",
            case.expr
        );
    }
}

#[test]
fn section_one_reports_every_filter_with_every_implementation() {
    let _turn = C_OBJECT.lock().unwrap_or_else(|e| e.into_inner());
    let c_src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("c/filters.c");
    let (reports, bench) =
        xcap_bench::filters::run(Config::TINY, &c_src, true, &mut |_| {}).unwrap();
    let cases = cases();
    assert_eq!(reports.len(), cases.len());
    for (report, case) in reports.iter().zip(&cases) {
        assert_eq!(report.case_label, case.label);
        let names: Vec<&str> = report
            .rows
            .iter()
            .map(|r| r.implementation.as_str())
            .collect();
        let mut expected = vec!["xcap direct (XDP)", "xcap skb (TC)", "xcap probe (SYSCALL)"];
        if case.c_fn.is_some() {
            expected.push("hand-written C, clang -O2 (XDP)");
        }
        expected.push("kernel style, LD_ABS/LD_IND (TC)");
        assert_eq!(names, expected, "{}", case.label);
        // Every row measured, but the kernel-style conversion of the
        // protochain loop: a backward jump, which the kernel refuses.
        for row in &report.rows {
            let refused =
                row.implementation.starts_with("kernel style") && case.expr == "ip6 protochain 6";
            assert!(row.ns.is_some() || refused, "{}: {row:?}", case.label);
        }
    }
    let md = xcap_bench::filters::markdown(&reports, &bench);
    let table_rows = md.lines().filter(|l| l.starts_with("| ")).count();
    // Per table a header line; the cost table a line per row and per
    // cbpfc figure, the targets table a line per filter.
    let rows: usize = reports.iter().map(|r| r.rows.len()).sum();
    let cbpfc = reports.iter().filter(|r| r.cbpfc.is_some()).count();
    assert_eq!(table_rows, 1 + rows + cbpfc + 1 + reports.len());
}
