//! `xcap compile EXPRESSION... -o F.o`: the filter as an ELF object for other
//! programs and loaders (`injector::blob`): a function to link with
//! `bpftool gen object`, or a complete XDP or TC program that passes the
//! matching packets and drops the others.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cbpf2ebpf::{libpcap, Hook};
use clap::{Args, ValueEnum};
use injector::blob::{compile_filter, BlobError, BlobOptions, ProgramKind};

use crate::args::ModeArg;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    xcap compile icmp -o icmp.o --program xdp\n      \
        ip link set dev eth0 xdp obj icmp.o sec xdp\n  \
    xcap compile 'tcp port 80' -o web.o --program tc --invert\n      \
        tc filter add dev eth0 ingress bpf da obj web.o sec tc\n  \
    xcap compile 'udp port 53' -o dns.o --name is_dns\n      \
        bpftool gen object prog.o caller.o dns.o   (caller: extern __u32 is_dns(void *ctx, void *start, void *end, __u32 wirelen);)")]
pub struct CompileArgs {
    /// Write the object to FILE ('-' for stdout)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: String,

    /// What to write: a function object to link (none), or a complete XDP
    /// or TC program (sections `xdp`; `tc` and `classifier`)
    #[arg(long, value_enum, default_value_t = ProgramArg::None)]
    pub program: ProgramArg,

    /// Link type to compile for (EN10MB, RAW, LINUX_SLL, ... or a number)
    #[arg(short = 'y', long, value_name = "LINKTYPE", default_value = "EN10MB")]
    pub linktype: String,

    /// Packet access: packet pointers (direct), bpf_skb_load_bytes (skb, TC
    /// only) or bpf_probe_read_kernel (probe, function objects only)
    #[arg(long, value_enum, default_value_t = ModeArg::Direct)]
    pub mode: ModeArg,

    /// Hook the filter runs at (what `inbound`, `ifindex` read); default:
    /// xdp for --program xdp, tc-ingress for tc, none (no ancillary loads)
    /// for a function object
    #[arg(long, value_enum)]
    pub hook: Option<CompileHook>,

    /// Snap length: the value the filter returns on a match (0 means 262144)
    #[arg(short = 's', long, value_name = "SNAPLEN", allow_hyphen_values = true)]
    pub snaplen: Option<String>,

    /// Drop the matching packets and pass the others (programs only)
    #[arg(long)]
    pub invert: bool,

    /// Let jumps past 32,767 instructions be `gotol` (Linux 6.6+, 6.1.72+)
    /// instead of chains of `ja`, which every kernel loads
    #[arg(long)]
    pub gotol: bool,

    /// Name of the exported function (function objects only)
    #[arg(long, value_name = "FUNC", default_value = "xcap_filter")]
    pub name: String,

    /// The filter expression; words are joined with spaces, as tcpdump does
    #[arg(value_name = "EXPRESSION", required = true)]
    pub expression: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgramArg {
    None,
    Xdp,
    Tc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompileHook {
    None,
    Xdp,
    TcIngress,
    TcEgress,
    Socket,
}

impl From<CompileHook> for Hook {
    fn from(h: CompileHook) -> Self {
        match h {
            CompileHook::None => Hook::None,
            CompileHook::Xdp => Hook::Xdp,
            CompileHook::TcIngress => Hook::TcIngress,
            CompileHook::TcEgress => Hook::TcEgress,
            CompileHook::Socket => Hook::Socket,
        }
    }
}

pub fn run(args: &CompileArgs) -> Result<ExitCode> {
    let kind = match args.program {
        ProgramArg::None => None,
        ProgramArg::Xdp => Some(ProgramKind::Xdp),
        ProgramArg::Tc => Some(ProgramKind::Tc),
    };
    if kind.is_none() && args.invert {
        bail!("--invert needs --program xdp or tc");
    }
    if kind.is_some() && args.name != "xcap_filter" {
        bail!("--name applies to function objects (--program none)");
    }
    let linktype = match libpcap::linktype_from_name(&args.linktype) {
        Some(lt) => lt,
        None => bail!("invalid data link type {}", args.linktype),
    };
    let snaplen = snaplen(args.snaplen.as_deref())?;
    let hook = match (args.hook, kind) {
        (Some(h), _) => h.into(),
        (None, Some(k)) => k.default_hook(),
        (None, None) => Hook::None,
    };
    let opts = BlobOptions {
        linktype,
        mode: args.mode.into(),
        hook,
        snaplen,
        gotol: args.gotol,
        ..BlobOptions::default()
    };
    let expr = args.expression.join(" ");
    let blob = match compile_filter(&expr, &opts) {
        Err(BlobError::Translate(cbpf2ebpf::Error::Ancillary { primitive, .. }))
            if hook == Hook::None =>
        {
            bail!("{primitive} needs to know where the filter runs: add --hook xdp, tc-ingress, tc-egress or socket")
        }
        other => other?,
    };
    let elf = match kind {
        None => blob.function_object(&args.name)?,
        Some(k) => blob.program_object(k, args.invert)?,
    };
    if args.output == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(&elf)?;
        out.flush()?;
    } else {
        std::fs::write(&args.output, &elf)
            .map_err(crate::out::IoError)
            .with_context(|| format!("can't write {}", args.output))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `-s`, as tcpdump checks it: 0 means the maximum, 262144.
fn snaplen(text: Option<&str>) -> Result<u32> {
    let max = libpcap::DEFAULT_SNAPLEN;
    let Some(text) = text else {
        return Ok(max);
    };
    match text.parse::<i64>() {
        Ok(0) => Ok(max),
        Ok(n) if (1..=max as i64).contains(&n) => Ok(n as u32),
        _ => bail!("invalid snaplen {text} (must be >= 0 and <= {max})"),
    }
}
