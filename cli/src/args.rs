//! The command line, in tcpdump's conventions.
//!
//! One top-level command takes tcpdump-style flags and the expression words;
//! subcommands ([`Command`]) are for jobs tcpdump does not have. Live capture
//! (issue 4) adds its flags (`-i`, `--xdp`, `--tc`, `-Q`, `-n`, `-q`, `-v`,
//! `-U`, `--pcapng`) to [`RunArgs`]; `-w`, `-c`, `-s` and `-F` already mean
//! what they will mean there.

use anyhow::{bail, Result};
use cbpf2ebpf::libpcap;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "xcap",
    version,
    about = "tcpdump's filters, translated to eBPF and run in the kernel",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
        xcap -d 'tcp port 80'                  cBPF as tcpdump -d prints it\n  \
        xcap --ebpf --mode skb 'tcp port 80'   the translated eBPF\n  \
        xcap -r in.pcap -w out.pcap icmp        filter a file in the kernel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a filter as an eBPF ELF object: a function to link with
    /// `bpftool gen object`, or a complete XDP or TC program
    Compile(crate::compile::CompileArgs),
}

/// The tcpdump-like top-level command.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print the compiled cBPF and exit: -d as text, -dd as a C array,
    /// -ddd as decimal numbers (as tcpdump)
    #[arg(short = 'd', action = ArgAction::Count)]
    pub dump: u8,

    /// Print the translated eBPF (with instruction and bounds-check counts)
    /// and exit
    #[arg(long, conflicts_with = "dump")]
    pub ebpf: bool,

    /// Packet access mode of the translation: packet pointers (direct),
    /// bpf_skb_load_bytes (skb) or bpf_probe_read_kernel (probe)
    #[arg(long, value_enum, default_value_t = ModeArg::Direct)]
    pub mode: ModeArg,

    /// Hook the eBPF listing is translated for (decides what `inbound`,
    /// `ifindex`, ... read); -r always uses offline
    #[arg(long, value_enum, default_value_t = HookArg::Offline)]
    pub hook: HookArg,

    /// The most calls of the filter's bpf_loop callback, two passes of a
    /// loop each (`protochain`, or a raw program's backward jumps); past
    /// them the filter returns 0. The default, bpf_loop's limit, decides
    /// no `protochain` verdict on packets up to 1 MiB
    #[arg(
        long,
        value_name = "N",
        default_value_t = cbpf2ebpf::DEFAULT_LOOP_ITERATIONS,
        value_parser = clap::value_parser!(u32).range(1..=cbpf2ebpf::ebpf::BPF_MAX_LOOPS as i64)
    )]
    pub max_loop_iterations: u32,

    /// Link type to compile for (EN10MB, RAW, LINUX_SLL, IPV4, IPV6, or a
    /// number) when not reading a file
    #[arg(short = 'y', value_name = "LINKTYPE")]
    pub linktype: Option<String>,

    /// Snap length: the value the filter returns on a match (0 means 262144)
    #[arg(short = 's', value_name = "SNAPLEN", allow_hyphen_values = true)]
    pub snaplen: Option<String>,

    /// Read the filter expression from FILE ('#' starts a comment);
    /// expression words on the command line are then ignored
    #[arg(short = 'F', value_name = "FILE", conflicts_with = "raw_cbpf")]
    pub filter_file: Option<String>,

    /// Read a raw cBPF program, as `tcpdump -ddd` or `-dd` prints it, from
    /// FILE ('-' for stdin) instead of compiling an expression
    #[arg(long, value_name = "FILE")]
    pub raw_cbpf: Option<String>,

    /// Read packets from a pcap or pcapng FILE
    #[arg(short = 'r', value_name = "FILE")]
    pub read: Option<String>,

    /// Write the matching packets to a pcap FILE ('-' for stdout)
    #[arg(short = 'w', value_name = "FILE")]
    pub write: Option<String>,

    /// Stop after COUNT matching packets
    #[arg(short = 'c', value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// What runs the filter on each packet read with -r: the kernel
    /// (BPF_PROG_TEST_RUN; the default when privileged), our user-space eBPF
    /// VM (the default otherwise), or libpcap's own cBPF interpreter
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,

    /// The filter expression; words are joined with spaces, as tcpdump does
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,

    /// Live capture flags (-i, --xdp, --tc, -Q, -n, -q, -v, -U, --pcapng, ...)
    #[command(flatten)]
    pub live: crate::live::LiveArgs,

    /// Tracing hooks (--trace, --fentry, --xdp-hook)
    #[command(flatten)]
    pub trace: crate::trace::TraceArgs,

    /// How packets are printed (-t, -e, -x, -X, -A)
    #[command(flatten)]
    pub print: crate::print::PrintArgs,

    /// List the interfaces libpcap can capture on, as tcpdump -D, and exit
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,
}

impl RunArgs {
    /// `-y`, default EN10MB.
    pub fn linktype(&self) -> Result<i32> {
        match &self.linktype {
            None => Ok(libpcap::DLT_EN10MB),
            Some(name) => match libpcap::linktype_from_name(name) {
                Some(lt) => Ok(lt),
                None => bail!("invalid data link type {name}"),
            },
        }
    }

    /// `-U` or `-l`: each packet goes out as soon as it is written.
    pub fn flush_each_packet(&self) -> bool {
        self.live.packet_buffered || self.print.line_buffered
    }

    /// `-s`, as tcpdump checks it: 0 means the maximum, 262144.
    pub fn snaplen(&self) -> Result<u32> {
        let max = libpcap::DEFAULT_SNAPLEN;
        let Some(text) = &self.snaplen else {
            return Ok(max);
        };
        match text.parse::<i64>() {
            Ok(0) => Ok(max),
            Ok(n) if (1..=max as i64).contains(&n) => Ok(n as u32),
            _ => bail!("invalid snaplen {text} (must be >= 0 and <= {max})"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Direct,
    Skb,
    Probe,
}

impl ModeArg {
    pub fn name(self) -> &'static str {
        match self {
            ModeArg::Direct => "direct",
            ModeArg::Skb => "skb",
            ModeArg::Probe => "probe",
        }
    }
}

impl From<ModeArg> for cbpf2ebpf::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Direct => cbpf2ebpf::Mode::Direct,
            ModeArg::Skb => cbpf2ebpf::Mode::Skb,
            ModeArg::Probe => cbpf2ebpf::Mode::Probe,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HookArg {
    Xdp,
    TcIngress,
    TcEgress,
    Socket,
    Offline,
}

impl HookArg {
    pub fn name(self) -> &'static str {
        match self {
            HookArg::Xdp => "xdp",
            HookArg::TcIngress => "tc-ingress",
            HookArg::TcEgress => "tc-egress",
            HookArg::Socket => "socket",
            HookArg::Offline => "offline",
        }
    }
}

impl From<HookArg> for cbpf2ebpf::Hook {
    fn from(h: HookArg) -> Self {
        match h {
            HookArg::Xdp => cbpf2ebpf::Hook::Xdp,
            HookArg::TcIngress => cbpf2ebpf::Hook::TcIngress,
            HookArg::TcEgress => cbpf2ebpf::Hook::TcEgress,
            HookArg::Socket => cbpf2ebpf::Hook::Socket,
            HookArg::Offline => cbpf2ebpf::Hook::Offline,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Kernel,
    Vm,
    Libpcap,
}
