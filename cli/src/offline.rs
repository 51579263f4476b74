//! `xcap -r FILE [-w OUT]`: filter a capture file with the translated
//! program, writing what `tcpdump -r FILE -w OUT` writes.

use std::ffi::c_void;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::{libpcap, translate, Hook, Options};
use pcap::{Capture, Offline, Savefile};
use xcap_runner::{Engine, Filter, RunFilter, VmFilter};

use crate::args::{EngineArg, RunArgs};
use crate::print;

/// libpcap's own message for a `pcap` crate error.
fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(msg) => msg.clone(),
        other => other.to_string(),
    }
}

/// An open capture file.
pub struct Input {
    pub path: String,
    pub capture: Capture<Offline>,
}

impl Input {
    /// Opens `path` as tcpdump does (micro-second timestamps) and says so
    /// on stderr in tcpdump's words.
    pub fn open(path: &str) -> Result<Self> {
        let capture = Capture::from_file(path).map_err(|e| anyhow!("{}", pcap_message(&e)))?;
        let linktype = capture.get_datalink().0;
        // SAFETY: a valid, open pcap_t owned by `capture`.
        let snaplen = unsafe { libpcap::snapshot(capture.as_ptr() as *mut c_void) };
        let lt = pcap::Linktype(linktype);
        let lt_text = match (lt.get_name(), lt.get_description()) {
            (Ok(name), Ok(desc)) => format!("{name} ({desc})"),
            _ => linktype.to_string(),
        };
        eprintln!("reading from file {path}, link-type {lt_text}, snapshot length {snaplen}");
        Ok(Input {
            path: path.to_string(),
            capture,
        })
    }

    /// Compiles `expr` on this very handle, as tcpdump does (optimised,
    /// netmask 0). A savefile handle is not a dead handle: libpcap refuses
    /// `inbound`, `outbound` and `ifindex` on it ("not supported ... when
    /// reading savefiles") where a dead handle emits ancillary loads.
    pub fn compile(&self, expr: &str) -> Result<Vec<Insn>> {
        // tcpdump passes a C string: it ends at the first NUL.
        let expr = expr.split('\0').next().unwrap_or_default();
        let handle = self.capture.as_ptr() as *mut c_void;
        // SAFETY: `handle` is open for the lifetime of `self`.
        unsafe { libpcap::compile_on(handle, expr, true, 0) }.map_err(|e| anyhow!("{e}"))
    }
}

/// What runs the filter on each packet.
enum Runner {
    Ebpf {
        filter: Filter,
        insns: Vec<cbpf2ebpf::ebpf::Insn>,
        mode: cbpf2ebpf::Mode,
        /// The VM for packets over the kernel engine's size limit, made on
        /// first use.
        fallback: Option<VmFilter>,
        fallback_count: u64,
    },
    Libpcap(Vec<Insn>),
}

impl Runner {
    fn new(args: &RunArgs, prog: &[Insn]) -> Result<Self> {
        if args.engine == Some(EngineArg::Libpcap) {
            // libpcap's interpreter trusts its input: refuse what would
            // crash it (only possible with --raw-cbpf).
            libpcap::try_filter(prog, &[], 0)
                .map_err(|e| anyhow!("libpcap's interpreter can't run this program: {e}"))?;
            return Ok(Runner::Libpcap(prog.to_vec()));
        }
        let mode = args.mode.into();
        let opts = Options {
            mode,
            hook: Hook::Offline,
            max_loop_iterations: args.max_loop_iterations,
            // The kernel engine loads it (the vm runs either layout).
            gotol: xcap_runner::kernel_has_gotol(),
            ..Options::default()
        };
        let insns = translate(prog, &opts)
            .context("can't translate the filter")?
            .insns;
        let filter = match args.engine {
            Some(EngineArg::Kernel) => {
                Filter::load(Engine::Kernel, &insns, mode).context("kernel engine")?
            }
            Some(EngineArg::Vm) => Filter::load(Engine::Vm, &insns, mode).context("vm engine")?,
            Some(EngineArg::Libpcap) => unreachable!("handled above"),
            // Kernel when privileged, else the VM.
            None => match Filter::load(Engine::Kernel, &insns, mode) {
                Ok(f) => f,
                Err(xcap_runner::Error::PermissionDenied) => {
                    eprintln!(
                        "xcap: no privileges for the kernel engine (run as root or with CAP_BPF, \
                         CAP_PERFMON and CAP_NET_ADMIN); using the vm engine"
                    );
                    Filter::load(Engine::Vm, &insns, mode).context("vm engine")?
                }
                Err(e) => return Err(anyhow!(e).context("kernel engine")),
            },
        };
        Ok(Runner::Ebpf {
            filter,
            insns,
            mode,
            fallback: None,
            fallback_count: 0,
        })
    }

