//! Live capture at XDP or TC on interfaces (`capture::Capture`): the
//! filter runs in the kernel and only matching packets reach user space.
//! Lines as tcpdump's (the interface and direction first when there are
//! several interfaces); files pcap, or pcapng with one interface block
//! per (interface, hook). An interface that disappears ends the capture.

use std::io;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use capture::savefile::{Cooked, Format, InterfaceDesc, Writer};
use capture::{
    Capture, Config, Direction, HookKind, HookPoint, Packet, TcAttach, TcAttachChoice, Waker,
};

use crate::link::Link;
use crate::plan::{self, Hook};
use crate::print::Line;
use crate::sink::{Counters, Stream};
use crate::source::command::Held;
use crate::source::who::Describe;
use crate::source::Source;

/// How often the consumer looks for a vanished interface.
const VANISHED_CHECK: Duration = Duration::from_millis(200);

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

/// The capture library's configuration for the plan; with no `-i`, the
/// first interface libpcap finds.
pub fn config(plan: &plan::Capture) -> Result<Config> {
    let xdp = plan.hooks.iter().find_map(|h| match h {
        Hook::Xdp(mode) => Some(*mode),
        _ => None,
    });
    Ok(Config {
        interfaces: interfaces(plan)?,
        hook: if xdp.is_some() {
            HookKind::Xdp
        } else {
            HookKind::Tc
        },
        direction: plan.direction,
        snaplen: plan.snaplen,
        expression: plan.filter.clone(),
        xdp_mode: xdp.unwrap_or_default(),
        ring_pages: plan.buffers.pages,
        wakeup: plan.buffers.wakeup,
        poll_ms: plan.buffers.poll_ms,
        promiscuous: plan.promiscuous,
        tc_pull: plan.tc_pull,
        // Only -v prints it, and counting costs on every packet.
        count_seen: plan.verbose,
        tc_attach: tc_attach_choice()?,
        who: plan.who.as_deref().cloned(),
        ..Config::default()
    })
}

fn interfaces(plan: &plan::Capture) -> Result<Vec<String>> {
    if !plan.interfaces.is_empty() {
        return Ok(plan.interfaces.clone());
    }
    match pcap::Device::lookup() {
        Ok(Some(d)) => Ok(vec![d.name]),
        _ => bail!("no suitable device found"),
    }
}

/// A live capture, attached.
pub struct Live {
    cap: Capture,
    names: Vec<String>,
    filter: String,
    snaplen: u32,
    pcapng: bool,
    verbose: bool,
    /// `--who` or `-v` with attribution: lines name each packet's process.
    show_who: bool,
    /// Names processes in lines and pcapng comments.
    describe: Describe,
    /// `-- CMD`: the command, released once attached.
    command: Option<Held>,
    /// The interface that disappeared (the capture then detached).
    vanished: Option<String>,
    last_check: Instant,
    /// Errors only on stderr (Wireshark's extcap).
    quiet: bool,
    /// Tracing hooks run too ([`super::followed`]): each line names its
    /// hook and interface, and ends with the packet's id.
    followed: bool,
}

impl Live {
    /// Loads and attaches the capture programs; with `-- CMD`, starts the
    /// command held, selects its pid, and releases it once attached.
    pub fn start(config: &Config, plan: &plan::Capture) -> Result<Live> {
        let mut command = match plan.command.is_empty() {
            true => None,
            false => Some(Held::start(&plan.command)?),
        };
        let mut config = config.clone();
        if let (Some(held), Some(who)) = (&command, &mut config.who) {
            who.pids.push(held.pid());
        }
        let cap = Capture::start(&config).map_err(|e| anyhow!("{e}"))?;
        if let Some(held) = &mut command {
            held.release();
        }
        Ok(Live {
            command,
            names: cap.interfaces().iter().map(|i| i.name.clone()).collect(),
            cap,
            filter: plan.filter.clone(),
            snaplen: plan.snaplen,
            pcapng: matches!(plan.output, plan::Output::File { pcapng: true, .. }),
            verbose: plan.verbose,
            show_who: plan.show_who,
            describe: Describe::new(),
            vanished: None,
            last_check: Instant::now(),
            quiet: plan.quiet_stderr,
            followed: plan.at_tracing_hooks(),
        })
    }

    /// `-i any`: interfaces that appeared are captured (and said so),
    /// those that went are let go.
    fn follow_interfaces(&mut self) {
        let followed = self.cap.follow_interfaces();
        if followed.appeared.is_empty() && followed.gone.is_empty() && followed.failed.is_empty() {
            return;
        }
        self.names = self
            .cap
            .interfaces()
            .iter()
            .map(|i| i.name.clone())
            .collect();
        for e in &followed.failed {
            eprintln!("xcap: {e}");
        }
        if self.quiet {
            return;
        }
        for &n in &followed.appeared {
            let i = &self.cap.interfaces()[n];
            eprintln!("xcap: listening on {} ({})", i.name, i.attached.join(", "));
        }
        if self.verbose {
            for name in &followed.gone {
                eprintln!("xcap: {name} went away");
            }
        }
    }

