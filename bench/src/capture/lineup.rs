//! What section 2 measures: the rows of the rate tables, the groups of the
//! own-cost phase, and whether xcap can be measured at all.

use anyhow::Result;

use super::config::Config;
use super::netns::{Netns, CAP_IF};
use super::setups::{Setup, FILTER, FILTER_NONE};
use super::socket_owner::{SocketOwner, OWNER_COMM};
use super::tool::Tool;
use super::traffic::ONE_PCT;

/// A row of the rate tables (2a, 2b) and of the frame accounting.
pub(super) struct Row {
    pub(super) name: &'static str,
    pub(super) setup: Setup,
    /// The row whose pass program this setup adds to (for "over bare").
    pub(super) bare: Option<&'static str>,
}

/// A setup of the own-cost phase, measured next to its group's bare program.
pub(super) struct Member {
    pub(super) name: &'static str,
    /// The name in the targets table's "the filter alone" list.
    pub(super) short: &'static str,
    pub(super) setup: Setup,
    /// Runs with 1% matching traffic only (the filter-alone setups).
    pub(super) only_at_1pct: bool,
    /// xcap's capture program (a row of the targets table).
    pub(super) xcap_program: bool,
}

impl Member {
    /// xcap's capture program as it runs: a row of the targets table.
    fn xcap_program(name: &'static str, setup: Setup) -> Member {
        Member {
            name,
            short: "",
            setup,
            only_at_1pct: false,
            xcap_program: true,
        }
    }

    /// xcap with attribution or a process filter: its program at TC, to
    /// read next to `xcap --tc`'s.
    fn attributing(name: &'static str, setup: Setup) -> Member {
        Member {
            name,
            short: "",
            setup,
            only_at_1pct: false,
            xcap_program: false,
        }
    }

    /// What the filter alone costs (xcap with a filter matching nothing,
    /// or the hand-written C filter), measured at 1% matching only.
    fn filter_alone(name: &'static str, short: &'static str, setup: Setup) -> Member {
        Member {
            name,
            short,
            setup,
            only_at_1pct: true,
            xcap_program: false,
        }
    }
}

/// A hook's bare pass program (name, setup) and what is measured next to it.
pub(super) struct OwnCostGroup {
    pub(super) bare: (&'static str, Setup),
    pub(super) members: Vec<Member>,
}

impl OwnCostGroup {
    /// The bare program, then the members that run with `every`.
    pub(super) fn measured(&self, every: usize) -> impl Iterator<Item = (&'static str, &Setup)> {
        std::iter::once((self.bare.0, &self.bare.1)).chain(
            self.members
                .iter()
                .filter(move |m| every == ONE_PCT || !m.only_at_1pct)
                .map(|m| (m.name, &m.setup)),
        )
    }
}

/// Everything section 2 runs, and why xcap's rows are empty if they are.
pub(super) struct Lineup {
    pub(super) rows: Vec<Row>,
    pub(super) groups: Vec<OwnCostGroup>,
    xcap: XcapBin,
    /// Set when xcap cannot be measured: the text its table cells carry.
    pub(super) xcap_note: Option<String>,
}

impl Lineup {
    /// `owner`: the matching packets' socket owner, for the attribution
    /// rows (none without it).
    pub(super) fn new(
        cfg: &Config,
        xcap_note: Option<String>,
        owner: Option<&SocketOwner>,
    ) -> Lineup {
        let xcap = XcapBin(
            cfg.xcap
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        let only = cfg.only.as_deref();
        let rows = rows(&xcap)
            .into_iter()
            .filter(|r| wanted(only, r.name))
            .collect();
        let groups = own_cost_groups(&xcap, xcap_note.is_none(), only, owner);
        Lineup {
            rows,
            groups,
            xcap,
            xcap_note,
        }
    }

    /// xcap with `options`, capturing the benchmark's filter.
    pub(super) fn xcap(&self, options: &[&str]) -> Setup {
        self.xcap.capturing(options, FILTER)
    }

    /// Whether a row is run: xcap's only where xcap can be.
    pub(super) fn measurable(&self, r: &Row) -> bool {
        !(matches!(r.setup, Setup::Xcap(..)) && self.xcap_note.is_some())
    }

    pub(super) fn measurable_rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| self.measurable(r))
    }
}

/// xcap's binary ("" without one; its setups then never run).
struct XcapBin(String);

impl XcapBin {
    fn capturing(&self, options: &[&str], filter: &'static str) -> Setup {
        let mut v = vec![self.0.clone()];
        v.extend(options.iter().map(|s| s.to_string()));
        Setup::Xcap(v, filter)
    }
}

fn rows(xcap: &XcapBin) -> Vec<Row> {
    let row = |name, setup, bare| Row { name, setup, bare };
    vec![
        row("no capture", Setup::None, None),
        row("bare TC pass program", Setup::BareTc, None),
        row(
            "bare generic-XDP pass program",
            Setup::BareXdp("xdpgeneric", "xdp"),
            None,
        ),
        row(
            "bare generic-XDP pass program, frags",
            Setup::BareXdp("xdpgeneric", "xdp.frags"),
            None,
        ),
        row(
            "bare native-XDP pass program",
            Setup::BareXdp("xdpdrv", "xdp"),
            None,
        ),
        row(
            "bare native-XDP pass program, frags",
            Setup::BareXdp("xdpdrv", "xdp.frags"),
            None,
        ),
        row("tcpdump", Setup::Tcpdump, None),
        row(
            "`xcap --tc`",
            xcap.capturing(&TC, FILTER),
            Some("bare TC pass program"),
        ),
        row(
            "`xcap --xdp` generic",
            xcap.capturing(&GENERIC, FILTER),
            Some("bare generic-XDP pass program, frags"),
        ),
        row(
            "`xcap --xdp` native",
            xcap.capturing(&NATIVE, FILTER),
            Some("bare native-XDP pass program, frags"),
        ),
    ]
}

