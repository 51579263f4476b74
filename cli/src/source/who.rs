//! How a packet's process reads, on its text line (`--who`, `-v`) and in
//! its pcapng comment: `pid=… tid=… comm=… cgroup=… container=… netns=…`
//! (the container only where the cgroup path names one), or why there is
//! none. Cgroup ids and netns cookies become names here.

use std::cell::RefCell;

use capture::attribution::Owner;
use capture::{cgroups, netns};

/// Turns owners into text, with the names of cgroups and namespaces.
pub struct Describe {
    cgroups: RefCell<cgroups::Names>,
    netns: netns::Names,
}

/// What a packet with no local socket says.
pub const NO_SOCKET: &str = "no process here (no local socket: forwarded, or for no socket)";
/// What a packet says at a tracing hook where it carries no socket (and
/// none can be looked up there).
pub const NO_SOCKET_YET: &str =
    "no process yet (no socket on the packet at this hook: received and not yet delivered, forwarded, or the kernel's own)";
/// What a packet on a socket no process was seen using says.
pub const UNKNOWN: &str =
    "process unknown (a socket made before any process used it, in TIME_WAIT, or at a tracing hook a SYN-ACK's request socket)";

impl Describe {
    /// Names as seen from this process's namespaces, read now.
    pub fn new() -> Describe {
        Describe {
            cgroups: RefCell::new(cgroups::Names::new()),
            netns: netns::Names::here(),
        }
    }

    /// The text for `owner`; `None` when attribution was off.
    pub fn owner(&self, owner: &Owner) -> Option<String> {
        let p = match owner {
            Owner::NotAsked => return None,
            Owner::NoSocket => return Some(NO_SOCKET.into()),
            Owner::Unknown => return Some(UNKNOWN.into()),
            Owner::NoSocketYet => return Some(NO_SOCKET_YET.into()),
            Owner::Process(p) => p,
        };
        let mut names = self.cgroups.borrow_mut();
        let cgroup = names.path(p.cgroup).map(str::to_owned);
        let mut text = format!("pid={} tid={} comm={}", p.pid, p.tid, p.comm);
        match &cgroup {
            Some(path) => text.push_str(&format!(" cgroup={path}")),
            None => text.push_str(&format!(" cgroup=id:{}", p.cgroup)),
        }
        if let Some(id) = cgroup.as_deref().and_then(cgroups::container_id) {
            text.push_str(&format!(" container={id}"));
        }
        text.push_str(&format!(" netns={}", self.netns.name(p.netns)));
        Some(text)
    }
}
