//! Network namespaces, as attribution names them. The kernel side knows a
//! socket's namespace by its cookie (`bpf_get_netns_cookie`); user space
//! learns the cookie of a namespace from a socket made in it
//! (`SO_NETNS_COOKIE`, Linux 5.14), and names it by its inode
//! (`net:[4026531840]`, as `/proc/PID/ns/net` links read).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const SO_NETNS_COOKIE: libc::c_int = 71;

/// The netns cookie of the namespace `socket` belongs to.
pub fn cookie_of_socket(socket: BorrowedFd<'_>) -> Option<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: an 8-byte out buffer and its length.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cookie)
}

/// The cookie of the calling thread's namespace.
pub fn own_cookie() -> Option<u64> {
    // SAFETY: no pointers; the fd is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd, ours alone.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    use std::os::fd::AsFd;
    cookie_of_socket(socket.as_fd())
}

/// The calling thread's namespace as `/proc/self/ns/net` names it.
pub fn own_name() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "net:[?]".into())
}

/// Names netns cookies: the capture's own namespace by its inode, others
/// by their cookie.
#[derive(Clone, Debug)]
pub struct Names {
    own: Option<(u64, String)>,
}

impl Names {
    /// The names as seen from the calling thread's namespace.
    pub fn here() -> Names {
        Names {
            own: own_cookie().map(|c| (c, own_name())),
        }
    }

    pub fn name(&self, cookie: u64) -> String {
        match &self.own {
            Some((own, name)) if *own == cookie => name.clone(),
            _ => format!("cookie:{cookie}"),
        }
    }
}
