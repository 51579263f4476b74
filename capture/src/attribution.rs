//! Who sent each packet, and the process filters (`capture-bpf`'s
//! `owner.rs` is the kernel side).
//!
//! `Attribution::start` does, before the TC or tracing programs are attached
//! (for a tracing capture through `Attribution::start_beside`):
//! 1. fills the selection maps of the process filters ([`Who`]): pids
//!    (and, when following children, the descendants found now), command
//!    names, and cgroup ids (each `--cgroup` and `--container` with every
//!    cgroup below it, as the tree is at start);
//! 2. links the owner programs to the root of the cgroup v2 hierarchy, so
//!    every socket made, bound, connected or used for a datagram from now
//!    on records its process;
//! 3. seeds the sockets that already exist: for every process, every inet
//!    socket in /proc/PID/fd is taken with `pidfd_getfd` and its owner
//!    written to the socket storage with the fd as key (unless the
//!    programs got there first);
//! 4. when following children, starts a thread that adds the new
//!    descendants of the selected processes every [`FOLLOW_INTERVAL`].
//!
//! Dropping it closes the links and stops the thread.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use capture_abi::live::Hdr;
use capture_abi::owner as abi;

use crate::procs::{all_pids, parent_of};
use crate::{cgroups, netns, object, Error};

/// What to attribute and which processes to keep ([`crate::Config::who`]).
/// Filters of one kind select any of their values; kinds are ANDed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Who {
    /// `--pid`: these processes.
    pub pids: Vec<u32>,
    /// With `pids`: their children too, found by polling /proc.
    pub follow_children: bool,
    /// `--comm`: threads of these command names (at most 15 bytes).
    pub comms: Vec<String>,
    /// `--cgroup`: these cgroups (paths in the v2 hierarchy or
    /// directories under its mount point) and every cgroup below them.
    pub cgroups: Vec<String>,
    /// `--container`: the cgroups whose path names a container id that
    /// starts with one of these.
    pub containers: Vec<String>,
}

impl Who {
    /// The `SELECT_*` bits of the filters asked for.
    pub fn select_bits(&self) -> u32 {
        let mut bits = 0;
        if !self.pids.is_empty() {
            bits |= abi::SELECT_PID;
        }
        if !self.comms.is_empty() {
            bits |= abi::SELECT_COMM;
        }
        if !self.cgroups.is_empty() || !self.containers.is_empty() {
            bits |= abi::SELECT_CGROUP;
        }
        bits
    }
}

/// The process behind a packet, as its record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Attribution was not asked for.
    NotAsked,
    Process(Process),
    /// No local socket: the packet is forwarded, or for no socket here.
    NoSocket,
    /// A socket with no process recorded (made by the kernel, or in
    /// TIME_WAIT; at a tracing hook also a SYN-ACK's request socket).
    Unknown,
    /// Tracing hooks: no socket on the packet where the hook saw it
    /// (received and not yet delivered, forwarded, or the kernel's own),
    /// and none can be looked up there.
    NoSocketYet,
}

/// A socket's owner: its last user from user space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    /// cgroup v2 id (see [`cgroups::Names`]).
    pub cgroup: u64,
    /// netns cookie (see [`netns::Names`]).
    pub netns: u64,
    pub comm: String,
}

/// The owner a record's header names.
pub(crate) fn owner_of(hdr: &Hdr) -> Owner {
    owner_from(hdr.owner_state, &hdr.owner)
}

/// The owner of a record or sample: its `OWNER_*` state and owner field.
pub(crate) fn owner_from(state: u8, owner: &abi::Owner) -> Owner {
    match state {
        abi::OWNER_FOUND => Owner::Process(process_from(owner)),
        abi::OWNER_NO_SOCKET => Owner::NoSocket,
        abi::OWNER_UNKNOWN => Owner::Unknown,
        abi::OWNER_NO_SOCKET_YET => Owner::NoSocketYet,
        _ => Owner::NotAsked,
    }
}

