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
//! that `tcpdump -r FILE -w OUT EXPRESSION` writes (see `source::file`).
//!
//! The shape: [`args`] reads the command line (clap), [`plan`] turns it
//! into one [`plan::Plan`] with every check of one flag against another,
//! and the plan runs: packets go from a [`source`] (live, tracing hooks, a
//! file) to a [`sink`] (lines or a capture file) in a [`session`].

mod args;
mod engine;
mod extcap;
mod filter;
mod filter_object;
mod interfaces;
mod link;
mod out;
mod plan;
mod print;
mod privileges;
mod program;
mod session;
mod sink;
mod source;
mod summary;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use args::Cli;
use plan::Plan;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match plan::plan(&cli).and_then(run) {
        Ok(code) => code,
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined with ": ".
            eprintln!("xcap: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(plan: Plan) -> Result<ExitCode> {
    match plan {
        Plan::ListInterfaces => interfaces::list(),
        Plan::ShowProgram(p) => program::show(&p),
        Plan::ReadFile(p) => session::read_file(&p),
        Plan::Capture(p) => session::capture(&p),
        Plan::WriteObject(p) => filter_object::write(&p),
        Plan::Extcap(call) => extcap::answer(&call),
    }
}

/// Help and version go to stdout with status 0. Usage errors: one line,
/// exit 1, as tcpdump's (clap would print a usage block and a tip, and
/// exit 2).
fn usage_error(e: clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // Its message is the first paragraph (a list of missing arguments
    // continues it on indented lines).
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("xcap: {message} (xcap --help lists the options)");
    ExitCode::from(1)
}
