//! The process that owns the matching packets' socket, for the
//! attribution rows: a UDP socket bound to the matching port in the
//! capturing namespace, held by a process of a command name of its own
//! ([`OWNER_COMM`]) in a cgroup with a container-style scope name, so that
//! `--pid`, `--comm`, `--cgroup` and `--container` each select it.
//!
//! xcap seeds the socket's owner from /proc at its start (the socket is
//! older), as it would for any running program. The socket is never read:
//! once its buffer is full the stack drops what arrives, the same for
//! every setup.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// The holder's command name (`comm`).
pub(super) const OWNER_COMM: &str = "xbench-owner";

/// Binds UDP port 9 (the filter's), says so, and sleeps until killed.
const HOLDER: &str = "import ctypes, signal, socket, sys
ctypes.CDLL(None).prctl(15, b'xbench-owner', 0, 0, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 9))
print('bound', flush=True)
signal.pause()";

/// The holder, running; killed and its cgroups removed on drop.
pub(super) struct SocketOwner {
    child: Child,
    parent: PathBuf,
    scope: PathBuf,
    /// Its pid, for `--pid`.
    pub(super) pid: String,
    /// Its cgroup's parent as a cgroup v2 path, for `--cgroup`.
    pub(super) cgroup: String,
    /// The container id its scope names, for `--container`.
    pub(super) container: String,
}

impl SocketOwner {
    /// Starts the holder in namespace `ns`, in a cgroup of its own.
    pub(super) fn start(ns: &str) -> Result<SocketOwner> {
        let mount = cgroup2_mount()?;
        let id = std::process::id();
        let name = format!("xcap-bench-{id}");
        let container = format!("{:016x}", 0xbe4c_0000_0000_0000u64 + u64::from(id)).repeat(4);
        let parent = mount.join(&name);
        let scope = parent.join(format!("docker-{container}.scope"));
        std::fs::create_dir_all(&scope).with_context(|| format!("{}", scope.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", HOLDER])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the socket owner (python3)")?;
        let pid = child.id();
        // From here its drop kills it and removes the cgroups.
        let mut holder = SocketOwner {
            child,
            parent,
            scope,
            pid: pid.to_string(),
            cgroup: format!("/{name}"),
            container,
        };
        std::fs::write(holder.scope.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("moving {pid} to {}", holder.scope.display()))?;
        let out = holder.child.stdout.take().context("the owner's stdout")?;
        let mut said = String::new();
        BufReader::new(out).read_line(&mut said)?;
        if said.trim() != "bound" {
            bail!("the socket owner did not bind UDP port 9");
        }
        Ok(holder)
    }
}

impl Drop for SocketOwner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.scope);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// Where cgroup v2 is mounted, from this process's mount table.
fn cgroup2_mount() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    mounts
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            right.starts_with("cgroup2 ").then(|| PathBuf::from(point))
        })
        .context("no cgroup v2 hierarchy mounted")
}
