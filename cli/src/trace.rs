//! Capture at tracing hooks: `xcap --trace kfree_skb [--trace ...]
//! [--fentry FUNC[:N]] [-w FILE.pcapng] [-c N] [-s SNAPLEN] [-v] EXPRESSION`.
//!
//! Tracepoints: `kfree_skb` (with the drop reason), `consume_skb`,
//! `netif_receive_skb`, `net_dev_queue`, `net_dev_xmit` (a category prefix,
//! `skb:kfree_skb`, is accepted; a comma separates several). `--fentry
//! FUNC` hooks a kernel function's entry; the `struct sk_buff *` argument
//! is found in the kernel BTF (`FUNC:N` picks argument N).
//!
//! Packets with a MAC header are captured from it (link type EN10MB),
//! others from the network header (RAW); the filter is compiled for each.
//! `-w` always writes pcapng (one file may mix both link types): one
//! interface block per (hook, link type), each packet with a comment (hook,
//! drop reason, interface, network namespace, pid and command) and its skb
//! address as `epb_packetid`.
//!
//! `--stack` records each packet's kernel stack (`bpf_get_stackid`),
//! symbolized with `/proc/kallsyms`: one `    at func+0xoff` line per frame
//! after the packet line, innermost first, and `stack=f1,f2,...` in the
//! pcapng comment.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{bail, Result};
use capture::trace::{
    Kallsyms, LinkType, TraceCapture, TraceConfig, TraceHook, TracePacket, TraceWriter,
};
use clap::Args;

use crate::args::RunArgs;
use crate::consumer::{consume, print_counters, report_write_error, Consumed, Handlers, Output};
use crate::expr::Source;
use crate::print;

#[derive(Debug, Args, Default)]
pub struct TraceArgs {
    /// Capture at a tracepoint: kfree_skb (with the drop reason),
    /// consume_skb, netif_receive_skb, net_dev_queue, net_dev_xmit (repeat,
    /// or separate with commas)
    #[arg(long = "trace", value_name = "TRACEPOINT", value_delimiter = ',')]
    pub trace: Vec<String>,

    /// Capture at the entry of kernel function FUNC, on its struct sk_buff *
    /// argument (found in the kernel BTF; FUNC:N takes argument N)
    #[arg(long = "fentry", value_name = "FUNC[:N]")]
    pub fentry: Option<String>,

    /// Hook an XDP program already loaded (id, name or pinned path) with
    /// fentry/fexit (not yet implemented)
    #[arg(long = "xdp-hook", value_name = "PROG")]
    pub xdp_hook: Option<String>,

    /// Record the kernel stack with each packet: printed after the packet
    /// line, and in the pcapng comment with -w
    #[arg(long)]
    pub stack: bool,
}

impl TraceArgs {
    pub fn active(&self) -> bool {
        !self.trace.is_empty() || self.fentry.is_some() || self.xdp_hook.is_some() || self.stack
    }
}

fn ifname(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}

type FileWriter = TraceWriter<BufWriter<Box<dyn Write>>>;

/// The hook's name and, at `kfree_skb`, the drop reason's name: the text
/// line and the pcapng comment both start with them.
fn hook_and_reason<'a>(cap: &'a TraceCapture, p: &TracePacket) -> (&'a str, Option<String>) {
    let hook = cap
        .hooks()
        .get(p.hook)
        .map(|h| h.name.as_str())
        .unwrap_or("?");
    let reason = cap
        .has_drop_reason(p.hook)
        .then(|| cap.reason_name(p.reason));
    (hook, reason)
}

struct Meta {
    own_netns: u32,
    kallsyms: Option<Kallsyms>,
}

impl Meta {
    /// `veth0` when the packet's namespace is ours, else `ifindex 2`.
    fn iface(&self, p: &TracePacket) -> String {
        if p.ifindex == 0 {
            return "-".into();
        }
        if p.netns == 0 || p.netns == self.own_netns {
            if let Some(n) = ifname(p.ifindex) {
                return n;
            }
        }
        format!("ifindex {}", p.ifindex)
    }

    fn location(&self, p: &TracePacket) -> Option<String> {
        if p.location == 0 {
            return None;
        }
        Some(match &self.kallsyms {
            Some(k) => k.resolve(p.location),
            None => format!("{:#x}", p.location),
        })
    }

    /// The packet's kernel stack, symbolized (innermost first, from the
    /// function that hit the hook); `None`
    /// without `--stack`; one `<...>` entry when the kernel could not
    /// record it.
    fn stack(&self, cap: &TraceCapture, p: &TracePacket) -> Option<Vec<String>> {
        Some(match cap.stack(p)? {
            // The first frames are xcap's program and the tracepoint's
            // bpf_trace_runN: left out, the stack starts at the hook.
            Ok(ips) => ips
                .into_iter()
                .map(|ip| match &self.kallsyms {
                    Some(k) => k.resolve(ip),
                    None => format!("{ip:#x}"),
                })
                .skip_while(|f| f.starts_with("bpf_prog_") || f.starts_with("bpf_trace_run"))
                .collect(),
            Err(e) => vec![format!("<{e}>")],
        })
    }
}

