//! `-i any`: the interfaces of this network namespace a capture can use.
//!
//! tcpdump's `any` is a pseudo-device: one packet socket for every
//! interface, in Linux cooked (SLL2) format. xcap attaches to each
//! interface instead, and its filter is compiled for Ethernet, so `any`
//! stands for every interface whose packets start with an Ethernet header
//! at TC (Ethernet devices, loopback); the rest (tun, WireGuard, IP
//! tunnels: no link header) are left out and named.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ARPHRD_*` types whose packets carry an Ethernet header at TC.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// The interfaces `-i any` captures on (by index order), and the ones it
/// leaves out, with their `ARPHRD_*` type.
pub struct Any {
    pub ethernet: Vec<String>,
    pub skipped: Vec<(String, u16)>,
}

/// Lists this network namespace's interfaces (`if_nameindex`, netlink).
pub fn any() -> io::Result<Any> {
    let sock = ioctl_socket()?;
    // SAFETY: if_nameindex returns an array ended by a zero entry, freed
    // below; nothing else holds it.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut names = Vec::new();
    let mut at = list;
    // SAFETY: walking the array up to its terminating entry.
    unsafe {
        while (*at).if_index != 0 && !(*at).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*at).if_name);
            names.push(((*at).if_index, name.to_string_lossy().into_owned()));
            at = at.add(1);
        }
        libc::if_freenameindex(list);
    }
    names.sort();
    let mut out = Any {
        ethernet: Vec::new(),
        skipped: Vec::new(),
    };
    for (_, name) in names {
        match hardware_type(&sock, &name) {
            Some(ARPHRD_ETHER | ARPHRD_LOOPBACK) => out.ethernet.push(name),
            Some(t) => out.skipped.push((name, t)),
            // Gone since the listing.
            None => {}
        }
    }
    Ok(out)
}

/// The interface's `ARPHRD_*` type (`SIOCGIFHWADDR`).
fn hardware_type(sock: &OwnedFd, name: &str) -> Option<u16> {
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills the ifreq we pass.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if r != 0 {
        return None;
    }
    // SAFETY: the union's hwaddr member is what SIOCGIFHWADDR set.
    Some(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

/// Whether `name` is up (IFF_UP, `SIOCGIFFLAGS` in this namespace).
pub fn is_up(name: &str) -> bool {
    let Ok(sock) = ioctl_socket() else {
        return false;
    };
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return false;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq we pass.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    // SAFETY: the union's flags member is what SIOCGIFFLAGS set.
    r == 0 && unsafe { req.ifr_ifru.ifru_flags } & libc::IFF_UP as libc::c_short != 0
}

/// Whether `name` is a loopback device (`ARPHRD_LOOPBACK`).
pub fn is_loopback(name: &str) -> bool {
    ioctl_socket().is_ok_and(|sock| hardware_type(&sock, name) == Some(ARPHRD_LOOPBACK))
}

/// A socket to ask interface ioctls on (this network namespace's).
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain socket; the fd is checked and owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Puts interface `ifindex` in promiscuous mode for as long as the
/// returned socket is open, as libpcap does: a packet socket's
/// `PACKET_MR_PROMISC` membership, which the kernel drops when the socket
/// closes, however the process ends. The socket has no protocol, so no
/// packet is ever queued to it.
pub fn promiscuous(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: a packet socket with protocol 0 (receives nothing); checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd, ours alone.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex as i32,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: a packet_mreq of the size passed.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mreq as *const libc::packet_mreq).cast(),
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}
