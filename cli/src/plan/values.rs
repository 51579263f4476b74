//! Flags read the same way wherever they apply: `-y`, `-s`, `--mode`.

use anyhow::{bail, Result};
use cbpf2ebpf::{libpcap, Mode};

use crate::args::ModeArg;

/// `-y NAME` (or a number), as tcpdump checks it.
pub(super) fn linktype(name: &str) -> Result<i32> {
    match libpcap::linktype_from_name(name) {
        Some(lt) => Ok(lt),
        None => bail!("invalid data link type {name}"),
    }
}

/// `-s`, as tcpdump checks it: 0 means the maximum, 262144.
pub(super) fn snaplen(text: Option<&str>) -> Result<u32> {
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

pub(super) fn mode(arg: ModeArg) -> Mode {
    match arg {
        ModeArg::Direct => Mode::Direct,
        ModeArg::Skb => Mode::Skb,
        ModeArg::Probe => Mode::Probe,
    }
}
