//! The interfaces a live capture is for, and their promiscuous mode.

use super::{Capture, Config, ANY};
use crate::{iface, Error};

/// An interface and what xcap attached to it.
#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    /// A loopback device: each packet crosses its TC egress and then its
    /// ingress, so with both directions only ingress is hooked (tcpdump,
    /// too, skips the loopback's outgoing copies).
    pub loopback: bool,
    /// "xdp native", "xdp generic", "tc ingress", "tc egress".
    pub attached: Vec<String>,
}

/// The interfaces a capture is for.
pub(super) struct Resolved {
    pub(super) interfaces: Vec<Interface>,
    /// `-i any` was asked for.
    pub(super) any: bool,
    /// The interfaces `any` skipped, with their link type.
    pub(super) skipped: Vec<(String, u16)>,
}

/// The interfaces named (`any`: every interface with an Ethernet header,
/// see [`iface`]), each once; whether `any` was asked for, and
/// the interfaces it skipped.
pub(super) fn resolve_interfaces(cfg: &Config) -> Result<Resolved, Error> {
    if cfg.interfaces.is_empty() {
        return Err(Error::Config("no interface given".into()));
    }
    // `any`, unless an interface has that name.
    let any = cfg.interfaces.iter().any(|n| n == ANY) && ifindex(ANY).is_none();
    let mut skipped = Vec::new();
    let names = if any {
        let found = iface::any().map_err(|e| Error::Config(format!("-i any: {e}")))?;
        let mut names: Vec<String> = cfg
            .interfaces
            .iter()
            .filter(|n| *n != ANY)
            .cloned()
            .collect();
        names.extend(found.ethernet);
        skipped = found.skipped;
        if names.is_empty() {
            return Err(Error::Config(
                "-i any: no interface with an Ethernet header here".into(),
            ));
        }
        names
    } else {
        cfg.interfaces.clone()
    };
    let mut interfaces = Vec::new();
    for name in &names {
        let ifindex = ifindex(name).ok_or_else(|| Error::NoSuchDevice(name.clone()))?;
        if interfaces.iter().any(|i: &Interface| i.ifindex == ifindex) {
            continue;
        }
        interfaces.push(Interface {
            name: name.clone(),
            ifindex,
            loopback: iface::is_loopback(name),
            attached: Vec::new(),
        });
    }
    Ok(Resolved {
        interfaces,
        any,
        skipped,
    })
}

impl Capture {
    /// Puts each interface in promiscuous mode when asked (tcpdump's
    /// default; `-p` turns it off), for as long as the capture runs.
    pub(super) fn enter_promiscuous_mode(&mut self, cfg: &Config) -> Result<(), Error> {
        if cfg.promiscuous && !self.any {
            for i in &self.interfaces {
                let sock = iface::promiscuous(i.ifindex).map_err(|e| Error::Attach {
                    iface: i.name.clone(),
                    hook: "promiscuous mode".into(),
                    message: e.to_string(),
                })?;
                self.promiscuous.push(sock);
            }
        }
        Ok(())
    }
}

pub(super) fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

pub(super) fn ifindex_exists(ifindex: u32) -> bool {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes.
    !unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) }.is_null()
}
