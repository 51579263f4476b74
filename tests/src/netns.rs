//! Private network namespaces for the tests that send real packets, so
//! that nothing outside them is touched: two joined by a veth pair, with a
//! scratch folder, deleted when the test ends however it ends; threads
//! that work inside one; raw frames sent from one.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crate::process::run_text;
use crate::TempDir;

/// Two network namespaces and a scratch folder, deleted on drop (the
/// namespaces take their interfaces, programs and qdiscs with them).
/// [`Pair::link`] joins them with a veth pair, [`Pair::up`] brings it up.
pub struct Pair {
    /// The namespaces' names.
    pub a: String,
    pub b: String,
    /// This pair's number in the test process (0, 1, ...), for names and
    /// addresses of its own.
    pub n: usize,
    dir: TempDir,
}

impl Pair {
    /// Two new namespaces, `{tag}-{pid}-{n}-a` and `-b`, and a scratch
    /// folder ([`TempDir`]).
    pub fn new(tag: &str) -> Pair {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let base = format!("{tag}-{}-{n}", std::process::id());
        // Made before the namespaces, so that a failure deletes what exists.
        let pair = Pair {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            n,
            dir: TempDir::new(tag),
        };
        for ns in [&pair.a, &pair.b] {
            run_text(Command::new("ip").args(["netns", "add", ns]));
        }
        pair
    }

    /// A veth pair, `a_if` in A and `b_if` in B, both down.
    pub fn link(&self, a_if: &str, b_if: &str) {
        run_text(Command::new("ip").args([
            "link", "add", a_if, "netns", &self.a, "type", "veth", "peer", "name", b_if, "netns",
            &self.b,
        ]));
    }

    /// Loopback and the veth ends up, in both namespaces.
    pub fn up(&self, a_if: &str, b_if: &str) {
        for (ns, ifname) in [(&self.a, a_if), (&self.b, b_if)] {
            for dev in [ifname, "lo"] {
                run_text(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
            }
        }
    }

    /// A /24 of this pair's own, `10.{second}.X`: tracing hooks see every
    /// namespace, so no two pairs of concurrent test processes may share
    /// addresses.
    pub fn subnet(&self, second: u8) -> String {
        format!(
            "10.{second}.{}",
            (std::process::id() as usize * 7 + self.n) % 250
        )
    }

    /// `{subnet}.1/24` on `a_if` in A and `{subnet}.2/24` on `b_if` in B.
    pub fn address(&self, a_if: &str, b_if: &str, subnet: &str) {
        for (ns, ifname, host) in [(&self.a, a_if, 1), (&self.b, b_if, 2)] {
            let addr = format!("{subnet}.{host}/24");
            run_text(Command::new("ip").args(["-n", ns, "addr", "add", &addr, "dev", ifname]));
        }
    }

    /// A file's path in the scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `program` run inside namespace `ns` (`ip netns exec`).
pub fn exec(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Runs `f` on a new thread that has joined namespace `ns` (sockets it
/// makes stay there).
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a namespace fd we hold; affects this thread only.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// [`spawn_in`], waited for: what `f` returns (its panic, if it panics).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in(ns, f)
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The MAC address of `ifname` in namespace `ns`.
pub fn mac_of(ns: &str, ifname: &str) -> [u8; 6] {
    let text = run_text(Command::new("ip").args(["-n", ns, "-o", "link", "show", ifname]));
    let at = text.find("link/ether ").expect("link/ether") + "link/ether ".len();
    let mut mac = [0u8; 6];
    for (i, part) in text[at..at + 17].split(':').enumerate() {
        mac[i] = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

/// `02:00:00:00:00:01`.
pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Sends raw Ethernet frames on `ifname`, in the calling thread's namespace
/// ([`spawn_in`]).
pub fn send_frames(ifname: &str, frames: &[Vec<u8>]) {
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: a C string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex != 0, "no {ifname}");
    // SAFETY: no pointers.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(
        fd >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new descriptor that nothing else owns; closed on drop.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    for f in frames {
        // SAFETY: the frame and the address outlive the call; the lengths
        // are theirs.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                std::ptr::from_ref(&sll).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            f.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// An nftables table `table` in namespace `ns` whose input chain drops UDP
/// to `port`: such datagrams die in `kfree_skb` as `NETFILTER_DROP`.
pub fn drop_udp_input(ns: &str, table: &str, port: u16) {
    crate::process::sh(&format!(
        "ip netns exec {ns} nft add table inet {table}
         ip netns exec {ns} nft add chain inet {table} in '{{ type filter hook input priority 0; }}'
         ip netns exec {ns} nft add rule inet {table} in udp dport {port} drop"
    ));
}