pub fn run(args: &RunArgs, source: Source) -> Result<ExitCode> {
    let t = &args.trace;
    if let Some(prog) = &t.xdp_hook {
        bail!("--xdp-hook {prog}: hooking an existing XDP program (fentry/fexit with verdicts) is not yet implemented");
    }
    if !args.live.interfaces.is_empty() || args.live.xdp || args.live.tc {
        bail!("-i, --xdp and --tc do not apply to --trace/--fentry: tracing hooks see every interface");
    }
    let Source::Expression(expression) = source else {
        bail!("--raw-cbpf does not apply to tracing hooks: give an expression (it is compiled for EN10MB and RAW)");
    };
    let mut hooks: Vec<TraceHook> = t
        .trace
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| TraceHook::Tracepoint(s.clone()))
        .collect();
    if let Some(f) = &t.fentry {
        let (function, arg) = match f.split_once(':') {
            Some((func, n)) => match n.parse::<usize>() {
                Ok(n) => (func.to_owned(), Some(n)),
                Err(_) => bail!("--fentry {f}: the argument position must be a number (FUNC:N)"),
            },
            None => (f.clone(), None),
        };
        if function.is_empty() {
            bail!("--fentry needs a function name");
        }
        hooks.push(TraceHook::Fentry { function, arg });
    }
    let snaplen = args.snaplen()?;
    let live = &args.live;
    let cfg = TraceConfig {
        hooks,
        expression: expression.clone(),
        snaplen,
        perf_pages: crate::live::buffer_pages(live),
        wakeup: crate::live::wakeup(live),
        poll_ms: crate::live::poll_ms(args),
        stack: t.stack,
        ..TraceConfig::default()
    };

    crate::live::handle_signals();
    let cap = TraceCapture::start(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::live::set_waker(cap.waker());
    let meta = Meta {
        own_netns: capture::trace::own_netns(),
        kallsyms: (t.stack
            || cap
                .hooks()
                .iter()
                .any(|h| h.name == "kfree_skb" || h.name == "consume_skb"))
        .then(Kallsyms::load),
    };

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
            match TraceWriter::new(BufWriter::new(sink), snaplen, &expression, cap.hooks()) {
                Ok(mut w) => {
                    if let Err(e) = w.flush() {
                        bail!("{path}: {}", crate::out::io_message(&e));
                    }
                    Output::File(w)
                }
                Err(e) => bail!("{path}: {}", crate::out::io_message(&e)),
            }
        }
    };
    for h in cap.hooks() {
        eprintln!(
            "xcap: tracing at {} (link-type EN10MB from the MAC header, RAW otherwise), snapshot length {snaplen} bytes",
            h.description
        );
    }
    if live.verbose > 0 {
        for (l, c, e) in &cap.filters {
            eprintln!(
                "xcap: filter {expression:?} for {}: {c} cBPF instructions -> {e} eBPF instructions (probe mode)",
                l.name()
            );
        }
    }

    let clock = std::cell::RefCell::new(print::Clock::default());
    let handlers = Handlers {
        tick: |_: &mut TraceCapture| {},
        text_line: |cap: &TraceCapture, p: &TracePacket| {
            let (hook, reason) = hook_and_reason(cap, p);
            let secs = (p.ts_ns / 1_000_000_000) as i64;
            let usecs = ((p.ts_ns % 1_000_000_000) / 1000) as i64;
            let stamp = clock.borrow_mut().stamp(args.print.time, secs, usecs);
            let mut line = format!("{stamp}{hook}");
            if let Some(r) = &reason {
                line.push_str(&format!(" reason {r}"));
            }
            line.push_str(&format!(
                " {} {} len {} {}",
                meta.iface(p),
                p.link.name(),
                p.wirelen,
                print::summary(&args.print, link(p), &p.data, p.wirelen, live.quiet)
            ));
            line.push_str(&format!(" [comm {} pid {}", p.comm, p.pid));
            if live.verbose > 0 {
                line.push_str(&format!(
                    " tid {} cpu {} netns {} skb {:#x} caplen {}",
                    p.tid,
                    p.cpu,
                    p.netns,
                    p.skb,
                    p.data.len()
                ));
                if let Some(l) = meta.location(p) {
                    line.push_str(&format!(" at {l}"));
                }
            }
            line.push(']');
            print::append_dump(&args.print, link(p), &p.data, &mut line);
            line.push('\n');
            for frame in meta.stack(cap, p).unwrap_or_default() {
                line.push_str(&format!("    at {frame}\n"));
            }
            line
        },
        write_record: |w: &mut FileWriter, cap: &TraceCapture, p: &TracePacket| {
            let (hook, reason) = hook_and_reason(cap, p);
            let mut c = format!("hook={hook}");
            if let Some(r) = &reason {
                c.push_str(&format!(" reason={r}"));
            }
            c.push_str(&format!(
                " ifindex={} ifname={} netns={} pid={} tid={} comm={} cpu={} link={}",
                p.ifindex,
                meta.iface(p).replace(' ', "_"),
                p.netns,
                p.pid,
                p.tid,
                p.comm,
                p.cpu,
                p.link.name()
            ));
            if let Some(l) = meta.location(p) {
                c.push_str(&format!(" location={l}"));
            }
            if let Some(frames) = meta.stack(cap, p) {
                c.push_str(&format!(" stack={}", frames.join(",")));
            }
            w.write(p, &c)
        },
        newline_on_signal: false,
    };
    let Consumed {
        captured,
        write_error,
        stats,
    } = consume(cap, &mut out, args, handlers);

    print_counters(captured, &stats, live.verbose > 0, "skbs");
    if report_write_error(write_error, args.write.as_deref()) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// How the printer reads a traced packet.
fn link(p: &TracePacket) -> print::Link {
    match p.link {
        LinkType::Ethernet => print::Link::Ethernet,
        LinkType::Raw => print::Link::Raw,
    }
}
