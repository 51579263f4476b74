//! The cgroup v2 tree, as attribution needs it: where it is mounted, the
//! id of a cgroup (the inode number of its directory, which
//! `bpf_get_current_cgroup_id` returns), the path of an id, and the
//! container id a path names.
//!
//! Container ids come from the path alone, so no container runtime is
//! needed: a 64-hex-digit component, bare (`/docker/<id>`, Kubernetes pod
//! cgroups) or in a systemd scope (`docker-<id>.scope`,
//! `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the cgroup v2 hierarchy is mounted (the first `cgroup2` mount):
/// in this mount namespace, or else as another process sees it, through
/// its /proc/PID/root: our ancestors first, then any process (`ip netns
/// exec` runs its command in a mount namespace of its own, whose fresh
/// sysfs hides the cgroup mounts; the shell that ran it still sees them).
pub fn mount_point() -> Result<PathBuf, String> {
    if let Some(point) = cgroup2_in("/proc/self/mountinfo") {
        return Ok(point);
    }
    let mut candidates = ancestors();
    candidates.extend(crate::procs::all_pids());
    candidates
        .into_iter()
        .find_map(|pid| {
            let point = cgroup2_in(&format!("/proc/{pid}/mountinfo"))?;
            let inside = Path::new("/proc")
                .join(pid.to_string())
                .join("root")
                .join(point.strip_prefix("/").unwrap_or(&point));
            inside.is_dir().then_some(inside)
        })
        .ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_string())
}

/// Our parent, its parent, and so on.
fn ancestors() -> Vec<u32> {
    let mut out = Vec::new();
    let mut pid = std::process::id();
    while let Some(parent) = crate::procs::parent_of(pid) {
        if parent == 0 || out.contains(&parent) {
            break;
        }
        out.push(parent);
        pid = parent;
    }
    out
}

/// The first cgroup2 mount point a mountinfo file lists.
fn cgroup2_in(mountinfo: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string(mountinfo).ok()?;
    mounts.lines().find_map(|line| {
        // "... mount-point options - fstype source options"
        let (left, right) = line.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(point))
    })
}

/// The id of the cgroup directory `dir`.
pub fn id_of(dir: &Path) -> Result<u64, String> {
    std::fs::metadata(dir)
        .map(|m| m.ino())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// A cgroup named on the command line: a directory under the mount point,
/// or a path in the hierarchy ("/system.slice/x.scope", as
/// /proc/PID/cgroup writes it).
pub fn resolve(mount: &Path, name: &str) -> Result<PathBuf, String> {
    let as_given = Path::new(name);
    if as_given.starts_with(mount) && as_given.is_dir() {
        return Ok(as_given.to_path_buf());
    }
    let inside = mount.join(name.trim_start_matches('/'));
    if inside.is_dir() {
        return Ok(inside);
    }
    Err(format!(
        "{name}: no such cgroup (neither a directory under {} nor a path in it)",
        mount.display()
    ))
}

/// `dir` and every cgroup below it, as (path, id).
pub fn subtree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if let Ok(id) = id_of(&d) {
            out.push((d.clone(), id));
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    out
}

/// The container id a cgroup path names, if any (see the module docs).
pub fn container_id(path: &str) -> Option<&str> {
    path.rsplit('/').find_map(|component| {
        let mut id = component.strip_suffix(".scope").unwrap_or(component);
        if let Some((_, after)) = id.rsplit_once('-') {
            id = after;
        }
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    })
}

/// The cgroup of process `pid`, as a path in the hierarchy.
pub fn of_process(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Paths of cgroup ids, read from the tree at start and again (at most
/// once a second) when an id is not known: cgroups made later are found,
/// one removed before it was named is not.
pub struct Names {
    mount: PathBuf,
    paths: HashMap<u64, String>,
    last_walk: Instant,
}

/// How long an unknown id waits before the tree is walked again.
const REWALK: Duration = Duration::from_secs(1);

impl Names {
    pub fn new() -> Names {
        let mount = mount_point().unwrap_or_else(|_| PathBuf::from("/sys/fs/cgroup"));
        let mut names = Names {
            mount,
            paths: HashMap::new(),
            last_walk: Instant::now(),
        };
        names.walk();
        names
    }

    fn walk(&mut self) {
        self.last_walk = Instant::now();
        for (path, id) in subtree(&self.mount) {
            let rel = path.strip_prefix(&self.mount).unwrap_or(&path);
            self.paths.insert(id, format!("/{}", rel.display()));
        }
    }

    /// The path of cgroup `id` in the hierarchy ("/" for the root).
    pub fn path(&mut self, id: u64) -> Option<&str> {
        if !self.paths.contains_key(&id) && self.last_walk.elapsed() >= REWALK {
            self.walk();
        }
        self.paths.get(&id).map(String::as_str)
    }
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

#[cfg(test)]
mod tests {
    use super::container_id;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn container_ids_are_found_in_runtime_scopes_and_bare_components() {
        for path in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/kubepods.slice/x/cri-containerd-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/docker/{ID}"),
        ] {
            assert_eq!(container_id(&path), Some(ID), "{path}");
        }
    }

    #[test]
    fn paths_without_a_64_digit_id_name_no_container() {
        assert_eq!(
            container_id("/user.slice/user-0.slice/session-1.scope"),
            None
        );
        assert_eq!(container_id("/"), None);
    }
}
