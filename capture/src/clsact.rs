//! TC without TCX (Linux before 6.6): xcap's programs as direct-action
//! `cls_bpf` filters on a `clsact` qdisc, added and removed over rtnetlink
//! ([`crate::netlink`]), as `tc qdisc add dev D clsact` and `tc filter add
//! dev D ingress pref 1 bpf da fd F name N` would.
//!
//! - **Where**: the clsact qdisc is created only when the interface has
//!   none, and removed by the last xcap to leave it, if nothing else is on
//!   it then. An interface whose ingress slot holds another qdisc
//!   (`ingress`), or a clsact with a shared filter block, is refused.
//! - **Order**: filters run by priority, lowest first. tcpdump sees a
//!   received packet before TC ingress and a sent one after TC egress, so
//!   xcap's ingress filter takes priority 1 (first) and its egress filter
//!   65535 (last), as its TCX links go first and last. Each is protocol
//!   `all`, kind `bpf`, handle chosen by the kernel.
//! - **Verdict**: the programs return `TC_ACT_UNSPEC` (-1, TCX's
//!   `TCX_NEXT`). For a direct-action cls_bpf filter that means no
//!   decision: the next program of the filter, then the next filter, runs;
//!   when none decides, the packet goes on as if there were no filter.
//! - **Ownership**: each filter is named `PROGRAM:KEY`, with `+clsact`
//!   appended when an xcap made the qdisc: this one, or one whose marked
//!   filters were on it when this one came (so the mark passes from xcap to
//!   xcap while they overlap, and a user's qdisc never gets it). `KEY` is
//!   `PID.RANDOM`, and a datagram socket bound to the abstract name
//!   `xcap-tc-owner:KEY` lives as long as the xcap that made the filter.
//!   Abstract socket names belong to the network namespace, as the
//!   interfaces do, so any xcap there can tell whether a filter's owner
//!   still runs (the name is taken) whatever its PID namespace, and a
//!   reused PID never looks alive.
//! - **The end**: xcap removes the filters named with its key, then, if
//!   its filters were marked and no filter at all is left on the qdisc,
//!   the qdisc. Filters survive a SIGKILL; the next xcap that attaches
//!   this way removes, on every interface of its network namespace with a
//!   clsact qdisc, the xcap filters whose owner is gone (and the qdisc,
//!   when they were marked and it is then empty).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::netlink::{self, attr_string, attrs, Msg, Route};

/// Priorities (`pref`): ingress first, egress last.
pub const PRIO_INGRESS: u16 = 1;
pub const PRIO_EGRESS: u16 = 0xffff;

/// The ingress/clsact slot, the clsact qdisc's handle and its two parents.
const TC_H_CLSACT: u32 = 0xffff_fff1;
const CLSACT_HANDLE: u32 = 0xffff_0000;
const PARENT_INGRESS: u32 = 0xffff_fff2;
const PARENT_EGRESS: u32 = 0xffff_fff3;
/// `ETH_P_ALL` in network order, as `tcm_info`'s low half wants it.
const ETH_P_ALL: u16 = 0x0003u16.to_be();

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_CHAIN: u16 = 11;
const TCA_INGRESS_BLOCK: u16 = 13;
const TCA_EGRESS_BLOCK: u16 = 14;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_FLAGS_GEN: u16 = 9;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
const TCA_CLS_FLAGS_SKIP_HW: u32 = 1;

/// What xcap's filter names start with (its TC programs' names).
const NAME_PREFIX: &str = "xcap_tc";
const CREATED_MARK: &str = "+clsact";
const OWNER_SOCKET: &str = "xcap-tc-owner:";

/// Which of clsact's two hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Ingress,
    Egress,
}

impl Side {
    const BOTH: [Side; 2] = [Side::Ingress, Side::Egress];

    fn parent(self) -> u32 {
        match self {
            Side::Ingress => PARENT_INGRESS,
            Side::Egress => PARENT_EGRESS,
        }
    }

    pub fn prio(self) -> u16 {
        match self {
            Side::Ingress => PRIO_INGRESS,
            Side::Egress => PRIO_EGRESS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Ingress => "ingress",
            Side::Egress => "egress",
        }
    }
}

