use std::path::PathBuf;

use anyhow::Result;
use xcap_bench::filters::{self, Config};

const USAGE: &str = "usage: xcap-bench [--filters-only | --capture-only] [--quick] \
[--xcap PATH] [--seconds N] [--runs N] [--prog-rounds N] [--rate PPS] [--setups A,B] [--dump EXPR]
Runs the benchmarks of issue 7 and prints a markdown report (scripts/bench.sh writes \
docs/benchmarks.md with it). Needs root, clang, trafgen and tcpdump.";

/// Options that take a value, and flags.
const WITH_VALUE: [&str; 7] = [
    "--xcap",
    "--seconds",
    "--runs",
    "--prog-rounds",
    "--rate",
    "--setups",
    "--dump",
];
const FLAGS: [&str; 3] = ["--filters-only", "--capture-only", "--quick"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-h" || a == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        if WITH_VALUE.contains(&a) {
            if i + 1 >= args.len() {
                eprintln!("xcap-bench: {a} needs a value (--help lists the options)");
                std::process::exit(2);
            }
            i += 2;
        } else if FLAGS.contains(&a) {
            i += 1;
        } else {
            eprintln!("xcap-bench: unknown argument {a:?} (--help lists the options)");
            std::process::exit(2);
        }
    }
    let has = |f: &str| args.iter().any(|a| a == f);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg = if has("--quick") {
        Config {
            loops: 1 << 12,
            repeat: 2,
            samples: 3,
        }
    } else {
        Config::FULL
    };
    if let Some(i) = args.iter().position(|a| a == "--dump") {
        // --dump EXPR: the skb-mode translation and the kernel-style one.
        let expr = &args[i + 1];
        let cbpf = cbpf2ebpf::libpcap::compile(
            expr,
            cbpf2ebpf::libpcap::DLT_EN10MB,
            cbpf2ebpf::libpcap::DEFAULT_SNAPLEN,
        )?;
        for (name, mode, hook) in [
            ("direct", cbpf2ebpf::Mode::Direct, cbpf2ebpf::Hook::Xdp),
            ("skb", cbpf2ebpf::Mode::Skb, cbpf2ebpf::Hook::TcIngress),
        ] {
            let t = cbpf2ebpf::translate(
                &cbpf,
                &cbpf2ebpf::Options {
                    mode,
                    hook,
                    ..Default::default()
                },
            )?;
            println!("== xcap {name}\n{}", cbpf2ebpf::ebpf::disassemble(&t.insns));
        }
        println!(
            "== kernel style\n{}",
            cbpf2ebpf::ebpf::disassemble(&xcap_bench::kstyle::convert(&cbpf)?)
        );
        return Ok(());
    }
    let mut out = String::new();
    if !has("--capture-only") {
        let (reports, bench) = filters::run(cfg, &root.join("c/filters.c"), true, &mut |m| {
            eprintln!("[bench] {m}")
        })?;
        out += &filters::markdown(&reports, &bench);
    }
    if !has("--filters-only") {
        let xcap = args
            .iter()
            .position(|a| a == "--xcap")
            .map(|i| PathBuf::from(&args[i + 1]));
        let opt = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
        };
        let secs: f64 = opt("--seconds").map_or(5.0, |v| v.parse().unwrap_or(5.0));
        let cfg = xcap_bench::capture::Config {
            window: std::time::Duration::from_secs_f64(secs),
            warmup: std::time::Duration::from_secs(1),
            runs: opt("--runs").map_or(3, |v| v.parse().unwrap_or(3)).max(1),
            // --rate PPS: the fixed offered rate of section 2b.
            rate: opt("--rate").and_then(|v| v.parse().ok()),
            xcap,
            startup_runs: 7,
            c_dir: root.join("c"),
            max_other_share: 0.02,
            // --setups a,b: only setups whose names contain a or b.
            only: opt("--setups").map(|v| v.split(',').map(String::from).collect()),
            prog_rounds: opt("--prog-rounds")
                .map_or(7, |v| v.parse().unwrap_or(7))
                .max(1),
            prog_window: std::time::Duration::from_secs(2),
        };
        out += "\n";
        out += &xcap_bench::capture::run(&cfg, &mut |m| eprintln!("[bench] {m}"))?;
    }
    print!("{out}");
    Ok(())
}
