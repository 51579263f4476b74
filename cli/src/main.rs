//! # xcap
//!
//! tcpdump's filter language, run inside the kernel. This binary is a thin
//! layer over the libraries: libpcap (through `cbpf2ebpf::libpcap`) compiles
//! the expression to classic BPF, `cbpf2ebpf` translates it to eBPF,
//! `capture` splices it into the capture programs and reads what they send,
//! `injector` writes filter objects, and `xcap-runner` runs a filter in the
//! kernel (`BPF_PROG_TEST_RUN`) or in a user-space VM.
//!
//! It follows tcpdump's command-line conventions (same short flags, same
//! output where tcpdump has one, same error texts, exit status 1 on any
//! error):
//!
//! ```text
//! xcap -i IFACE [--xdp|--tc] [-Q DIR] [-w FILE] [-c N] EXPRESSION...  live capture
//! xcap --trace kfree_skb [-w FILE] EXPRESSION...              capture at tracepoints
//! xcap compile EXPRESSION... -o F.o [--program xdp|tc|none]   a filter object
//! xcap -d|-dd|-ddd [-y LINKTYPE] [-s SNAPLEN] EXPRESSION...   cBPF as tcpdump prints it
//! xcap --ebpf [--mode M] [--hook H] EXPRESSION...             the translated eBPF
//! xcap -r FILE [-w OUT] [-c N] [--engine E] EXPRESSION...     filter a capture file
//! ```
//!
//! `-F FILE` reads the expression from a file (as tcpdump: `#` starts a
//! comment that runs to the end of the line; words after the options are
//! then ignored) and `--raw-cbpf FILE` takes a program as `tcpdump -ddd` or
//! `-dd` prints it instead of an expression.
//!
//! With `-r`, the written file holds exactly the packets, headers and bytes
//! that `tcpdump -r FILE -w OUT EXPRESSION` writes: the file is read and
//! written by libpcap itself (micro-second timestamps, the input's link type
//! and snap length), and the filter is compiled as tcpdump compiles it for a
//! file (netmask 0, the file's link type and snap length), translated with
//! [`cbpf2ebpf::Hook::Offline`] semantics and run by the chosen engine.
//!
//! Anything that is not `-r`, a dump, `--ebpf`, `--trace`/`--fentry` or
//! `compile` is a live capture (see `live`).

mod args;
mod compile;
mod consumer;
mod expr;
mod live;
mod offline;
mod out;
mod print;
mod summary;
mod trace;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cbpf2ebpf::cbpf::{dump, Insn};
use cbpf2ebpf::{libpcap, translate, Options};
use clap::Parser;

