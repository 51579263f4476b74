use std::path::{Path, PathBuf};

use anyhow::Result;
use xcap_bench::filters::{self, Config};

const USAGE: &str = "usage: xcap-bench [--filters-only | --capture-only] [--quick] \
[--xcap PATH] [--seconds N] [--runs N] [--prog-rounds N] [--rate PPS] [--setups A,B] [--dump EXPR]
       xcap-bench --long-run --xcap PATH [--seconds N] [--rate PPS]
Runs the benchmarks of issue 7 and prints a markdown report (scripts/bench.sh writes \
docs/benchmarks.md with it). Needs root, clang, trafgen and tcpdump.
--long-run: only the long capture (issue 21): `xcap -i any` with a ring of files for \
--seconds (default 3600) at --rate frames/s (default 3000), sampled every 10 s.";

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
/// Options whose value is a positive number (whole, but for `--seconds`).
const NUMBERS: [&str; 4] = ["--seconds", "--runs", "--prog-rounds", "--rate"];

fn positive(option: &str, value: &str) -> bool {
    if option == "--seconds" {
        value.parse::<f64>().is_ok_and(|v| v > 0.0)
    } else {
        value.parse::<u64>().is_ok_and(|v| v > 0)
    }
}
const FLAGS: [&str; 4] = ["--filters-only", "--capture-only", "--quick", "--long-run"];

fn main() -> Result<()> {
    let args = Args(std::env::args().skip(1).collect());
    match args.check() {
        Check::Help => {
            println!("{USAGE}");
            return Ok(());
        }
        Check::Bad(why) => {
            eprintln!("xcap-bench: {why} (--help lists the options)");
            std::process::exit(2);
        }
        Check::Ok => {}
    }
    if let Some(expr) = args.value("--dump") {
        return dump(expr);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut log = |m: &str| eprintln!("[bench] {m}");
    if args.has("--long-run") {
        print!("{}", long_run(&args, &mut log)?);
        return Ok(());
    }
    let mut out = String::new();
    if !args.has("--capture-only") {
        let (reports, bench) = filters::run(
            filter_config(&args),
            &root.join("c/filters.c"),
            true,
            &mut log,
        )?;
        out += &filters::markdown(&reports, &bench);
    }
    if !args.has("--filters-only") {
        out += "\n";
        out += &xcap_bench::capture::run(&capture_config(&args, &root), &mut log)?;
    }
    print!("{out}");
    Ok(())
}

/// The command line, after the program name.
struct Args(Vec<String>);

enum Check {
    Ok,
    /// `-h` or `--help`, before any bad argument.
    Help,
    Bad(String),
}

impl Args {
    /// Every argument known, every option with its value.
    fn check(&self) -> Check {
        let args = &self.0;
        // Help wins wherever it stands, even where an option expects a value
        // (`--xcap --help` must not start a benchmark run).
        if args.iter().any(|a| a == "-h" || a == "--help") {
            return Check::Help;
        }
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            if WITH_VALUE.contains(&a) {
                let Some(value) = args.get(i + 1) else {
                    return Check::Bad(format!("{a} needs a value"));
                };
                if NUMBERS.contains(&a) && !positive(a, value) {
                    return Check::Bad(format!("{a} needs a positive number, not {value:?}"));
                }
                i += 2;
            } else if FLAGS.contains(&a) {
                i += 1;
            } else {
                return Check::Bad(format!("unknown argument {a:?}"));
            }
        }
        Check::Ok
    }

    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }

    /// The value after the first `name`.
    fn value(&self, name: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == name)?;
        self.0.get(i + 1).map(String::as_str)
    }

    /// The parsed value after `name`, `default` if absent or unreadable.
    fn number<T: std::str::FromStr + Copy>(&self, name: &str, default: T) -> T {
        self.value(name)
            .map_or(default, |v| v.parse().unwrap_or(default))
    }
}

/// Section 1's loop counts: `--quick` for short runs.
fn filter_config(args: &Args) -> Config {
    if args.has("--quick") {
        Config {
            loops: 1 << 12,
            repeat: 2,
            samples: 3,
        }
    } else {
        Config::FULL
    }
}

/// Section 2's settings from the options.
fn capture_config(args: &Args, root: &Path) -> xcap_bench::capture::Config {
    xcap_bench::capture::Config {
        window: std::time::Duration::from_secs_f64(args.number("--seconds", 5.0)),
        warmup: std::time::Duration::from_secs(1),
        runs: args.number("--runs", 3).max(1),
        // --rate PPS: the fixed offered rate of section 2b.
        rate: args.value("--rate").and_then(|v| v.parse().ok()),
        xcap: args.value("--xcap").map(PathBuf::from),
        startup_runs: 7,
        c_dir: root.join("c"),
        max_other_share: 0.02,
        // --setups a,b: only setups whose names contain a or b.
        only: args
            .value("--setups")
            .map(|v| v.split(',').map(String::from).collect()),
        prog_rounds: args.number("--prog-rounds", 7).max(1),
        prog_window: std::time::Duration::from_secs(2),
    }
}

/// `--long-run`: the long capture alone.
fn long_run(args: &Args, log: &mut dyn FnMut(&str)) -> Result<String> {
    let Some(xcap) = args.value("--xcap") else {
        anyhow::bail!("--long-run needs --xcap PATH");
    };
    xcap_bench::capture::long_run::run(
        &xcap_bench::capture::long_run::LongRun {
            xcap: PathBuf::from(xcap),
            duration: std::time::Duration::from_secs_f64(args.number("--seconds", 3600.0)),
            rate: args.number("--rate", 3000),
        },
        log,
    )
}

/// `--dump EXPR`: the skb-mode translation and the kernel-style one.
fn dump(expr: &str) -> Result<()> {
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
    Ok(())
}
