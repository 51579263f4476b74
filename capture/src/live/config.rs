//! What a live capture is asked for, and the settings no kernel would take.

use crate::{attribution, clsact, Error, Wakeup};

/// Where the programs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HookKind {
    Xdp,
    #[default]
    Tc,
}

/// tcpdump's `-Q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DirectionFilter {
    In,
    Out,
    #[default]
    InOut,
}

/// How TC programs get attached, as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TcAttachChoice {
    /// TCX links where the kernel has TCX (6.6+), clsact filters elsewhere.
    #[default]
    Auto,
    /// TCX links or an error.
    Tcx,
    /// clsact filters even where TCX exists (a testing aid: it runs the
    /// fallback of older kernels on a new one).
    Clsact,
}

/// How a capture's TC programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcAttach {
    /// TCX links: first on ingress, last on egress.
    Tcx,
    /// Direct-action cls_bpf filters on a clsact qdisc ([`clsact`]): the
    /// kernel has no TCX, or `forced` by [`TcAttachChoice::Clsact`].
    Clsact { forced: bool },
}

impl TcAttach {
    /// What attaches a program at `hook` ("tc ingress", "tc egress"):
    /// "tcx link", or "clsact cls_bpf pref 1" and "... pref 65535".
    pub fn describe(self, hook: &str) -> String {
        let side = if hook.ends_with("egress") {
            clsact::Side::Egress
        } else {
            clsact::Side::Ingress
        };
        match self {
            TcAttach::Tcx => "tcx link".into(),
            TcAttach::Clsact { .. } => format!("clsact cls_bpf pref {}", side.prio()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native, or generic when the driver has no native XDP.
    #[default]
    Auto,
    Native,
    Generic,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub interfaces: Vec<String>,
    pub hook: HookKind,
    pub direction: DirectionFilter,
    /// 1..=262144.
    pub snaplen: u32,
    pub expression: String,
    pub xdp_mode: XdpMode,
    /// Pages per CPU ring (a power of two).
    pub ring_pages: usize,
    /// When the kernel wakes a ring's reader.
    pub wakeup: Wakeup,
    /// How long a reader waits in poll() for more records after it last
    /// found some (bounds the latency of records that did not trigger a
    /// wakeup). A ring buffer's reader that found none in that time sleeps
    /// until the next record wakes it: an idle capture costs no wakeups.
    pub poll_ms: i32,
    /// Batches queued between readers and the consumer.
    pub queue_batches: usize,
    /// TC: `bpf_skb_pull_data` this many bytes into the linear part before
    /// filtering (0: never).
    pub tc_pull: u32,
    /// Count every packet the programs run on ([`Stats::seen`](crate::Stats::seen)); costs a
    /// few ns per packet.
    pub count_seen: bool,
    /// Put the interfaces in promiscuous mode while capturing (tcpdump's
    /// default; `-p` turns it off), so that a NIC hands over frames for
    /// other hosts too. Not with `any`, as libpcap.
    pub promiscuous: bool,
    /// TCX links or clsact filters.
    pub tc_attach: TcAttachChoice,
    /// Attribute each packet to its process, and keep only the processes
    /// selected (see [`attribution`]; tracing captures have
    /// [`TraceConfig::who`](crate::trace::TraceConfig::who)). `None`: no attribution.
    pub who: Option<attribution::Who>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interfaces: Vec::new(),
            hook: HookKind::Tc,
            direction: DirectionFilter::InOut,
            snaplen: 262_144,
            expression: String::new(),
            xdp_mode: XdpMode::Auto,
            ring_pages: 512,
            wakeup: Wakeup::Events(1),
            poll_ms: 50,
            queue_batches: 1024,
            tc_pull: 0,
            count_seen: true,
            promiscuous: false,
            tc_attach: TcAttachChoice::Auto,
            who: None,
        }
    }
}

/// The settings no kernel would take.
pub(super) fn check_settings(cfg: &Config) -> Result<(), Error> {
    if cfg.hook == HookKind::Xdp && cfg.direction != DirectionFilter::In {
        return Err(Error::Config(
            "XDP sees received packets only: use -Q in with --xdp, or --tc for -Q out/inout".into(),
        ));
    }
    if cfg.who.is_some() && cfg.hook == HookKind::Xdp {
        return Err(Error::Config(
            "attribution and process filters work at TC and the tracing hooks (XDP runs before there is a socket): use --tc".into(),
        ));
    }
    if !(1..=262_144).contains(&cfg.snaplen) {
        return Err(Error::Config(format!("invalid snaplen {}", cfg.snaplen)));
    }
    Ok(())
}
