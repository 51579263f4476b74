//! A capture at hooks in the kernel: XDP or TC on interfaces, or tracing
//! hooks; the checks of the flags that choose them, and the buffers.

use anyhow::{bail, Result};
use capture::trace::TraceHook;
use capture::{DirectionFilter, Wakeup, XdpMode};

use crate::args::{DirectionArg, LiveArgs, RunArgs, TraceArgs, XdpModeArg};
use crate::filter::Filter;
use crate::plan::output::{output, Output};
use crate::plan::values::snaplen;

/// A capture at hooks in the kernel, from start to counters.
#[derive(Debug, PartialEq)]
pub struct Capture {
    /// Where the filter runs: an interface hook (XDP or TC), tracing
    /// hooks, or one interface hook and then tracing hooks.
    pub hooks: Vec<Hook>,
    /// `-i`, for interface hooks; none: the first interface libpcap finds.
    pub interfaces: Vec<String>,
    /// `-Q`, for interface hooks.
    pub direction: DirectionFilter,
    /// Not `-p`: interfaces in promiscuous mode while capturing.
    pub promiscuous: bool,
    /// `--stack`: record each packet's kernel stack (tracing hooks).
    pub stack: bool,
    /// The expression (compiled once the hooks are known).
    pub filter: String,
    pub snaplen: u32,
    /// `--tc-pull`: bytes made linear before the TC filter runs.
    pub tc_pull: u32,
    pub buffers: Buffers,
    /// `-v`: counters, hook details on each line, filter sizes.
    pub verbose: bool,
    /// Attribution and process filters (TC and the kernel's tracing hooks).
    pub who: Option<Box<capture::attribution::Who>>,
    /// `--who` or `-v`: each line names the packet's process.
    pub show_who: bool,
    /// `--who`, a process filter or `-- CMD`: a start that cannot
    /// attribute fails. With `-v` alone, xcap then captures without
    /// processes and says why in one line.
    pub who_required: bool,
    /// `-- CMD ARGS...`: run it and capture its packets alone, until it
    /// exits.
    pub command: Vec<String>,
    /// `--netns`: the network namespace to capture in.
    pub netns: Option<String>,
    pub output: Output,
    pub count: Option<u64>,
    /// `-U` or `-l`: each packet goes out as soon as it is written.
    pub flush_each_packet: bool,
    /// `-Z`: who the capture runs as once attached.
    pub run_as: RunAs,
    /// Nothing on stderr but errors: no "listening on" line, no counters
    /// (Wireshark shows an extcap's stderr as an error).
    pub quiet_stderr: bool,
}

/// Who a capture runs as once attached (`-Z`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// No `-Z`: the user who ran sudo, a user `xcap`, or `nobody`.
    Default,
    /// `-Z root`: stay root.
    Root,
    User(String),
}

/// Where a capture's filter runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// XDP on each interface: received packets only.
    Xdp(XdpMode),
    /// TC (TCX or clsact) on each interface, ingress and egress.
    Tc,
    /// A tracing hook: a tracepoint, a kernel function's entry or exit
    /// on its `struct sk_buff *` argument, or an XDP program already
    /// loaded (`--xdp-hook PROG`, its entry and exit by `-Q`).
    Trace(TraceHook),
}

impl Hook {
    /// XDP and TC run on interfaces; the others see every interface.
    pub fn on_interfaces(&self) -> bool {
        matches!(self, Hook::Xdp(_) | Hook::Tc)
    }
}

impl Capture {
    /// Whether the capture is at interface hooks (XDP, TC).
    pub fn on_interfaces(&self) -> bool {
        self.hooks.iter().any(Hook::on_interfaces)
    }

    /// Whether the capture is at tracing hooks (alone, or with
    /// interface hooks: a packet followed across them).
    pub fn at_tracing_hooks(&self) -> bool {
        self.hooks.iter().any(|h| !h.on_interfaces())
    }
}

/// The per-CPU buffers between the programs and the readers, and when
/// the readers wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffers {
    /// Pages per CPU buffer (a power of two, checked by `capture`).
    pub pages: usize,
    pub wakeup: Wakeup,
    /// How long a reader waits for more packets after its last ones.
    pub poll_ms: i32,
}

/// Any tracing flag asks for a tracing capture.
pub(super) fn tracing_asked(t: &TraceArgs) -> bool {
    !t.trace.is_empty()
        || t.fentry.is_some()
        || t.fexit.is_some()
        || t.xdp_hook.is_some()
        || t.stack
}

