//! Attaching the capture programs: XDP and TCX links (made early with a
//! placeholder program, then switched), or clsact filters.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;

use cbpf2ebpf::Hook;

use super::load::HookPlan;
use super::{Capture, Config, HookKind, Interface, TcAttach, TcAttachChoice, XdpMode};
use crate::{clsact, link, object, Error};

impl Capture {
    /// Attaches the capture programs, or switches the links made early to
    /// them; where TC goes through clsact, adds the filters instead.
    pub(super) fn attach(
        &mut self,
        hooks: &[(Hook, &'static str, &'static str)],
        early: Option<Result<(TcAttach, Links), Error>>,
        cfg: &Config,
    ) -> Result<(), Error> {
        let pairs = link_order(&self.interfaces, hooks);
        let object = &self.object;
        let program = |name: &str| {
            object
                .program(name)
                .ok_or_else(|| Error::Load(format!("no program {name}")))
        };
        let (tc, links) = match early {
            Some(made) => {
                let (tc, links) = made?;
                (Some(tc), links)
            }
            None if cfg.hook == HookKind::Tc => {
                let probe = program(hooks[0].2)?;
                (Some(tc_attach_mode(cfg.tc_attach, probe)?), Vec::new())
            }
            None => (None, Vec::new()),
        };
        self.tc_attach = tc;
        if let Some(TcAttach::Clsact { .. }) = tc {
            return self.attach_clsact(hooks, &pairs);
        }
        if !links.is_empty() {
            for (&(n, h), (link, what)) in pairs.iter().zip(links) {
                let iface = &mut self.interfaces[n];
                iface.attached.push(what.to_owned());
                link::update(link.as_fd(), program(hooks[h].2)?).map_err(|e| Error::Attach {
                    iface: iface.name.clone(),
                    hook: what.into(),
                    message: e.to_string(),
                })?;
                self.links.push(link);
            }
            return Ok(());
        }
        for (n, h) in pairs {
            let prog = program(hooks[h].2)?;
            let (link, what) = attach(&self.interfaces[n], hooks[h].0, prog, cfg.xdp_mode)?;
            self.links.push(link);
            self.interfaces[n].attached.push(what.to_owned());
        }
        Ok(())
    }

    /// TC through clsact: removes what killed xcaps left, then adds a
    /// filter per (interface, hook). The session is kept from the start,
    /// so an error removes the filters already added.
    fn attach_clsact(
        &mut self,
        hooks: &[(Hook, &'static str, &'static str)],
        pairs: &[(usize, usize)],
    ) -> Result<(), Error> {
        let session = self
            .clsact
            .insert(clsact::Session::new().map_err(Error::Clsact)?);
        for &(n, h) in pairs {
            let (hook, _, name) = hooks[h];
            let prog = self
                .object
                .program(name)
                .ok_or_else(|| Error::Load(format!("no program {name}")))?;
            let side = if hook == Hook::TcEgress {
                clsact::Side::Egress
            } else {
                clsact::Side::Ingress
            };
            let iface = &mut self.interfaces[n];
            session
                .attach(iface.ifindex, side, prog, name)
                .map_err(|message| Error::Attach {
                    iface: iface.name.clone(),
                    hook: hook.name().into(),
                    message,
                })?;
            iface.attached.push(hook.name().to_owned());
        }
        Ok(())
    }
}

/// Links being made on another thread (none where TC goes through
/// clsact). Dropping it waits for them, so a start that fails has closed
/// every link by the time it returns.
pub(super) struct PendingLinks(Option<JoinHandle<Result<(TcAttach, Links), Error>>>);