/// `struct tcmsg`.
fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m[8..12].copy_from_slice(&handle.to_ne_bytes());
    m[12..16].copy_from_slice(&parent.to_ne_bytes());
    m[16..20].copy_from_slice(&info.to_ne_bytes());
    m
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// The qdisc in an interface's ingress/clsact slot.
#[derive(Clone, Debug)]
struct SlotQdisc {
    ifindex: u32,
    kind: String,
    shared_block: bool,
}

/// Every qdisc in an ingress/clsact slot of this network namespace (the
/// kernels xcap falls back on dump all interfaces' qdiscs at once).
fn slot_qdiscs(nl: &mut Route) -> Result<Vec<SlotQdisc>, netlink::Error> {
    let replies = nl.dump(netlink::RTM_GETQDISC, &tcmsg(0, 0, 0, 0))?;
    Ok(replies
        .iter()
        .filter(|r| r.kind == netlink::RTM_NEWQDISC && r.body.len() >= 20)
        .filter(|r| u32_at(&r.body, 12) == TC_H_CLSACT)
        .map(|r| {
            let mut q = SlotQdisc {
                ifindex: u32_at(&r.body, 4),
                kind: String::new(),
                shared_block: false,
            };
            for (k, v) in attrs(&r.body[20..]) {
                match k {
                    TCA_KIND => q.kind = attr_string(v),
                    TCA_INGRESS_BLOCK | TCA_EGRESS_BLOCK => q.shared_block = true,
                    _ => {}
                }
            }
            q
        })
        .collect())
}

/// A filter (or a filter list's own entry, handle 0) as a dump shows it.
#[derive(Clone, Debug)]
struct Filter {
    info: u32,
    handle: u32,
    chain: u32,
    kind: String,
    name: Option<String>,
}

/// The filters on one side of an interface's clsact qdisc, every chain.
fn filters(nl: &mut Route, ifindex: u32, side: Side) -> Result<Vec<Filter>, netlink::Error> {
    let replies = nl.dump(
        netlink::RTM_GETTFILTER,
        &tcmsg(ifindex, 0, side.parent(), 0),
    )?;
    Ok(replies
        .iter()
        .filter(|r| r.kind == netlink::RTM_NEWTFILTER && r.body.len() >= 20)
        .map(|r| {
            let mut f = Filter {
                info: u32_at(&r.body, 16),
                handle: u32_at(&r.body, 8),
                chain: 0,
                kind: String::new(),
                name: None,
            };
            for (k, v) in attrs(&r.body[20..]) {
                match k {
                    TCA_KIND => f.kind = attr_string(v),
                    TCA_CHAIN if v.len() >= 4 => f.chain = u32_at(v, 0),
                    TCA_OPTIONS => {
                        f.name = attrs(v)
                            .find(|(k, _)| *k == TCA_BPF_NAME)
                            .map(|(_, v)| attr_string(v))
                    }
                    _ => {}
                }
            }
            f
        })
        .collect())
}

fn delete_filter(
    nl: &mut Route,
    ifindex: u32,
    side: Side,
    f: &Filter,
) -> Result<(), netlink::Error> {
    let mut msg = Msg::new(
        netlink::RTM_DELTFILTER,
        0,
        &tcmsg(ifindex, f.handle, side.parent(), f.info),
    );
    msg.attr_str(TCA_KIND, &f.kind);
    if f.chain != 0 {
        msg.attr_u32(TCA_CHAIN, f.chain);
    }
    nl.request(msg)
}