    /// `-i any`: tcpdump's one line, with the link type of what is
    /// written (text and pcap cooked, pcapng Ethernet) and the hooks; each
    /// interface on a line of its own with `-v`, as those that appear later.
    fn announce_any(&self) {
        let mut hooks: Vec<&str> = Vec::new();
        for a in self.cap.interfaces().iter().flat_map(|i| &i.attached) {
            if !hooks.contains(&a.as_str()) {
                hooks.push(a);
            }
        }
        let link = match self.pcapng {
            true => "EN10MB (Ethernet)",
            false => "LINUX_SLL2 (Linux cooked v2)",
        };
        eprintln!(
            "xcap: listening on any ({}), link-type {link}, snapshot length {} bytes",
            hooks.join(", "),
            self.snaplen
        );
        if self.verbose {
            for i in self.cap.interfaces() {
                eprintln!("xcap: listening on {} ({})", i.name, i.attached.join(", "));
            }
        }
    }

    fn is_loopback(&self, ifindex: u32) -> bool {
        self.cap
            .interfaces()
            .iter()
            .any(|i| i.ifindex == ifindex && i.loopback)
    }

    /// tcpdump prints the interface and direction on its `-i any` lines.
    fn names_interfaces(&self) -> bool {
        self.cap.interfaces().len() > 1 || self.cap.captures_any()
    }

    /// One pcapng interface block per (interface, hook) attached.
    pub fn interface_descs(&self) -> Vec<InterfaceDesc> {
        self.cap.interfaces().iter().flat_map(descs_of).collect()
    }

    /// The interface blocks of an interface that appeared (`-i any`).
    pub fn descs_of_new(&self, ifindex: u32) -> Vec<InterfaceDesc> {
        let new = self
            .cap
            .interfaces()
            .iter()
            .filter(|i| i.ifindex == ifindex);
        new.flat_map(descs_of).collect()
    }

    /// Whether the capture detached on its own (its interface went away).
    pub fn vanished(&self) -> bool {
        self.vanished.is_some()
    }

    /// The packet's pcapng comment: who sent or receives it.
    pub fn comment(&self, p: &Packet) -> Option<String> {
        self.describe.owner(&p.owner)
    }
}

impl Source for Live {
    type Packet = Packet;
    type File = Writer<Stream>;

    const SEEN: &'static str = "packets";
    const NEWLINE_ON_SIGNAL: bool = true;

    fn waker(&self) -> Waker {
        self.cap.waker()
    }

    fn open_file(&self, stream: Stream) -> io::Result<Self::File> {
        // -i any in pcap: Linux cooked v2, which names each packet's
        // interface, as tcpdump -i any writes.
        let format = match (self.pcapng, self.cap.captures_any()) {
            (true, _) => Format::Pcapng,
            (false, true) => Format::PcapCooked,
            (false, false) => Format::Pcap,
        };
        let descs = self.interface_descs();
        Writer::new(stream, format, self.snaplen, &self.filter, descs)
    }

    fn announce(&self) {
        // They changed the system: say so, verbose or not.
        let removed = self.cap.stale_tc_filters_removed();
        if !removed.is_empty() {
            eprintln!(
                "xcap: removed tc filters left by an xcap that was killed: {}",
                removed.join(", ")
            );
        }
        let skipped = self.cap.skipped_interfaces();
        if !skipped.is_empty() {
            let names: Vec<String> = skipped
                .iter()
                .map(|(n, t)| format!("{n} (ARPHRD {t})"))
                .collect();
            eprintln!(
                "xcap: -i any: not capturing on {}: xcap captures interfaces with an Ethernet header only",
                names.join(", ")
            );
        }
        if self.cap.captures_any() {
            self.announce_any();
        }
        for i in self
            .cap
            .interfaces()
            .iter()
            .filter(|_| !self.cap.captures_any())
        {
            eprintln!(
                "xcap: listening on {} ({}), link-type EN10MB (Ethernet), snapshot length {} bytes",
                i.name,
                i.attached.join(", "),
                self.snaplen
            );
        }
        if self.verbose {
            announce_filter(&self.cap, &self.filter);
        }
    }

    /// Detaches when an interface has gone and nothing is captured any
    /// more.
    fn tick(&mut self) {
        if self.last_check.elapsed() < VANISHED_CHECK {
            return;
        }
        if let Some(held) = &mut self.command {
            if held.exited() {
                self.cap.detach();
            }
        }
        self.last_check = Instant::now();
        if self.cap.captures_any() {
            self.follow_interfaces();
        }
        if self.vanished.is_none() && !self.cap.captures_any() {
            if let Some(name) = self.cap.vanished_interface() {
                self.vanished = Some(name.to_owned());
                self.cap.detach();
            }
        }
    }