use args::{Cli, Command, RunArgs};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // Help and version go to stdout with status 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors: one line, exit 1, as tcpdump's (clap would
            // print a usage block and a tip, and exit 2).
            // Its message is the first paragraph (a list of missing
            // arguments continues it on indented lines).
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("xcap: {message} (xcap --help lists the options)");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Some(command) => run_command(command),
        None => run(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined with ": ".
            eprintln!("xcap: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_command(command: Command) -> Result<ExitCode> {
    match command {
        Command::Compile(args) => compile::run(&args),
    }
}

/// The top-level command: dump, list or filter a file.
fn run(args: &RunArgs) -> Result<ExitCode> {
    if args.list_interfaces {
        return list_interfaces();
    }
    let source = expr::Source::from_args(args)?;

    if let Some(path) = &args.read {
        if args.hook != args::HookArg::Offline && !args.ebpf {
            anyhow::bail!("--hook does not apply to -r: a file is filtered with offline semantics");
        }
        let file = offline::Input::open(path)?;
        let prog = match &source {
            expr::Source::Expression(e) => file.compile(e)?,
            expr::Source::Raw(p) => p.clone(),
        };
        if args.dump > 0 || args.ebpf {
            print_program(args, &prog)?;
            return Ok(ExitCode::SUCCESS);
        }
        return offline::filter_file(args, file, &prog);
    }

    if args.dump == 0 && !args.ebpf && args.trace.active() {
        // Tracing hooks (trace.rs): tp_btf and fentry.
        return trace::run(args, source);
    }
    if args.dump == 0 && !args.ebpf {
        // Live capture (live.rs): the filter runs at XDP or TC.
        return live::run(args, source);
    }
    let linktype = args.linktype()?;
    let snaplen = args.snaplen()?;
    // tcpdump compiles with netmask 0 when it only dumps the program.
    let prog = match &source {
        expr::Source::Expression(e) => compile(e, linktype, snaplen, 0)?,
        expr::Source::Raw(p) => p.clone(),
    };
    print_program(args, &prog)?;
    Ok(ExitCode::SUCCESS)
}

/// `-D`: libpcap's interfaces, numbered, as tcpdump lists them.
fn list_interfaces() -> Result<ExitCode> {
    use pcap::{ConnectionStatus, IfFlags};
    let devices = pcap::Device::list().map_err(|e| anyhow::anyhow!("{e}"))?;
    if devices.is_empty() {
        anyhow::bail!("no suitable device found");
    }
    let mut text = String::new();
    for (i, d) in devices.iter().enumerate() {
        text += &format!("{}.{}", i + 1, d.name);
        if let Some(desc) = &d.desc {
            text += &format!(" ({desc})");
        }
        let f = &d.flags;
        let status = &f.connection_status;
        if !f.if_flags.is_empty() || !matches!(status, ConnectionStatus::Unknown) {
            let names: Vec<&str> = [
                (IfFlags::UP, "Up"),
                (IfFlags::RUNNING, "Running"),
                (IfFlags::LOOPBACK, "Loopback"),
                (IfFlags::WIRELESS, "Wireless"),
            ]
            .iter()
            .filter(|(flag, _)| f.if_flags.contains(*flag))
            .map(|&(_, name)| name)
            .collect();
            text += " [";
            text += &if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            let wireless = f.if_flags.contains(IfFlags::WIRELESS);
            text += match (status, wireless) {
                (ConnectionStatus::Unknown, false) => ", Connection status unknown",
                (ConnectionStatus::Unknown, true) => ", Association status unknown",
                (ConnectionStatus::Connected, false) => ", Connected",
                (ConnectionStatus::Connected, true) => ", Associated",
                (ConnectionStatus::Disconnected, false) => ", Disconnected",
                (ConnectionStatus::Disconnected, true) => ", Not associated",
                (ConnectionStatus::NotApplicable, _) => "",
            };
            text += "]";
        }
        text += "\n";
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `-d`/`-dd`/`-ddd` or `--ebpf` output for `prog`.
fn print_program(args: &RunArgs, prog: &[Insn]) -> Result<()> {
    let text = if args.dump > 0 {
        match args.dump {
            1 => dump::dump_d(prog),
            2 => dump::dump_dd(prog),
            _ => dump::dump_ddd(prog),
        }
    } else {
        let opts = Options {
            mode: args.mode.into(),
            hook: args.hook.into(),
            max_loop_iterations: args.max_loop_iterations,
            ..Options::default()
        };
        let t = translate(prog, &opts).context("can't translate the filter")?;
        format!(
            "; mode {}, hook {}\n; cBPF instructions: {}\n; eBPF instructions: {}\n; bounds checks: {}\n{}",
            args.mode.name(),
            args.hook.name(),
            t.stats.cbpf_insns,
            t.stats.ebpf_insns,
            t.stats.bounds_checks,
            cbpf2ebpf::ebpf::disassemble(&t.insns)
        )
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// libpcap's compiler, with its error text as the whole message.
fn compile(expr: &str, linktype: i32, snaplen: u32, netmask: u32) -> Result<Vec<Insn>> {
    libpcap::compile_with(expr, linktype, snaplen, true, netmask)
        .map_err(|e| anyhow::anyhow!("{e}"))
}
