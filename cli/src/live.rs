//! Live capture: `xcap [-i IFACE]... [--xdp | --tc] [-Q in|out|inout]
//! [-w FILE|-] [-c COUNT] [-s SNAPLEN] [-n] [-q] [-v] [-U] [-F FILE]
//! [--pcapng] [--xdp-mode native|generic] EXPRESSION...`
//!
//! The filter runs in the kernel (see the `capture` crate); only matching
//! packets reach user space. Without `-w`, one line per packet on stdout;
//! with `-w`, a pcap (default) or pcapng file (`--pcapng`, or a name ending
//! in `.pcapng`), `-` for stdout. At the end (count reached, SIGINT,
//! SIGTERM, interface gone) tcpdump's three counters go to stderr.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use capture::savefile::{Format, InterfaceDesc, Writer};
use capture::{
    Capture, Config, DirectionFilter, HookKind, HookPoint, Packet, TcAttach, TcAttachChoice,
    XdpMode,
};
use clap::{ArgAction, Args, ValueEnum};

use crate::args::RunArgs;
use crate::consumer::{consume, print_counters, report_write_error, Consumed, Handlers, Output};
use crate::expr::Source;
use crate::print;

/// Live-capture flags (tcpdump's, plus the hook choice).
#[derive(Debug, Args, Default)]
pub struct LiveArgs {
    /// Capture on IFACE (repeat for several); default: the first interface
    /// libpcap finds
    #[arg(short = 'i', value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// Filter at XDP (received packets only; the earliest hook)
    #[arg(long, conflicts_with = "tc")]
    pub xdp: bool,

    /// Filter at TC (clsact/TCX ingress and egress; the default)
    #[arg(long)]
    pub tc: bool,

    /// Direction: in, out or inout (default: inout with --tc, in with --xdp)
    #[arg(short = 'Q', value_enum, value_name = "DIRECTION")]
    pub direction: Option<DirectionArg>,

    /// XDP attach mode; by default native, or generic if the driver has no
    /// native XDP
    #[arg(long, value_enum, value_name = "MODE", requires = "xdp")]
    pub xdp_mode: Option<XdpModeArg>,

    /// Write pcapng instead of pcap (also chosen by a .pcapng file name)
    #[arg(long)]
    pub pcapng: bool,

    /// Don't convert addresses to names (xcap never resolves names)
    #[arg(short = 'n', action = ArgAction::Count)]
    pub numeric: u8,

    /// Quiet output: less protocol detail
    #[arg(short = 'q')]
    pub quiet: bool,

    /// Verbose: the hook, CPU and queue of each packet, filter sizes, and
    /// the loss counters at the end
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,

    /// Packet-buffered output: flush after each packet (with -w), and have
    /// the kernel wake the readers as soon as a packet arrives
    #[arg(short = 'U')]
    pub packet_buffered: bool,

    /// Have the kernel wake the readers as soon as a packet arrives (as
    /// tcpdump's --immediate-mode; -U also flushes the output)
    #[arg(long)]
    pub immediate_mode: bool,

    /// Don't put the interfaces into promiscuous mode (tcpdump's -p)
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promiscuous: bool,

    /// Buffer size per CPU, in pages (a power of two): a BPF ring buffer
    /// at XDP and TC, a perf buffer for --trace
    #[arg(
        long,
        visible_alias = "perf-pages",
        value_name = "PAGES",
        default_value_t = 512
    )]
    pub buffer_pages: usize,

    /// Buffer size per CPU in KiB, as tcpdump's -B (rounded up to a power
    /// of two pages); overrides --buffer-pages
    #[arg(short = 'B', long = "buffer-size", value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub buffer_kib: Option<u32>,

    /// Wake the readers after this many packets (default: 1 with -U;
    /// otherwise each time a quarter of a CPU's buffer has been written,
    /// 50 ms after their last packets (1 s with -w), and on the first
    /// packet after they found none)
    #[arg(long, value_name = "N")]
    pub wakeup: Option<u32>,

    /// TC: make this many bytes linear (bpf_skb_pull_data) before the
    /// filter runs, for filters that read past the linear part of an skb
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub tc_pull: u32,
}

