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

/// `--netns NAME|PATH|PID`: the namespace file it names (`ip netns`'s
/// /run/netns/NAME, a path to a namespace file, or /proc/PID/ns/net).
pub fn file_of(spec: &str) -> std::path::PathBuf {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        return format!("/proc/{spec}/ns/net").into();
    }
    if spec.contains('/') {
        return spec.into();
    }
    format!("/run/netns/{spec}").into()
}

/// Moves this process into the network namespace `spec` names, as `ip
/// netns exec` does: the namespace, then a mount namespace of its own with
/// a sysfs of that network namespace on /sys (what names interfaces
/// there), and cgroup v2 on /sys/fs/cgroup again (attribution reads it).
/// Must run before any thread starts: threads made later inherit it,
/// and the kernel refuses a new mount namespace to a threaded process.
pub fn enter(spec: &str) -> Result<(), String> {
    let path = file_of(spec);
    let file = std::fs::File::open(&path)
        .map_err(|e| format!("--netns {spec}: {}: {e}", path.display()))?;
    let fail = |what: &str| {
        format!(
            "--netns {spec}: {what}: {}",
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: a namespace fd we hold.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(fail("setns"));
    }
    // SAFETY: no pointers.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(fail("unshare (mount namespace)"));
    }
    let mount = |source: &std::ffi::CStr,
                 target: &std::ffi::CStr,
                 fstype: Option<&std::ffi::CStr>,
                 flags: libc::c_ulong| {
        // SAFETY: C strings that outlive the call; no data argument.
        unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.map_or(std::ptr::null(), |f| f.as_ptr()),
                flags,
                std::ptr::null(),
            )
        }
    };
    // Mounts made here stay here.
    if mount(c"none", c"/", None, libc::MS_REC | libc::MS_SLAVE) != 0 {
        return Err(fail("making / a slave mount"));
    }
    // SAFETY: a C string.
    unsafe { libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH) };
    if mount(c"sysfs", c"/sys", Some(c"sysfs"), 0) != 0 {
        return Err(fail("mounting its sysfs on /sys"));
    }
    // Without it attribution still finds the hierarchy through an
    // ancestor (see cgroups::mount_point).
    mount(c"cgroup2", c"/sys/fs/cgroup", Some(c"cgroup2"), 0);
    Ok(())
}
