//! `-i any` over time: interfaces that appear while a capture runs get its
//! programs (TC or XDP, as at the start), and the links of the ones that go are closed. A netlink
//! socket subscribed to link changes (RTM_NEWLINK, RTM_DELLINK) says when
//! to look; the consumer asks ([`Capture::follow_interfaces`]) between
//! batches, so an interface is attached within a wait of the consumer.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, RwLock};

use cbpf2ebpf::Hook;

use super::attach::attach;
use super::interfaces::{ifindex, ifindex_exists};
use super::{Capture, Interface, TcAttach, XdpMode};
use crate::{clsact, iface, Error};

/// The ifindex → position in [`Capture::interfaces`] map the readers
/// label packets with.
pub(super) type Index = Arc<RwLock<Vec<(u32, usize)>>>;

/// What `-i any` needs to attach later.
pub(super) struct Follower {
    /// Link changes of this namespace (RTMGRP_LINK).
    netlink: OwnedFd,
    /// The hooks and their programs' names.
    hooks: Vec<(Hook, &'static str)>,
    /// How XDP attaches (`--xdp-mode`), as at the start.
    xdp_mode: XdpMode,
    index: Index,
    /// Links made for interfaces that appeared, by ifindex: closed when
    /// the interface goes.
    links: HashMap<u32, Vec<OwnedFd>>,
}

/// What a look at the interfaces changed.
#[derive(Debug, Default)]
pub struct Followed {
    /// Positions in [`Capture::interfaces`] of interfaces now captured.
    pub appeared: Vec<usize>,
    /// Interfaces that went (their links closed).
    pub gone: Vec<String>,
    /// Interfaces that could not be attached, and why.
    pub failed: Vec<String>,
}

impl Follower {
    pub(crate) fn new(
        hooks: Vec<(Hook, &'static str)>,
        index: Index,
        xdp_mode: XdpMode,
    ) -> Result<Self, Error> {
        Ok(Follower {
            netlink: link_changes().map_err(|e| Error::Config(format!("-i any: netlink: {e}")))?,
            hooks,
            xdp_mode,
            index,
            links: HashMap::new(),
        })
    }

    /// Whether link messages came since the last look (drains them).
    fn changed(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        loop {
            // SAFETY: a buffer of its length; a non-blocking socket we own.
            let n = unsafe {
                libc::recv(
                    self.netlink.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n <= 0 {
                // EAGAIN: drained; ENOBUFS: messages lost, so look anyway.
                let lost = std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS);
                return any || lost;
            }
            any = true;
        }
    }
}

/// A non-blocking netlink socket that receives RTM_NEWLINK and
/// RTM_DELLINK.
fn link_changes() -> std::io::Result<OwnedFd> {
    // SAFETY: no pointers.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: the address and its length are ours, valid for the call.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

impl Capture {
    /// `-i any`: attaches the programs to interfaces that appeared since
    /// the last look, and closes the links of the ones that went. Nothing
    /// without `-i any`, or once detached.
    pub fn follow_interfaces(&mut self) -> Followed {
        let mut followed = Followed::default();
        let Some(follower) = &self.follow else {
            return followed;
        };
        if !follower.changed() {
            return followed;
        }
        self.forget_gone(&mut followed);
        let found = match iface::any() {
            Ok(found) => found,
            Err(e) => {
                followed.failed.push(format!("-i any: {e}"));
                return followed;
            }
        };
        for name in found.ethernet {
            match self.attach_new(&name) {
                Ok(Some(n)) => followed.appeared.push(n),
                Ok(None) => {}
                Err(e) => followed.failed.push(e.to_string()),
            }
        }
        followed
    }

    /// Closes the links of followed interfaces that no longer exist.
    fn forget_gone(&mut self, followed: &mut Followed) {
        let Some(follower) = &mut self.follow else {
            return;
        };
        let gone: Vec<u32> = follower
            .links
            .keys()
            .copied()
            .filter(|&i| !ifindex_exists(i))
            .collect();
        for ifindex in gone {
            follower.links.remove(&ifindex);
            if let Some(i) = self.interfaces.iter().find(|i| i.ifindex == ifindex) {
                followed.gone.push(i.name.clone());
            }
        }
    }

    /// Attaches to `name` unless it is captured already; its position.
    fn attach_new(&mut self, name: &str) -> Result<Option<usize>, Error> {
        let Some(ifindex) = ifindex(name) else {
            return Ok(None);
        };
        // Ifindexes are not reused while a namespace lives: one known is
        // captured, or went.
        if self.interfaces.iter().any(|i| i.ifindex == ifindex) {
            return Ok(None);
        }
        let mut interface = Interface {
            name: name.to_owned(),
            ifindex,
            loopback: iface::is_loopback(name),
            attached: Vec::new(),
        };
        let links = self.attach_programs(&mut interface)?;
        let Some(follower) = &mut self.follow else {
            return Ok(None);
        };
        follower.links.insert(ifindex, links);
        self.interfaces.push(interface);
        let n = self.interfaces.len() - 1;
        let mut index = follower.index.write().unwrap_or_else(|p| p.into_inner());
        index.push((ifindex, n));
        Ok(Some(n))
    }

    /// The capture's programs on `interface`, as at the start: TCX links,
    /// or clsact filters (owned by the session, so no links).
    fn attach_programs(&mut self, interface: &mut Interface) -> Result<Vec<OwnedFd>, Error> {
        let Some(follower) = &self.follow else {
            return Ok(Vec::new());
        };
        let ingress = follower.hooks.iter().any(|(h, _)| *h == Hook::TcIngress);
        let xdp_mode = follower.xdp_mode;
        let mut links = Vec::new();
        for &(hook, name) in &follower.hooks {
            // Loopback: each packet crosses egress, then ingress; one copy.
            if interface.loopback && ingress && hook == Hook::TcEgress {
                continue;
            }
            let prog = self
                .object
                .program(name)
                .ok_or_else(|| Error::Load(format!("no program {name}")))?;
            if let (Some(TcAttach::Clsact { .. }), Some(session)) =
                (self.tc_attach, self.clsact.as_mut())
            {
                let side = match hook {
                    Hook::TcEgress => clsact::Side::Egress,
                    _ => clsact::Side::Ingress,
                };
                session
                    .attach(interface.ifindex, side, prog, name)
                    .map_err(|message| Error::Attach {
                        iface: interface.name.clone(),
                        hook: hook.name().into(),
                        message,
                    })?;
                interface.attached.push(hook.name().to_owned());
                continue;
            }
            let (link, what) = attach(interface, hook, prog.as_fd(), xdp_mode)?;
            links.push(link);
            interface.attached.push(what.to_owned());
        }
        Ok(links)
    }
}