/// The `.rodata` settings of attribution for `who` (`None`: off):
/// [`abi::GLOBAL_ATTRIBUTION`] and [`abi::GLOBAL_SELECT`].
pub(crate) fn globals(who: Option<&Who>) -> [(&'static str, [u8; 4]); 2] {
    let (on, select) = match who {
        Some(who) => (1u32, who.select_bits()),
        None => (0, 0),
    };
    [
        (abi::GLOBAL_ATTRIBUTION, on.to_ne_bytes()),
        (abi::GLOBAL_SELECT, select.to_ne_bytes()),
    ]
}

fn process_from(o: &abi::Owner) -> Process {
    let end = o.comm.iter().position(|&c| c == 0).unwrap_or(o.comm.len());
    Process {
        pid: o.pid,
        tid: o.tid,
        cgroup: o.cgroup,
        netns: o.netns,
        comm: String::from_utf8_lossy(&o.comm[..end]).into_owned(),
    }
}

/// The record the kernel side keeps for `p`.
fn record_of(p: &Process) -> abi::Owner {
    abi::Owner {
        pid: p.pid,
        tid: p.tid,
        cgroup: p.cgroup,
        netns: p.netns,
        comm: comm_key(&p.comm),
    }
}

/// An owner record's bytes, as the socket storage takes them.
fn record_bytes(o: &abi::Owner) -> Vec<u8> {
    let mut b = Vec::with_capacity(abi::OWNER_BYTES);
    b.extend_from_slice(&o.pid.to_ne_bytes());
    b.extend_from_slice(&o.tid.to_ne_bytes());
    b.extend_from_slice(&o.cgroup.to_ne_bytes());
    b.extend_from_slice(&o.netns.to_ne_bytes());
    b.extend_from_slice(&o.comm);
    b
}

/// A command name as the kernel keeps it: 15 bytes at most, NUL-padded.
fn comm_key(comm: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    for (k, c) in key.iter_mut().zip(comm.bytes().take(15)) {
        *k = c;
    }
    key
}

/// How often the children of `--pid` processes are looked for.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);

/// Attribution, running; see the module docs.
pub struct Attribution {
    /// Closing them detaches the owner programs.
    _links: Vec<OwnedFd>,
    stop: Arc<AtomicBool>,
    follower: Option<JoinHandle<()>>,
    /// Sockets that existed at start and were given an owner.
    pub seeded: usize,
}

impl Drop for Attribution {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.follower.take() {
            let _ = t.join();
        }
    }
}

/// The socket storage map the programs share (made with BTF, which the
/// object loader does not load).
pub(crate) fn owners_map() -> Result<OwnedFd, Error> {
    bpf_sys::cgroup::sk_storage_create(abi::OWNERS_MAP, abi::OWNER_BYTES as u32).map_err(|e| {
        Error::Kernel(format!(
            "cannot make the socket storage map for attribution: {e} (it needs Linux 5.2)"
        ))
    })
}

impl Attribution {
    /// [`Attribution::start`] for a tracing capture, whose object stays
    /// open for its tracing programs: the owner programs are loaded beside
    /// them.
    pub(crate) fn start_beside(maps: &object::Maps, who: &Who) -> Result<Attribution, Error> {
        let owners = maps.load_beside(&abi::PROGRAMS)?;
        Attribution::start(&owners, who)
    }