/// When the kernel wakes a reader. Each wakeup is an irq_work in the
/// program that writes the record (a self-IPI: about 7 us on the build
/// machine, a VM, against about 0.3 us for the record itself), so by
/// default the readers are woken each time a quarter of their buffer has
/// been written, otherwise look again after [`poll_ms`], and once idle are
/// woken by the first packet; `-U` asks for every packet at once.
pub fn wakeup(live: &LiveArgs) -> capture::Wakeup {
    match (live.wakeup, live.packet_buffered || live.immediate_mode) {
        (Some(n), _) => capture::Wakeup::Events(n.max(1)),
        (None, true) => capture::Wakeup::Events(1),
        (None, false) => {
            let ring = buffer_pages(live).saturating_mul(capture::perf::page_size());
            capture::Wakeup::Bytes((ring / 4).clamp(1, u32::MAX as usize) as u32)
        }
    }
}

/// How long a reader waits for more packets after its last ones, before
/// handing them over: 1 s when they go to a file (`-w` without `-U`), as
/// tcpdump's buffer timeout; 50 ms when they are printed. (A ring buffer's
/// reader that found nothing sleeps until the next packet, which it reads
/// at once; perf buffers, for tracing, have no such wakeup and are polled.)
pub fn poll_ms(args: &RunArgs) -> i32 {
    if args.write.is_some() && !args.flush_each_packet() {
        1000
    } else {
        50
    }
}

/// Pages per CPU buffer: `-B` KiB rounded up to a power of two pages, or
/// `--buffer-pages`.
pub fn buffer_pages(live: &LiveArgs) -> usize {
    match live.buffer_kib {
        Some(kib) => (kib as usize * 1024)
            .div_ceil(capture::perf::page_size())
            .next_power_of_two(),
        None => live.buffer_pages,
    }
}

/// The environment variable that chooses how TC programs are attached.
const TC_ATTACH_VAR: &str = "XCAP_TC_ATTACH";

/// `XCAP_TC_ATTACH=tcx|clsact` (unset or empty: TCX where the kernel has
/// it, clsact filters elsewhere). A testing aid above all: `clsact` runs
/// the fallback of kernels before 6.6 on a newer one.
fn tc_attach_choice() -> Result<TcAttachChoice> {
    match std::env::var(TC_ATTACH_VAR).as_deref() {
        Err(_) | Ok("") => Ok(TcAttachChoice::Auto),
        Ok("tcx") => Ok(TcAttachChoice::Tcx),
        Ok("clsact") => Ok(TcAttachChoice::Clsact),
        Ok(other) => bail!("{TC_ATTACH_VAR}={other}: tcx or clsact"),
    }
}

/// How the program at `hook` was attached, for `-v` ("tcx link", or a
/// clsact filter and why).
fn attach_method(cap: &Capture, hook: &str) -> Option<String> {
    let tc = cap.tc_attach?;
    let how = tc.describe(hook);
    Some(match tc {
        TcAttach::Tcx => how,
        TcAttach::Clsact { forced: true } => format!("{how}, by {TC_ATTACH_VAR}=clsact"),
        TcAttach::Clsact { forced: false } => format!("{how}, no TCX before Linux 6.6"),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    In,
    Out,
    Inout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    Native,
    Generic,
}

pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// Wakes the consumer when a signal sets [`STOP`] (it waits for packets
/// without a short timeout); set once the capture runs.
static WAKER: Mutex<Option<capture::Waker>> = Mutex::new(None);

pub(crate) fn set_waker(waker: capture::Waker) {
    *WAKER.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker);
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts),
/// and turns them into [`STOP`] from a thread of their own. The signals get
/// a handler first: a shell starts background jobs with SIGINT ignored, and
/// an ignored signal is discarded even while blocked.
pub(crate) fn handle_signals() {
    // SAFETY: plain signal-disposition and signal-mask calls.
    unsafe {
        libc::signal(
            libc::SIGINT,
            ignore_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            ignore_signal as *const () as libc::sighandler_t,
        );
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let set_copy = set;
        std::thread::spawn(move || loop {
            let mut sig: libc::c_int = 0;
            if libc::sigwait(&set_copy, &mut sig) == 0 {
                STOP.store(true, Ordering::SeqCst);
                if let Some(w) = WAKER.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    w.wake();
                }
            }
        });
    }
}

