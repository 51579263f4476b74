//! Smoke test: the harnesses assemble, load and agree with libpcap, with a
//! tiny loop count. Speed is never checked. Needs root (BPF_PROG_TEST_RUN).

use std::path::PathBuf;

use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};
use xcap_bench::filters::{c_filters, cases, nonmatching, Bench, Config};
use xcap_bench::harness::Env;

#[test]
fn harnesses_run_once() {
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