    /// Steps 1-4 of the module docs, with the loaded capture object.
    pub(crate) fn start(loaded: &object::Loaded, who: &Who) -> Result<Attribution, Error> {
        let selection = Selection::from_maps(loaded)?;
        selection.fill(who)?;
        let links = link_owner_programs(loaded)?;
        let seeded = seed_existing_sockets(
            loaded
                .map(abi::OWNERS_MAP)
                .ok_or_else(|| Error::Load(format!("no map {}", abi::OWNERS_MAP)))?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let follower = if who.follow_children && !who.pids.is_empty() {
            let (stop, roots) = (stop.clone(), who.pids.clone());
            Some(
                std::thread::Builder::new()
                    .name("xcap-follow".into())
                    .spawn(move || follow_children(selection, roots, &stop))
                    .map_err(|e| Error::Config(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Attribution {
            _links: links,
            stop,
            follower,
            seeded,
        })
    }
}

/// The selection maps, with fds of their own (the follower thread
/// outlives the borrow of the object).
struct Selection {
    pids: OwnedFd,
    comms: OwnedFd,
    cgroups: OwnedFd,
}

impl Selection {
    fn from_maps(loaded: &object::Loaded) -> Result<Selection, Error> {
        let dup = |name: &str| {
            loaded
                .map(name)
                .ok_or_else(|| Error::Load(format!("no map {name}")))?
                .try_clone_to_owned()
                .map_err(|e| Error::Load(format!("map {name}: {e}")))
        };
        Ok(Selection {
            pids: dup(abi::SEL_PIDS_MAP)?,
            comms: dup(abi::SEL_COMMS_MAP)?,
            cgroups: dup(abi::SEL_CGROUPS_MAP)?,
        })
    }

    fn add_pid(&self, pid: u32) -> Result<(), Error> {
        put(&self.pids, &pid.to_ne_bytes(), "--pid")
    }

    /// Step 1.
    fn fill(&self, who: &Who) -> Result<(), Error> {
        for &pid in &who.pids {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(Error::Config(format!("--pid {pid}: no such process")));
            }
            self.add_pid(pid)?;
            if who.follow_children {
                for child in descendants(&[pid]) {
                    self.add_pid(child)?;
                }
            }
        }
        for comm in &who.comms {
            put(&self.comms, &comm_key(comm), "--comm")?;
        }
        if who.cgroups.is_empty() && who.containers.is_empty() {
            return Ok(());
        }
        let mount = cgroups::mount_point().map_err(Error::Config)?;
        for name in &who.cgroups {
            let dir = cgroups::resolve(&mount, name)
                .map_err(|e| Error::Config(format!("--cgroup {e}")))?;
            for (_, id) in cgroups::subtree(&dir) {
                put(&self.cgroups, &id.to_ne_bytes(), "--cgroup")?;
            }
        }
        for prefix in &who.containers {
            let mut found = 0;
            for (path, _) in cgroups::subtree(&mount) {
                let rel = path.strip_prefix(&mount).unwrap_or(&path);
                let named = cgroups::container_id(&rel.to_string_lossy())
                    .is_some_and(|id| id.starts_with(prefix.as_str()));
                if named {
                    for (_, id) in cgroups::subtree(&path) {
                        put(&self.cgroups, &id.to_ne_bytes(), "--container")?;
                        found += 1;
                    }
                }
            }
            if found == 0 {
                return Err(Error::Config(format!(
                    "--container {prefix}: no cgroup names a container id starting with it"
                )));
            }
        }
        Ok(())
    }
}

fn put(map: &OwnedFd, key: &[u8], what: &str) -> Result<(), Error> {
    bpf_sys::map_update(map.as_raw_fd(), key, &[1u8])
        .map_err(|e| Error::Config(format!("{what}: too many values ({e})")))
}

/// Step 2: a link per owner program on the root cgroup.
fn link_owner_programs(loaded: &object::Loaded) -> Result<Vec<OwnedFd>, Error> {
    let mount = cgroups::mount_point().map_err(|e| Error::Kernel(format!("attribution: {e}")))?;
    let root = std::fs::File::open(&mount)
        .map_err(|e| Error::Kernel(format!("attribution: {}: {e}", mount.display())))?;
    abi::PROGRAMS
        .iter()
        .map(|&name| {
            let (prog, attach) = loaded
                .cgroup_program(name)
                .ok_or_else(|| Error::Load(format!("no program {name}")))?;
            bpf_sys::cgroup::cgroup_link_create(prog, root.as_fd(), attach).map_err(|e| {
                Error::Kernel(format!(
                    "attribution: cannot link {name} to the cgroup {}: {e}",
                    mount.display()
                ))
            })
        })
        .collect()
}

const SYS_PIDFD_OPEN: libc::c_long = 434;
const SYS_PIDFD_GETFD: libc::c_long = 438;
/// `BPF_NOEXIST`: the programs' record, made since, is fresher.
const BPF_NOEXIST: u64 = 1;

/// Step 3; returns how many sockets got an owner.
fn seed_existing_sockets(owners: BorrowedFd<'_>) -> usize {
    let me = std::process::id();
    let cgroup_mount = cgroups::mount_point().ok();
    let mut done: HashSet<String> = HashSet::new();
    let mut seeded = 0;
    for pid in all_pids() {
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let sockets: Vec<(i32, String)> = fds
            .flatten()
            .filter_map(|e| {
                let target = std::fs::read_link(e.path()).ok()?;
                let target = target.to_string_lossy().into_owned();
                let fd = e.file_name().to_string_lossy().parse().ok()?;
                target.starts_with("socket:[").then_some((fd, target))
            })
            .filter(|(_, inode)| !done.contains(inode))
            .collect();
        if sockets.is_empty() {
            continue;
        }
        let Some(pidfd) = pidfd_open(pid) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cgroup = match (&cgroup_mount, cgroups::of_process(pid)) {
            (Some(mount), Some(path)) => {
                cgroups::id_of(&mount.join(path.trim_start_matches('/'))).unwrap_or(0)
            }
            _ => 0,
        };
        for (fd, inode) in sockets {
            let Some(socket) = pidfd_getfd(pidfd.as_fd(), fd) else {
                continue;
            };
            if !is_inet(socket.as_fd()) {
                continue;
            }
            let owner = Process {
                pid,
                tid: pid,
                cgroup,
                netns: netns::cookie_of_socket(socket.as_fd()).unwrap_or(0),
                comm: comm.trim_end().to_owned(),
            };
            let key = socket.as_raw_fd().to_ne_bytes();
            if bpf_sys::map_update_flags(
                owners.as_raw_fd(),
                &key,
                &record_bytes(&record_of(&owner)),
                BPF_NOEXIST,
            )
            .is_ok()
            {
                seeded += 1;
            }
            done.insert(inode);
        }
    }
    seeded
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: no pointers; the fd is checked.
    let fd = unsafe { libc::syscall(SYS_PIDFD_OPEN, pid as libc::c_int, 0) };
    // SAFETY: a fresh fd, ours alone.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> Option<OwnedFd> {
    // SAFETY: no pointers; the fd is checked.
    let got = unsafe { libc::syscall(SYS_PIDFD_GETFD, pidfd.as_raw_fd(), fd, 0) };
    // SAFETY: a fresh fd, ours alone.
    (got >= 0).then(|| unsafe { OwnedFd::from_raw_fd(got as i32) })
}

fn is_inet(socket: BorrowedFd<'_>) -> bool {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int out buffer and its length.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && (domain == libc::AF_INET || domain == libc::AF_INET6)
}

/// Every process whose parent is one of `roots` or one of their
/// descendants (from each /proc/PID/stat's ppid).
fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = roots.to_vec();
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Step 4: adds new descendants of `roots` until `stop`.
fn follow_children(selection: Selection, roots: Vec<u32>, stop: &AtomicBool) {
    let mut known: HashSet<u32> = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        for child in descendants(&roots) {
            if known.insert(child) {
                let _ = selection.add_pid(child);
            }
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_record_reads_back_as_written() {
        let p = Process {
            pid: 7,
            tid: 8,
            cgroup: 9,
            netns: 10,
            comm: "talker".into(),
        };
        let mut hdr: Hdr = capture_abi::read(&[0u8; capture_abi::live::HDR_BYTES]).unwrap();
        hdr.owner = record_of(&p);
        hdr.owner_state = abi::OWNER_FOUND;
        assert_eq!(owner_of(&hdr), Owner::Process(p));
        hdr.owner_state = abi::OWNER_NO_SOCKET;
        assert_eq!(owner_of(&hdr), Owner::NoSocket);
        assert_eq!(record_bytes(&hdr.owner).len(), abi::OWNER_BYTES);
    }

    #[test]
    fn long_command_names_are_cut_to_the_kernels_fifteen_bytes() {
        assert_eq!(
            &comm_key("a-very-long-command-name")[..],
            b"a-very-long-com\0"
        );
    }

    #[test]
    fn this_process_is_a_descendant_of_its_parent() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert!(descendants(&[parent]).contains(&me));
    }
}