type FileWriter = Writer<BufWriter<Box<dyn Write>>>;

/// tcpdump's word for a packet's direction on its `-i any` lines (from
/// the packet type): `In`, `B` (broadcast), `M` (multicast), `P` (to
/// another host), `Out`, padded to four columns.
fn direction_word(p: &Packet) -> &'static str {
    match (p.direction, p.pkt_type) {
        (capture::Direction::Out, _) => "Out ",
        (_, 1) => "B   ",
        (_, 2) => "M   ",
        (_, 3) => "P   ",
        _ => "In  ",
    }
}

pub fn run(args: &RunArgs, source: Source) -> Result<ExitCode> {
    let live = &args.live;
    let Source::Expression(expression) = source else {
        bail!("--raw-cbpf does not apply to live capture: give an expression");
    };
    let hook = if live.xdp {
        HookKind::Xdp
    } else {
        HookKind::Tc
    };
    let direction = match live.direction {
        Some(DirectionArg::In) => DirectionFilter::In,
        Some(DirectionArg::Out) => DirectionFilter::Out,
        Some(DirectionArg::Inout) => DirectionFilter::InOut,
        None if live.xdp => DirectionFilter::In,
        None => DirectionFilter::InOut,
    };
    let snaplen = args.snaplen()?;
    let mut interfaces = live.interfaces.clone();
    if interfaces.is_empty() {
        match pcap::Device::lookup() {
            Ok(Some(d)) => interfaces.push(d.name),
            _ => bail!("no suitable device found"),
        }
    }
    let cfg = Config {
        interfaces,
        hook,
        direction,
        snaplen,
        expression: expression.clone(),
        xdp_mode: match live.xdp_mode {
            None => XdpMode::Auto,
            Some(XdpModeArg::Native) => XdpMode::Native,
            Some(XdpModeArg::Generic) => XdpMode::Generic,
        },
        ring_pages: buffer_pages(live),
        wakeup: wakeup(live),
        poll_ms: poll_ms(args),
        promiscuous: !live.no_promiscuous,
        // Only -v prints it, and counting costs on every packet.
        count_seen: live.verbose > 0,
        tc_attach: tc_attach_choice()?,
        ..Config::default()
    };

    handle_signals();
    let cap = Capture::start(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    set_waker(cap.waker());

    // The output, once the capture is attached (on error `cap` is dropped,
    // which detaches everything).
    let mut out: Output<FileWriter> = match &args.write {
        None => Output::Text(BufWriter::new(io::stdout())),
        Some(path) => {
            let sink: Box<dyn Write> = if path == "-" {
                Box::new(io::stdout())
            } else {
                match File::create(path) {
                    Ok(f) => Box::new(f),
                    Err(e) => bail!("{path}: {}", crate::out::io_message(&e)),
                }
            };
            let format = if live.pcapng || path.ends_with(".pcapng") {
                Format::Pcapng
            } else {
                Format::Pcap
            };
            let descs = cap
                .interfaces()
                .iter()
                .flat_map(|i| {
                    let mut d = Vec::new();
                    let xdp: Vec<&String> =
                        i.attached.iter().filter(|a| a.starts_with("xdp")).collect();
                    if let Some(x) = xdp.first() {
                        d.push(InterfaceDesc {
                            name: i.name.clone(),
                            ifindex: i.ifindex,
                            hook: HookPoint::Xdp,
                            description: format!("xcap {x}"),
                        });
                    }
                    if i.attached.iter().any(|a| a.starts_with("tc")) {
                        let what: Vec<&str> = i
                            .attached
                            .iter()
                            .filter(|a| a.starts_with("tc"))
                            .map(|s| s.as_str())
                            .collect();
                        d.push(InterfaceDesc {
                            name: i.name.clone(),
                            ifindex: i.ifindex,
                            hook: HookPoint::Tc,
                            description: format!("xcap {}", what.join(", ")),
                        });
                    }
                    d
                })
                .collect();
            let w = Writer::new(BufWriter::new(sink), format, snaplen, &expression, descs);
            match w {
                Ok(mut w) => {
                    // Readers of `-w -` (tcpdump -r -) start on the header.
                    if let Err(e) = w.flush() {
                        bail!("{path}: {}", crate::out::io_message(&e));
                    }
                    Output::File(w)
                }
                Err(e) => bail!("{path}: {}", crate::out::io_message(&e)),
            }
        }
    };

    // They changed the system: say so, verbose or not.
    if !cap.stale_tc_filters_removed().is_empty() {
        eprintln!(
            "xcap: removed tc filters left by an xcap that was killed: {}",
            cap.stale_tc_filters_removed().join(", ")
        );
    }
    if !cap.skipped_interfaces().is_empty() {
        let names: Vec<String> = cap
            .skipped_interfaces()
            .iter()
            .map(|(n, t)| format!("{n} (ARPHRD {t})"))
            .collect();
        eprintln!(
            "xcap: -i any: not capturing on {}: xcap captures interfaces with an Ethernet header only",
            names.join(", ")
        );
    }
    for i in cap.interfaces() {
        eprintln!(
            "xcap: listening on {} ({}), link-type EN10MB (Ethernet), snapshot length {} bytes",
            i.name,
            i.attached.join(", "),
            snaplen
        );
    }
    if live.verbose > 0 {
        let sizes: Vec<String> = cap
            .ebpf_insns
            .iter()
            .zip(&cap.linkage)
            .map(|((h, n), (_, l))| match attach_method(&cap, h) {
                Some(how) => format!("{n} eBPF instructions at {h} ({l}; {how})"),
                None => format!("{n} eBPF instructions at {h} ({l})"),
            })
            .collect();
        eprintln!(
            "xcap: filter {:?}: {} cBPF instructions{} -> {}",
            expression,
            cap.cbpf_insns,
            if cap.compiled_live {
                ""
            } else {
                " (compiled without a live handle)"
            },
            sizes.join(", ")
        );
    }

    let names: Vec<String> = cap.interfaces().iter().map(|i| i.name.clone()).collect();
    let mut vanished: Option<String> = None;
    let mut last_check = Instant::now();
    let clock = std::cell::RefCell::new(print::Clock::default());
    let handlers = Handlers {
        tick: |cap: &mut Capture| {
            if last_check.elapsed() >= Duration::from_millis(200) {
                last_check = Instant::now();
                if vanished.is_none() && !cap.captures_any() {
                    if let Some(name) = cap.vanished_interface() {
                        vanished = Some(name.to_owned());
                        cap.detach();
                    }
                }
            }
        },
        text_line: |cap: &Capture, p: &Packet| {
            let secs = (p.ts_ns / 1_000_000_000) as i64;
            let usecs = ((p.ts_ns % 1_000_000_000) / 1000) as i64;
            let link = print::Link::Ethernet;
            let mut line = clock.borrow_mut().stamp(args.print.time, secs, usecs);
            // As tcpdump: the interface and direction when there are
            // several interfaces (its `-i any` lines), nothing on one.
            if cap.interfaces().len() > 1 || cap.captures_any() {
                line.push_str(&format!(
                    "{:<5} {}",
                    names.get(p.iface).map(String::as_str).unwrap_or("?"),
                    direction_word(p)
                ));
            }
            line.push_str(&print::summary(
                &args.print,
                link,
                &p.data,
                p.wirelen,
                live.quiet,
            ));
            if live.verbose > 0 {
                let hook = match p.hook {
                    HookPoint::Xdp => "xdp",
                    HookPoint::Tc => "tc",
                };
                line.push_str(&format!(
                    " [{hook} cpu {} queue {} caplen {}]",
                    p.cpu,
                    p.queue,
                    p.data.len()
                ));
            }
            print::append_dump(&args.print, link, &p.data, &mut line);
            line.push('\n');
            line
        },
        write_record: |w: &mut FileWriter, _: &Capture, p: &Packet| w.write(p),
        newline_on_signal: true,
    };
    let Consumed {
        captured,
        write_error,
        stats,
    } = consume(cap, &mut out, args, handlers);

    if let Some(name) = &vanished {
        eprintln!("xcap: {name}: the interface disappeared");
    }
    print_counters(captured, &stats, live.verbose > 0, "packets");
    if report_write_error(write_error, args.write.as_deref()) {
        return Ok(ExitCode::from(1));
    }
    if vanished.is_some() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