/// Link fds, each with where it is attached ("tc ingress", ...).
pub(super) type Links = Vec<(OwnedFd, &'static str)>;

impl PendingLinks {
    pub(super) fn wait(&mut self) -> Option<Result<(TcAttach, Links), Error>> {
        let handle = self.0.take()?;
        Some(
            handle
                .join()
                .unwrap_or_else(|_| Err(Error::Load("the attaching thread panicked".into()))),
        )
    }
}

impl Drop for PendingLinks {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Opening a live handle, making a TCX link and switching an XDP program
/// each wait for an RCU grace period in the kernel (about 10 ms each
/// here). TC links are therefore made on another thread while libpcap
/// compiles and the programs load, with a program that does nothing, and
/// switched to the capture programs at the end, which for TCX costs no
/// grace period. Only for an expression that compiles on a dead handle, so
/// a typo never touches an interface. XDP attaches at the end: switching
/// its program waits as long as attaching it.
pub(super) fn attach_placeholders_meanwhile(
    cfg: &Config,
    interfaces: &[Interface],
    hooks: &[HookPlan],
) -> PendingLinks {
    let early = cfg.hook == HookKind::Tc
        && cbpf2ebpf::libpcap::compile(&cfg.expression, 1, cfg.snaplen).is_ok();
    PendingLinks(early.then(|| {
        let (interfaces, hooks) = (interfaces.to_vec(), hooks.to_vec());
        let choice = cfg.tc_attach;
        std::thread::spawn(move || attach_placeholders(&interfaces, &hooks, choice))
    }))
}

/// (interface, hook) index pairs, in the order links are made: every
/// hook on every interface, but a loopback's egress when its ingress is
/// hooked too (it would see every packet twice).
pub(super) fn link_order(
    interfaces: &[Interface],
    hooks: &[(Hook, &'static str, &'static str)],
) -> Vec<(usize, usize)> {
    let ingress = hooks.iter().any(|h| h.0 == Hook::TcIngress);
    (0..interfaces.len())
        .flat_map(|n| (0..hooks.len()).map(move |h| (n, h)))
        .filter(|&(n, h)| !(interfaces[n].loopback && ingress && hooks[h].0 == Hook::TcEgress))
        .collect()
}

/// How TC programs get attached: as asked, or TCX where the kernel has it
/// (asked with `probe`, a TC program).
pub(super) fn tc_attach_mode(
    choice: TcAttachChoice,
    probe: BorrowedFd<'_>,
) -> Result<TcAttach, Error> {
    match choice {
        TcAttachChoice::Tcx => Ok(TcAttach::Tcx),
        TcAttachChoice::Clsact => Ok(TcAttach::Clsact { forced: true }),
        TcAttachChoice::Auto => match link::have_tcx(probe) {
            Ok(true) => Ok(TcAttach::Tcx),
            Ok(false) => Ok(TcAttach::Clsact { forced: false }),
            Err(e) => Err(Error::Load(format!(
                "cannot tell whether the kernel has TCX: {e}"
            ))),
        },
    }
}

/// TCX links for every (interface, TC hook) in [`link_order`], with a
/// program that does nothing; none where TC goes through clsact. An error
/// closes the links made so far.
pub(super) fn attach_placeholders(
    interfaces: &[Interface],
    hooks: &[(Hook, &'static str, &'static str)],
    choice: TcAttachChoice,
) -> Result<(TcAttach, Links), Error> {
    let placeholder = object::placeholder(false)?;
    let tc = tc_attach_mode(choice, placeholder.as_fd())?;
    if tc != TcAttach::Tcx {
        return Ok((tc, Vec::new()));
    }
    // All at once: each link waits for a grace period, and waits that
    // start together end together (one after another, each would also
    // wait out the one in progress when it asked).
    std::thread::scope(|scope| {
        let pending: Vec<_> = link_order(interfaces, hooks)
            .into_iter()
            .map(|(n, h)| {
                let placeholder = placeholder.as_fd();
                scope.spawn(move || attach(&interfaces[n], hooks[h].0, placeholder, XdpMode::Auto))
            })
            .collect();
        pending
            .into_iter()
            .map(|p| {
                p.join()
                    .unwrap_or_else(|_| Err(Error::Load("the attaching thread panicked".into())))
            })
            .collect::<Result<Links, Error>>()
            .map(|links| (tc, links))
    })
}

/// Attaches `prog` to `iface` at `hook`: XDP native, or generic when the
/// driver has none (`XdpMode::Auto`), never replacing an XDP program; TC
/// first on ingress and last on egress, so xcap sees what tcpdump sees.
pub(super) fn attach(
    iface: &Interface,
    hook: Hook,
    prog: BorrowedFd<'_>,
    mode: XdpMode,
) -> Result<(OwnedFd, &'static str), Error> {
    let (fd, ifindex) = (prog, iface.ifindex);
    let attach_err = |what: &str, e: std::io::Error| Error::Attach {
        iface: iface.name.clone(),
        hook: what.into(),
        message: e.to_string(),
    };
    // TCX asked for where there is none (TcAttachChoice::Tcx).
    let tcx_err = |what: &str, e: std::io::Error| {
        let mut err = attach_err(what, e);
        if let Error::Attach { message, .. } = &mut err {
            if link::have_tcx(fd).ok() == Some(false) {
                message.push_str(" (no TCX in this kernel: it came with Linux 6.6)");
            }
        }
        err
    };
    let (link, what) = match hook {
        Hook::Xdp => {
            let try_mode = |flags: u32| link::create(fd, ifindex, link::BPF_XDP, flags);
            let busy = |e: &std::io::Error| {
                matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
            };
            match mode {
                XdpMode::Native | XdpMode::Auto => match try_mode(link::XDP_FLAGS_DRV_MODE) {
                    Ok(l) => (l, "xdp native"),
                    Err(e) if busy(&e) => return Err(Error::XdpBusy(iface.name.clone())),
                    Err(e)
                        if mode == XdpMode::Auto
                            && matches!(
                                e.raw_os_error(),
                                Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                            ) =>
                    {
                        match try_mode(link::XDP_FLAGS_SKB_MODE) {
                            Ok(l) => (l, "xdp generic"),
                            Err(e) if busy(&e) => return Err(Error::XdpBusy(iface.name.clone())),
                            Err(e) => return Err(attach_err("xdp generic", e)),
                        }
                    }
                    Err(e) => return Err(attach_err("xdp native", e)),
                },
                XdpMode::Generic => match try_mode(link::XDP_FLAGS_SKB_MODE) {
                    Ok(l) => (l, "xdp generic"),
                    Err(e) if busy(&e) => return Err(Error::XdpBusy(iface.name.clone())),
                    Err(e) => return Err(attach_err("xdp generic", e)),
                },
            }
        }
        Hook::TcIngress => (
            link::create(fd, ifindex, link::BPF_TCX_INGRESS, link::BPF_F_BEFORE)
                .map_err(|e| tcx_err("tc ingress", e))?,
            "tc ingress",
        ),
        _ => (
            link::create(fd, ifindex, link::BPF_TCX_EGRESS, link::BPF_F_AFTER)
                .map_err(|e| tcx_err("tc egress", e))?,
            "tc egress",
        ),
    };
    Ok((link, what))
}