/// Whether nothing at all is on the interface's clsact qdisc.
fn clsact_empty(nl: &mut Route, ifindex: u32) -> Result<bool, netlink::Error> {
    for side in Side::BOTH {
        if !filters(nl, ifindex, side)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn delete_clsact(nl: &mut Route, ifindex: u32) -> Result<(), netlink::Error> {
    let mut msg = Msg::new(
        netlink::RTM_DELQDISC,
        0,
        &tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0),
    );
    // Only a clsact: the kernel refuses if the slot holds another kind.
    msg.attr_str(TCA_KIND, "clsact");
    nl.request(msg)
}

/// An xcap filter's name: its program, the owner's key, and whether an
/// xcap made the qdisc.
fn filter_name(program: &str, key: &str, xcaps_qdisc: bool) -> String {
    format!(
        "{program}:{key}{}",
        if xcaps_qdisc { CREATED_MARK } else { "" }
    )
}

/// (owner key, an xcap made the qdisc) of an xcap filter's name.
fn parse_name(name: &str) -> Option<(&str, bool)> {
    let (program, rest) = name.split_once(':')?;
    if !program.starts_with(NAME_PREFIX) {
        return None;
    }
    let (key, created) = match rest.strip_suffix(CREATED_MARK) {
        Some(k) => (k, true),
        None => (rest, false),
    };
    let valid = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.');
    valid.then_some((key, created))
}

/// An abstract-namespace datagram socket named after `key`.
fn owner_socket(key: &str) -> io::Result<(OwnedFd, io::Result<()>)> {
    // SAFETY: socket() has no memory preconditions; the fd is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd, ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let name = format!("{OWNER_SOCKET}{key}");
    // sun_path[0] stays 0: the abstract namespace.
    for (d, s) in addr.sun_path[1..].iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    // SAFETY: bind with our address and its length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    let bound = if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    Ok((fd, bound))
}

/// Whether the xcap of `key` still runs: its socket's name is taken. Any
/// doubt counts as alive (its filters are left alone).
fn owner_alive(key: &str) -> bool {
    !matches!(owner_socket(key), Ok((_, Ok(()))))
}

/// This process's key, and the socket that holds its name.
struct Owner {
    key: String,
    _token: OwnedFd,
}

impl Owner {
    fn new() -> io::Result<Owner> {
        let mut random = [0u8; 4];
        // SAFETY: getrandom into a 4-byte buffer.
        let n = unsafe { libc::getrandom(random.as_mut_ptr().cast(), random.len(), 0) };
        if n != random.len() as isize {
            return Err(io::Error::last_os_error());
        }
        let key = format!("{}.{:08x}", std::process::id(), u32::from_ne_bytes(random));
        let (fd, bound) = owner_socket(&key)?;
        bound?;
        Ok(Owner { key, _token: fd })
    }
}

fn ifname(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("ifindex {ifindex}");
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

fn interface_exists(ifindex: u32) -> bool {
    !ifname(ifindex).starts_with("ifindex ")
}

/// Removes the interface's xcap filters that `doomed` picks by owner key.
/// Returns what it removed ("IFACE SIDE NAME"), and whether one of them
/// was marked (an xcap made the qdisc).
fn remove_filters(
    nl: &mut Route,
    ifindex: u32,
    mut doomed: impl FnMut(&str) -> bool,
) -> Result<(Vec<String>, bool), netlink::Error> {
    let mut removed = Vec::new();
    let mut creator = false;
    for side in Side::BOTH {
        for f in filters(nl, ifindex, side)? {
            let Some((key, created)) = f.name.as_deref().and_then(parse_name) else {
                continue;
            };
            if f.kind != "bpf" || f.handle == 0 || !doomed(key) {
                continue;
            }
            match delete_filter(nl, ifindex, side, &f) {
                Ok(()) => {}
                // Gone meanwhile (another xcap's sweep).
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            creator |= created;
            let name = f.name.clone().unwrap_or_default();
            removed.push(format!("{} {} {name}", ifname(ifindex), side.name()));
        }
    }
    Ok((removed, creator))
}

/// Removes, on every interface in `ifindexes` (those with a clsact qdisc),
/// the xcap filters whose owner is gone, and the qdisc where they were
/// marked and nothing is left on it.
fn sweep(nl: &mut Route, ifindexes: &[u32]) -> Result<Vec<String>, netlink::Error> {
    let mut removed = Vec::new();
    for &ifindex in ifindexes {
        let result =
            remove_filters(nl, ifindex, |key| !owner_alive(key)).and_then(|(r, marked)| {
                if marked && clsact_empty(nl, ifindex)? {
                    delete_clsact(nl, ifindex)?;
                }
                Ok(r)
            });
        match result {
            Ok(r) => removed.extend(r),
            // Gone since the listing, and what was on it with it.
            Err(_) if !interface_exists(ifindex) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// A refused filter, in one line: a priority of xcap's taken by a filter
/// of another kind or protocol is named.
fn filter_error(side: Side, e: netlink::Error) -> String {
    let clash = e.errno() == Some(libc::EINVAL)
        && e.reason.as_deref().is_some_and(|r| {
            r.contains("priority") || r.contains("kind") || r.contains("protocol")
        });
    if clash {
        format!(
            "tc priority {} (xcap's: {} on {}) holds a filter of another kind or protocol: {e}",
            side.prio(),
            if side == Side::Ingress {
                "the first"
            } else {
                "the last"
            },
            side.name()
        )
    } else {
        format!("adding a clsact cls_bpf filter: {e}")
    }
}

/// Whether an xcap made the interface's qdisc: one of the xcap filters on
/// it is marked.
fn xcaps_qdisc(nl: &mut Route, ifindex: u32) -> Result<bool, netlink::Error> {
    for side in Side::BOTH {
        let marked = filters(nl, ifindex, side)?.iter().any(|f| {
            f.name
                .as_deref()
                .and_then(parse_name)
                .is_some_and(|(_, mark)| mark)
        });
        if marked {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An interface xcap attached to.
struct Hooked {
    ifindex: u32,
    /// An xcap made its clsact qdisc (this one, or one on it when this one
    /// came): the last to leave removes it, if it is empty.
    xcaps_qdisc: bool,
}

/// xcap's filters of one capture; dropping it removes them (see the
/// module's documentation).
pub struct Session {
    nl: Route,
    owner: Owner,
    /// The ingress/clsact slots, as of the start (after the sweep).
    slots: Vec<SlotQdisc>,
    hooked: Vec<Hooked>,
    /// Filters of killed xcaps removed at the start ("IFACE SIDE NAME").
    pub swept: Vec<String>,
}

impl Session {
    /// Opens rtnetlink, takes an owner key, and removes what killed xcaps
    /// left on this network namespace's interfaces.
    pub fn new() -> Result<Session, String> {
        let mut nl = Route::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let owner = Owner::new().map_err(|e| format!("owner socket: {e}"))?;
        let mut slots = slot_qdiscs(&mut nl).map_err(|e| format!("listing qdiscs: {e}"))?;
        let clsacts: Vec<u32> = slots
            .iter()
            .filter(|q| q.kind == "clsact")
            .map(|q| q.ifindex)
            .collect();
        let swept = sweep(&mut nl, &clsacts)
            .map_err(|e| format!("removing filters of killed xcaps: {e}"))?;
        if !swept.is_empty() {
            slots = slot_qdiscs(&mut nl).map_err(|e| format!("listing qdiscs: {e}"))?;
        }
        Ok(Session {
            nl,
            owner,
            slots,
            hooked: Vec::new(),
            swept,
        })
    }

    /// Adds `prog` as a direct-action filter on `side` of interface
    /// `ifindex`, named after `program`; creates the clsact qdisc first if
    /// there is none. Errors are one line.
    pub fn attach(
        &mut self,
        ifindex: u32,
        side: Side,
        prog: BorrowedFd<'_>,
        program: &str,
    ) -> Result<(), String> {
        let mut again = true;
        loop {
            let xcaps_qdisc = match self.hooked.iter().find(|h| h.ifindex == ifindex) {
                Some(h) => h.xcaps_qdisc,
                None => {
                    let xcaps_qdisc = self.ensure_clsact(ifindex)?;
                    self.hooked.push(Hooked {
                        ifindex,
                        xcaps_qdisc,
                    });
                    xcaps_qdisc
                }
            };
            let name = filter_name(program, &self.owner.key, xcaps_qdisc);
            let err = match self.add_filter(ifindex, side, prog, &name) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // The last xcap on it may have removed the qdisc meanwhile:
            // make it again, once.
            if again && matches!(err.errno(), Some(libc::EINVAL | libc::ENOENT)) {
                self.slots =
                    slot_qdiscs(&mut self.nl).map_err(|e| format!("listing qdiscs: {e}"))?;
                if !self.slots.iter().any(|q| q.ifindex == ifindex) {
                    self.hooked.retain(|h| h.ifindex != ifindex);
                    again = false;
                    continue;
                }
            }
            return Err(filter_error(side, err));
        }
    }

    fn add_filter(
        &mut self,
        ifindex: u32,
        side: Side,
        prog: BorrowedFd<'_>,
        name: &str,
    ) -> Result<(), netlink::Error> {
        let info = (u32::from(side.prio()) << 16) | u32::from(ETH_P_ALL);
        let mut msg = Msg::new(
            netlink::RTM_NEWTFILTER,
            netlink::NLM_F_CREATE | netlink::NLM_F_EXCL,
            &tcmsg(ifindex, 0, side.parent(), info),
        );
        msg.attr_str(TCA_KIND, "bpf")
            .nest(TCA_OPTIONS)
            .attr_u32(TCA_BPF_FD, prog.as_raw_fd() as u32)
            .attr_str(TCA_BPF_NAME, name)
            .attr_u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT)
            .attr_u32(TCA_BPF_FLAGS_GEN, TCA_CLS_FLAGS_SKIP_HW)
            .end_nest();
        self.nl.request(msg)
    }

    /// Makes sure the interface has a clsact qdisc; whether an xcap made
    /// it (this one now, or one whose marked filters are on it).
    fn ensure_clsact(&mut self, ifindex: u32) -> Result<bool, String> {
        for _ in 0..2 {
            match self.slots.iter().find(|q| q.ifindex == ifindex) {
                Some(q) if q.kind != "clsact" => {
                    return Err(format!(
                        "its '{}' qdisc leaves no room for clsact, which xcap needs where the kernel has no TCX (Linux 6.6)",
                        q.kind
                    ))
                }
                Some(q) if q.shared_block => {
                    return Err("its clsact qdisc uses a shared filter block; xcap does not attach there".into())
                }
                Some(_) => {
                    return xcaps_qdisc(&mut self.nl, ifindex)
                        .map_err(|e| format!("listing tc filters: {e}"))
                }
                None => {}
            }
            let mut msg = Msg::new(
                netlink::RTM_NEWQDISC,
                netlink::NLM_F_CREATE | netlink::NLM_F_EXCL,
                &tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0),
            );
            msg.attr_str(TCA_KIND, "clsact");
            match self.nl.request(msg) {
                Ok(()) => return Ok(true),
                // Made meanwhile: look again.
                Err(e) if e.errno() == Some(libc::EEXIST) => {
                    self.slots =
                        slot_qdiscs(&mut self.nl).map_err(|e| format!("listing qdiscs: {e}"))?;
                }
                Err(e) => return Err(format!("creating a clsact qdisc: {e}")),
            }
        }
        Err("creating a clsact qdisc: it keeps changing".into())
    }

    /// Removes this capture's filters, and the qdiscs an xcap made that
    /// are then empty. Returns what could not be removed (interfaces that went
    /// away took everything with them).
    fn remove(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let key = self.owner.key.clone();
        for h in std::mem::take(&mut self.hooked) {
            let result = remove_filters(&mut self.nl, h.ifindex, |k| k == key).and_then(|_| {
                if h.xcaps_qdisc && clsact_empty(&mut self.nl, h.ifindex)? {
                    delete_clsact(&mut self.nl, h.ifindex)?;
                }
                Ok(())
            });
            if let Err(e) = result {
                if interface_exists(h.ifindex) {
                    problems.push(format!(
                        "{}: xcap's tc filters may be left: {e}",
                        ifname(h.ifindex)
                    ));
                }
            }
        }
        problems
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Nothing else can report it: say so, as the filters outlive us.
        for p in self.remove() {
            eprintln!("xcap: {p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_names_carry_the_owner_and_the_qdisc_mark() {
        let n = filter_name("xcap_tc_egress", "4242.0a1b2c3d", true);
        assert_eq!(n, "xcap_tc_egress:4242.0a1b2c3d+clsact");
        assert_eq!(parse_name(&n), Some(("4242.0a1b2c3d", true)));
        assert_eq!(parse_name("xcap_tc:17.ff"), Some(("17.ff", false)));
        assert_eq!(parse_name("prog.o:[classifier]"), None);
        assert_eq!(parse_name("xcap_tc:../x"), None);
        assert_eq!(parse_name("xcap_tc:"), None);
    }

    #[test]
    fn an_owner_is_alive_while_its_socket_lives() {
        let owner = Owner::new().unwrap();
        assert!(owner_alive(&owner.key));
        let key = owner.key.clone();
        drop(owner);
        assert!(!owner_alive(&key));
    }
}