    fn run(&mut self, data: &[u8], wirelen: u32) -> Result<u32> {
        match self {
            Runner::Libpcap(prog) => Ok(libpcap::try_filter(prog, data, wirelen)?),
            Runner::Ebpf {
                filter,
                insns,
                mode,
                fallback,
                fallback_count,
            } => {
                if data.len() <= filter.max_packet_len() {
                    return Ok(filter.run(data, wirelen)?);
                }
                let vm = match fallback {
                    Some(vm) => vm,
                    None => fallback.insert(VmFilter::new(insns, *mode).context("vm engine")?),
                };
                *fallback_count += 1;
                Ok(vm.run(data, wirelen)?)
            }
        }
    }

    /// Says once, on stderr, how many packets the VM ran instead of the
    /// kernel.
    fn report(&self) {
        if let Runner::Ebpf {
            filter,
            fallback_count,
            ..
        } = self
        {
            if *fallback_count > 0 {
                eprintln!(
                    "xcap: {fallback_count} packet(s) larger than {} bytes were filtered by the vm \
                     engine (the kernel engine's limit)",
                    filter.max_packet_len()
                );
            }
        }
    }
}

/// Filters `input` with `prog`: writes the matches to `-w`, or prints one
/// line per match.
pub fn filter_file(args: &RunArgs, mut input: Input, prog: &[Insn]) -> Result<ExitCode> {
    let mut runner = Runner::new(args, prog)?;
    // Opened before the first packet, as tcpdump does: an empty match
    // still leaves a valid file.
    let mut savefile: Option<Savefile> = match &args.write {
        Some(path) => Some(
            input
                .capture
                .savefile(path)
                .map_err(|e| anyhow!("{}", pcap_message(&e)))?,
        ),
        None => None,
    };
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let link = print::Link::from_dlt(input.capture.get_datalink().0);
    let mut clock = print::Clock::default();
    let mut matched = 0u64;
    let mut read_error = None;
    loop {
        if args.count.is_some_and(|c| matched >= c) {
            break;
        }
        let packet = match input.capture.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                read_error = Some(pcap_message(&e));
                break;
            }
        };
        if runner.run(packet.data, packet.header.len)? == 0 {
            continue;
        }
        matched += 1;
        match &mut savefile {
            Some(sf) => sf.write(&packet),
            None => {
                let h = packet.header;
                // time_t and suseconds_t are i64 here, not everywhere.
                #[allow(clippy::unnecessary_cast)]
                let mut line =
                    clock.stamp(args.print.time, h.ts.tv_sec as i64, h.ts.tv_usec as i64);
                line += &print::summary(&args.print, link, packet.data, h.len, args.live.quiet);
                print::append_dump(&args.print, link, packet.data, &mut line);
                writeln!(stdout, "{line}")?;
                if args.print.line_buffered {
                    stdout.flush()?;
                }
            }
        }
    }
    stdout.flush()?;
    if let Some(mut sf) = savefile {
        sf.flush().map_err(|e| {
            anyhow!(
                "{}: write error: {}",
                args.write.as_deref().unwrap_or("-"),
                pcap_message(&e)
            )
        })?;
    }
    runner.report();
    if let Some(msg) = read_error {
        bail!("{}: {msg}", input.path);
    }
    Ok(ExitCode::SUCCESS)
}