/// `--trace`, `--fentry`, `--fexit`, `--xdp-hook`, `--stack`; with `--tc`
/// or `--xdp` too, interface and tracing hooks in one run ([`followed`]).
pub(super) fn tracing(args: &RunArgs, filter: Filter) -> Result<Capture> {
    let t = &args.trace;
    let live = &args.live;
    if live.xdp || live.tc {
        return followed(args, filter);
    }
    if !live.interfaces.is_empty() {
        bail!("-i: interfaces do not apply to tracing hooks alone, which see every interface; add --tc or --xdp to capture at IFACE too (--xdp-hook takes the interface: --xdp-hook IFACE)");
    }
    let expression = tracing_expression(filter)?;
    if live.netns.is_some() {
        bail!("--netns does not apply to tracing hooks, which see every namespace");
    }
    let mut hooks = tracing_hooks(t)?;
    if let Some(program) = &t.xdp_hook {
        if !hooks.is_empty() || t.stack {
            bail!("--xdp-hook does not combine with --trace, --fentry, --fexit or --stack");
        }
        super::who::refuse_at(args, "--xdp-hook (XDP)")?;
        hooks.push(xdp_program(program, live.direction)?);
    }
    let snaplen = snaplen(args.snaplen.as_deref())?;
    let mut capture = capture(args, hooks, expression, snaplen)?;
    if t.xdp_hook.is_none() {
        capture.who = super::who::for_tracing(args)?.map(Box::new);
        capture.show_who = capture.who.is_some() && (args.who.who || capture.verbose);
        capture.who_required = super::who::asked(&args.who);
    }
    Ok(capture)
}

/// Tracing hooks take an expression, compiled for each link type they
/// capture.
fn tracing_expression(filter: Filter) -> Result<String> {
    match filter {
        Filter::Expression(expression) => Ok(expression),
        Filter::Raw(_) => bail!("--raw-cbpf does not apply to tracing hooks: give an expression (it is compiled for EN10MB and RAW)"),
    }
}

/// `--tc` or `--xdp` on interfaces and tracing hooks in one run, so that
/// one packet can be followed from hook to hook by its id: the interface
/// hook first, then the tracing hooks, as each alone would have them, in
/// one pcapng file.
fn followed(args: &RunArgs, filter: Filter) -> Result<Capture> {
    if args.trace.xdp_hook.is_some() {
        bail!("--xdp-hook does not combine with --tc or --xdp: hook the XDP program, or capture at the interface");
    }
    let expression = tracing_expression(filter)?;
    if !args.command.is_empty() {
        bail!("-- CMD works with --tc alone: use --pid with the command's pid to follow its packets across hooks");
    }
    // Checked as at the tracing hooks; `live` gives both captures the
    // attribution asked for (none at XDP).
    super::who::for_tracing(args)?;
    let mut capture = live(args, Filter::Expression(expression))?;
    capture.hooks.extend(tracing_hooks(&args.trace)?);
    if let Output::File {
        path,
        pcapng: false,
        ..
    } = &capture.output
    {
        bail!("-w {path}: interface and tracing hooks in one run write pcapng (an interface block per hook): use --pcapng or a .pcapng name");
    }
    Ok(capture)
}

/// The tracepoints (empty names left out), then the `--fentry` and
/// `--fexit` functions.
fn tracing_hooks(t: &TraceArgs) -> Result<Vec<Hook>> {
    let mut hooks: Vec<Hook> = t
        .trace
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| Hook::Trace(TraceHook::Tracepoint(s.clone())))
        .collect();
    if let Some(f) = &t.fentry {
        hooks.push(fentry(f)?);
    }
    if let Some(f) = &t.fexit {
        let (function, arg) = function_and_arg("--fexit", f)?;
        hooks.push(Hook::Trace(TraceHook::Fexit { function, arg }));
    }
    Ok(hooks)
}

/// `--fentry FUNC` or `FUNC:N`.
fn fentry(text: &str) -> Result<Hook> {
    let (function, arg) = function_and_arg("--fentry", text)?;
    Ok(Hook::Trace(TraceHook::Fentry { function, arg }))
}

/// `FUNC` or `FUNC:N` after `flag` (`--fentry`, `--fexit`).
fn function_and_arg(flag: &str, text: &str) -> Result<(String, Option<usize>)> {
    let (function, arg) = match text.split_once(':') {
        Some((function, n)) => match n.parse::<usize>() {
            Ok(n) => (function, Some(n)),
            Err(_) => bail!("{flag} {text}: the argument position must be a number (FUNC:N)"),
        },
        None => (text, None),
    };
    if function.is_empty() {
        bail!("{flag} needs a function name");
    }
    Ok((function.to_owned(), arg))
}

/// `--xdp-hook PROG`: entry and exit by `-Q` (both by default).
fn xdp_program(program: &str, direction: Option<DirectionArg>) -> Result<Hook> {
    if program.is_empty() {
        bail!("--xdp-hook needs a program: an id, a name, a pinned path or an interface");
    }
    let (entry, exit) = match direction {
        Some(DirectionArg::In) => (true, false),
        Some(DirectionArg::Out) => (false, true),
        Some(DirectionArg::Inout) | None => (true, true),
    };
    Ok(Hook::Trace(TraceHook::XdpProgram {
        program: program.to_owned(),
        entry,
        exit,
    }))
}