    fn recv(&self, timeout: Duration) -> Result<Vec<Packet>, RecvTimeoutError> {
        self.cap.recv_timeout(timeout).map(|b| b.packets)
    }

    fn time_ns(&self, p: &Packet) -> u64 {
        p.ts_ns
    }

    fn line<'p>(&self, p: &'p Packet) -> Line<'p> {
        let mut line = match self.cap.captures_any() {
            // As tcpdump -i any shows them: cooked (-e, -xx).
            true => {
                let cooked = Cooked::of(p, self.is_loopback(p.ifindex));
                let mut data = cooked.header.to_vec();
                data.extend_from_slice(cooked.payload);
                Line::at_ns(p.ts_ns, Link::LinuxSll2, data, cooked.wirelen)
            }
            false => Line::at_ns(p.ts_ns, Link::Ethernet, &p.data[..], p.wirelen),
        };
        let hook = match p.hook {
            HookPoint::Xdp => "xdp",
            HookPoint::Tc => "tc",
        };
        let name = self.names.get(p.iface).map(String::as_str).unwrap_or("?");
        if self.followed {
            // As the tracing hooks' lines: the hook, then where.
            line.before = format!("{hook} {name} {}", direction_word(p));
        } else if self.names_interfaces() {
            line.before = format!("{name:<5} {}", direction_word(p));
        }
        if self.verbose {
            line.after = format!(
                " [{hook} cpu {} queue {} caplen {} id {:#x}]",
                p.cpu,
                p.queue,
                p.data.len(),
                p.packet_id
            );
        } else if self.followed {
            line.after = format!(" [id {:#x}]", p.packet_id);
        }
        if self.show_who {
            if let Some(who) = self.describe.owner(&p.owner) {
                line.after.push_str(&format!(" [{who}]"));
            }
        }
        line
    }

    fn write_record(&self, file: &mut Self::File, p: &Packet) -> io::Result<()> {
        if !file.knows(p.ifindex, p.hook) {
            // An interface that appeared: its block before its packets.
            for desc in self.descs_of_new(p.ifindex) {
                file.add_interface(desc)?;
            }
        }
        let comment = match self.pcapng {
            true => self.comment(p),
            false => None,
        };
        file.write(p, comment.as_deref())
    }

    fn detach(&mut self) {
        self.cap.detach()
    }

    fn stats(&self) -> Counters {
        self.cap.stats().into()
    }

    fn command_status(&self) -> Option<u8> {
        self.command.as_ref().and_then(Held::exit_code)
    }

    fn close(self) -> Option<String> {
        let Live { cap, vanished, .. } = self;
        drop(cap);
        vanished.map(|name| format!("{name}: the interface disappeared"))
    }
}

/// `-v`: the filter's size in cBPF, and in eBPF at each hook.
fn announce_filter(cap: &Capture, filter: &str) {
    let sizes: Vec<String> = cap
        .ebpf_insns
        .iter()
        .zip(&cap.linkage)
        .map(|((h, n), (_, l))| match attach_method(cap, h) {
            Some(how) => format!("{n} eBPF instructions at {h} ({l}; {how})"),
            None => format!("{n} eBPF instructions at {h} ({l})"),
        })
        .collect();
    eprintln!(
        "xcap: filter {:?}: {} cBPF instructions{} -> {}",
        filter,
        cap.cbpf_insns,
        if cap.compiled_live {
            ""
        } else {
            " (compiled without a live handle)"
        },
        sizes.join(", ")
    );
}

/// The interface blocks of one interface: one per hook attached.
fn descs_of(i: &capture::Interface) -> Vec<InterfaceDesc> {
    let desc = |hook, description| InterfaceDesc {
        name: i.name.clone(),
        ifindex: i.ifindex,
        hook,
        description,
        loopback: i.loopback,
    };
    let mut descs = Vec::new();
    let xdp = i.attached.iter().find(|a| a.starts_with("xdp"));
    if let Some(x) = xdp {
        descs.push(desc(HookPoint::Xdp, format!("xcap {x}")));
    }
    let tc: Vec<&str> = i
        .attached
        .iter()
        .filter(|a| a.starts_with("tc"))
        .map(String::as_str)
        .collect();
    if !tc.is_empty() {
        descs.push(desc(HookPoint::Tc, format!("xcap {}", tc.join(", "))));
    }
    descs
}

/// tcpdump's word for a packet's direction on its `-i any` lines (from
/// the packet type): `In`, `B` (broadcast), `M` (multicast), `P` (to
/// another host), `Out`, padded to four columns.
fn direction_word(p: &Packet) -> &'static str {
    match (p.direction, p.pkt_type) {
        (Direction::Out, _) => "Out ",
        (_, 1) => "B   ",
        (_, 2) => "M   ",
        (_, 3) => "P   ",
        _ => "In  ",
    }
}