/// The own-cost phase's setups: per hook, xcap's program, and at 1%
/// xcap with a filter matching nothing and the hand-written C filter.
fn own_cost_groups(
    xcap: &XcapBin,
    xcap_ok: bool,
    only: Option<&[String]>,
    owner: Option<&SocketOwner>,
) -> Vec<OwnCostGroup> {
    let mut groups = vec![
        OwnCostGroup {
            bare: (
                "bare native-XDP pass program, frags",
                Setup::BareXdp("xdpdrv", "xdp.frags"),
            ),
            members: vec![
                Member::xcap_program("`xcap --xdp` native", xcap.capturing(&NATIVE, FILTER)),
                Member::filter_alone(
                    "`xcap --xdp` native, filter matching nothing",
                    "xcap",
                    xcap.capturing(&NATIVE, FILTER_NONE),
                ),
                Member::filter_alone(
                    "hand-written C filter, native XDP (frags)",
                    "hand-written C",
                    Setup::HandXdp("xdpdrv"),
                ),
            ],
        },
        OwnCostGroup {
            bare: (
                "bare generic-XDP pass program, frags",
                Setup::BareXdp("xdpgeneric", "xdp.frags"),
            ),
            members: vec![Member::xcap_program(
                "`xcap --xdp` generic",
                xcap.capturing(&GENERIC, FILTER),
            )],
        },
        OwnCostGroup {
            bare: ("bare TC pass program", Setup::BareTc),
            members: vec![
                Member::xcap_program("`xcap --tc`", xcap.capturing(&TC, FILTER)),
                Member::filter_alone(
                    "`xcap --tc`, filter matching nothing",
                    "xcap",
                    xcap.capturing(&TC, FILTER_NONE),
                ),
                Member::filter_alone("hand-written C filter, TC", "hand-written C", Setup::HandTc),
            ],
        },
    ];
    if let Some(owner) = owner {
        let tc = groups
            .iter_mut()
            .find(|g| matches!(g.bare.1, Setup::BareTc));
        tc.expect("a TC group")
            .members
            .extend(attribution_members(xcap, owner));
    }
    groups
        .into_iter()
        .map(|mut g| {
            g.members.retain(|m| {
                (xcap_ok || !matches!(m.setup, Setup::Xcap(..))) && wanted(only, m.name)
            });
            g
        })
        .filter(|g| !g.members.is_empty())
        .collect()
}

/// Attribution and each process filter at TC, measured in the TC group
/// next to plain `xcap --tc`: every matching packet is the socket owner's,
/// so each filter selects it and it is captured (`--pid 1`: another
/// process, so nothing is copied). `--container` selects by cgroup ids as
/// `--cgroup` does.
fn attribution_members(xcap: &XcapBin, owner: &SocketOwner) -> Vec<Member> {
    let with = |options: &[&str]| {
        let mut o = vec!["--tc"];
        o.extend(options);
        xcap.capturing(&o, FILTER)
    };
    vec![
        Member::attributing("`xcap --tc --who`", with(&["--who"])),
        Member::attributing("`xcap --tc --pid`", with(&["--pid", &owner.pid])),
        Member::attributing("`xcap --tc --comm`", with(&["--comm", OWNER_COMM])),
        Member::attributing("`xcap --tc --cgroup`", with(&["--cgroup", &owner.cgroup])),
        Member::attributing(
            "`xcap --tc --container`",
            with(&["--container", &owner.container[..12]]),
        ),
        Member::attributing(
            "`xcap --tc --pid` of another process",
            with(&["--pid", "1"]),
        ),
    ]
}

const TC: [&str; 1] = ["--tc"];
const NATIVE: [&str; 3] = ["--xdp", "--xdp-mode", "native"];
const GENERIC: [&str; 3] = ["--xdp", "--xdp-mode", "generic"];

/// `--setups`: only the setups whose names contain one of the words.
fn wanted(only: Option<&[String]>, name: &str) -> bool {
    only.is_none_or(|o| o.iter().any(|w| name.contains(w.as_str())))
}

/// Why xcap's live capture cannot be measured (no binary, or it does not
/// start listening), or `None` when it can: started once to see.
pub(super) fn xcap_unavailable(cfg: &Config, n: &Netns) -> Result<Option<String>> {
    let Some(x) = &cfg.xcap else {
        return Ok(Some(
            "not measured: xcap live capture unavailable (no binary)".to_string(),
        ));
    };
    let cmd: Vec<String> = vec![
        x.display().to_string(),
        "-i".into(),
        CAP_IF.into(),
        "--xdp".into(),
        "-w".into(),
        "/dev/null".into(),
        FILTER.into(),
    ];
    match Tool::start(&n.cap, &cmd) {
        Ok(t) => {
            t.stop()?;
            Ok(None)
        }
        Err(e) => Ok(Some(format!(
            "not measured: xcap live capture unavailable ({})",
            format!("{e:#}").replace('|', "/")
        ))),
    }
}