/// XDP or TC on interfaces.
pub(super) fn live(args: &RunArgs, filter: Filter) -> Result<Capture> {
    let Filter::Expression(expression) = filter else {
        bail!("--raw-cbpf does not apply to live capture: give an expression");
    };
    let snaplen = snaplen(args.snaplen.as_deref())?;
    let live = &args.live;
    // The capture library refuses it too, but only once it has checked
    // privileges and interfaces: a flag error comes first.
    if live.xdp && direction(live) != DirectionFilter::In {
        bail!("XDP sees received packets only: use -Q in with --xdp, or --tc for -Q out/inout");
    }
    let hook = match live.xdp {
        true => Hook::Xdp(xdp_mode(live.xdp_mode)),
        false => Hook::Tc,
    };
    let mut capture = capture(args, vec![hook], expression, snaplen)?;
    if live.xdp {
        super::who::refuse_at(args, "XDP")?;
    } else {
        capture.who = super::who::for_tc(args)?.map(Box::new);
        capture.show_who = capture.who.is_some() && (args.who.who || capture.verbose);
        capture.who_required = super::who::asked(&args.who) || !args.command.is_empty();
    }
    Ok(capture)
}

/// What live and tracing captures share.
fn capture(args: &RunArgs, hooks: Vec<Hook>, filter: String, snaplen: u32) -> Result<Capture> {
    let live = &args.live;
    let flush_each_packet = live.packet_buffered || args.print.line_buffered;
    Ok(Capture {
        hooks,
        interfaces: live.interfaces.clone(),
        direction: direction(live),
        promiscuous: !live.no_promiscuous,
        stack: args.trace.stack,
        filter,
        snaplen,
        tc_pull: live.tc_pull,
        buffers: buffers(live, args.write.is_some(), flush_each_packet),
        verbose: live.verbose > 0,
        who: None,
        show_who: false,
        who_required: false,
        command: args.command.clone(),
        netns: live.netns.clone(),
        output: output(args)?,
        count: args.count,
        flush_each_packet,
        run_as: run_as(live.user.as_deref())?,
        quiet_stderr: false,
    })
}

/// `-Z USER`.
fn run_as(user: Option<&str>) -> Result<RunAs> {
    Ok(match user {
        None => RunAs::Default,
        Some("") => bail!("-Z needs a user name"),
        Some("root") => RunAs::Root,
        Some(name) => RunAs::User(name.to_owned()),
    })
}

/// `-Q`; by default what the hook sees: received packets at XDP, both
/// directions at TC.
fn direction(live: &LiveArgs) -> DirectionFilter {
    match live.direction {
        Some(DirectionArg::In) => DirectionFilter::In,
        Some(DirectionArg::Out) => DirectionFilter::Out,
        Some(DirectionArg::Inout) => DirectionFilter::InOut,
        None if live.xdp => DirectionFilter::In,
        None => DirectionFilter::InOut,
    }
}

fn xdp_mode(arg: Option<XdpModeArg>) -> XdpMode {
    match arg {
        None => XdpMode::Auto,
        Some(XdpModeArg::Native) => XdpMode::Native,
        Some(XdpModeArg::Generic) => XdpMode::Generic,
    }
}

/// The buffers: `-B` KiB rounded up to a power of two pages, or
/// `--buffer-pages`.
///
/// When the kernel wakes a reader: each wakeup is an irq_work in the
/// program that writes the record (a self-IPI: about 7 us on the build
/// machine, a VM, against about 0.3 us for the record itself), so by
/// default the readers are woken each time a quarter of their buffer has
/// been written, otherwise look again after `poll_ms`, and once idle are
/// woken by the first packet; `-U` asks for every packet at once.
///
/// How long a reader waits for more packets after its last ones, before
/// handing them over: 1 s when they go to a file (`-w` without `-U`), as
/// tcpdump's buffer timeout; 50 ms when they are printed. (A ring buffer's
/// reader that found nothing sleeps until the next packet, which it reads
/// at once; perf buffers, for tracing, have no such wakeup and are polled.)
fn buffers(live: &LiveArgs, writes_file: bool, flush_each_packet: bool) -> Buffers {
    let page = capture::perf::page_size();
    let pages = match live.buffer_kib {
        Some(kib) => (kib as usize * 1024).div_ceil(page).next_power_of_two(),
        None => live.buffer_pages,
    };
    let wakeup = match (live.wakeup, live.packet_buffered || live.immediate_mode) {
        (Some(n), _) => Wakeup::Events(n.max(1)),
        (None, true) => Wakeup::Events(1),
        (None, false) => {
            let ring = pages.saturating_mul(page);
            Wakeup::Bytes((ring / 4).clamp(1, u32::MAX as usize) as u32)
        }
    };
    let poll_ms = if writes_file && !flush_each_packet {
        1000
    } else {
        50
    };
    Buffers {
        pages,
        wakeup,
        poll_ms,
    }
}
