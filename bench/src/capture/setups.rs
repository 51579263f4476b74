//! What runs on the capture side: nothing, a pass program or the
//! hand-written C filter attached by `ip link`/`tc`, or a capture tool
//! (tcpdump, xcap) with its command line.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::netns::{Netns, CAP_IF};
use super::shell::sh;

pub(super) const FILTER: &str = "udp port 9";
/// A filter no frame of the benchmark matches (they go to ports 9 and 10):
/// what the filter alone costs, with nothing captured.
pub(super) const FILTER_NONE: &str = "udp port 11";
pub(super) const SNAPLEN: &str = "96";

/// What to run on the capture side.
#[derive(Clone)]
pub(super) enum Setup {
    None,
    BareTc,
    /// Mode (`xdpgeneric`, `xdpdrv`) and section (`xdp`, `xdp.frags`).
    BareXdp(&'static str, &'static str),
    /// The hand-written C filter of bench/c/programs.c, which passes every
    /// packet: at XDP (`xdp.frags`, this mode), or at TC (clsact, `da`).
    HandXdp(&'static str),
    HandTc,
    Tcpdump,
    /// xcap's binary and options, and the filter.
    Xcap(Vec<String>, &'static str),
}

impl Setup {
    pub(super) fn is_tool(&self) -> bool {
        matches!(self, Setup::Tcpdump | Setup::Xcap(..))
    }
}

/// The objects `ip link` and `tc` attach: bench/c/pass.c, and
/// bench/c/programs.c with its sections.
pub(super) struct Objects {
    pass: PathBuf,
    hand: PathBuf,
}

impl Objects {
    pub(super) fn build(c_dir: &Path) -> Result<Objects> {
        let dir = std::env::temp_dir();
        let id = std::process::id();
        let objs = Objects {
            pass: dir.join(format!("xcap-bench-pass-{id}.o")),
            hand: dir.join(format!("xcap-bench-hand-{id}.o")),
        };
        for (src, obj, flags) in [
            ("pass.c", &objs.pass, &[][..]),
            (
                "programs.c",
                &objs.hand,
                &["-mcpu=v3", "-DLIVE_SECTIONS"][..],
            ),
        ] {
            let mut args = vec!["clang", "-O2", "-target", "bpf"];
            args.extend(flags);
            let src = c_dir.join(src);
            args.extend(["-c", src.to_str().unwrap(), "-o", obj.to_str().unwrap()]);
            sh(&args)?;
        }
        Ok(objs)
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pass);
        let _ = std::fs::remove_file(&self.hand);
    }
}

pub(super) fn capture_cmd(setup: &Setup) -> Option<Vec<String>> {
    let base = |prog: &str| {
        vec![
            prog.to_string(),
            "-i".into(),
            CAP_IF.into(),
            "-s".into(),
            SNAPLEN.into(),
            "-w".into(),
            "/dev/null".into(),
        ]
    };
    match setup {
        Setup::Tcpdump => Some({
            let mut v = base("tcpdump");
            v.push(FILTER.into());
            v
        }),
        Setup::Xcap(extra, filter) => Some({
            let mut v = base(&extra[0]);
            v.extend(extra[1..].iter().cloned());
            v.push(filter.to_string());
            v
        }),
        _ => None,
    }
}

pub(super) fn attach(n: &Netns, setup: &Setup, objs: &Objects) -> Result<()> {
    let tc = |obj: &Path| -> Result<()> {
        sh(&["tc", "-n", &n.cap, "qdisc", "add", "dev", CAP_IF, "clsact"])?;
        sh(&[
            "tc",
            "-n",
            &n.cap,
            "filter",
            "add",
            "dev",
            CAP_IF,
            "ingress",
            "bpf",
            "da",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "tc",
        ])?;
        Ok(())
    };
    let xdp = |mode: &str, obj: &Path, sec: &str| -> Result<()> {
        sh(&[
            "ip",
            "-n",
            &n.cap,
            "link",
            "set",
            "dev",
            CAP_IF,
            mode,
            "obj",
            obj.to_str().unwrap(),
            "sec",
            sec,
        ])?;
        Ok(())
    };
    match setup {
        Setup::BareTc => tc(&objs.pass),
        Setup::HandTc => tc(&objs.hand),
        Setup::BareXdp(mode, sec) => xdp(mode, &objs.pass, sec),
        Setup::HandXdp(mode) => xdp(mode, &objs.hand, "xdp.frags"),
        Setup::None | Setup::Tcpdump | Setup::Xcap(..) => Ok(()),
    }
}

pub(super) fn detach(n: &Netns, setup: &Setup) -> Result<()> {
    match setup {
        Setup::BareTc | Setup::HandTc => {
            sh(&["tc", "-n", &n.cap, "qdisc", "del", "dev", CAP_IF, "clsact"])?;
        }
        Setup::BareXdp(mode, _) | Setup::HandXdp(mode) => {
            sh(&[
                "ip", "-n", &n.cap, "link", "set", "dev", CAP_IF, mode, "off",
            ])?;
        }
        _ => {}
    }
    Ok(())
}
