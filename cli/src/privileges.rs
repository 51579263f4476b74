//! Root given up once a capture is attached and its first file open, as
//! tcpdump's `-Z`: xcap becomes `-Z USER` (by default the user who ran
//! sudo, else a user `xcap` if there is one, else `nobody`), and its main
//! thread keeps only what a running capture needs:
//!
//! - CAP_NET_ADMIN and CAP_BPF: to attach to interfaces that appear
//!   (`-i any`), and to detach (clsact filters, promiscuous mode) at the
//!   end;
//! - CAP_DAC_OVERRIDE, only when `-C` or `-G` will create files in a
//!   folder the user cannot write.
//!
//! The other threads (the readers) keep nothing; `-z` commands start
//! without capabilities. The first file is given to the user, so that a
//! ring (`-W`) can reopen it.

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::out::IoError;
use crate::plan::RunAs;

/// The capabilities' numbers (linux/capability.h).
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_NET_ADMIN: u32 = 12;
const CAP_BPF: u32 = 39;

/// The user to become.
#[derive(Debug)]
pub struct User {
    pub name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

/// The user `-Z` names, found before anything is attached; none when
/// xcap does not run as root or `-Z root` keeps it.
pub fn user_to_become(run_as: &RunAs) -> Result<Option<User>> {
    // SAFETY: plain queries.
    let root = unsafe { libc::geteuid() == 0 || libc::getuid() == 0 };
    if !root {
        return Ok(None);
    }
    let name = match run_as {
        RunAs::Root => return Ok(None),
        RunAs::User(name) if name == "root" => return Ok(None),
        RunAs::User(name) => name.clone(),
        RunAs::Default => default_user(),
    };
    match lookup(&name)? {
        Some(user) if user.uid == 0 => Ok(None),
        Some(user) => Ok(Some(user)),
        None => bail!("Couldn't find user '{name}'"),
    }
}

/// The user who ran sudo, else `xcap` if it exists, else `nobody`.
fn default_user() -> String {
    if let Ok(name) = std::env::var("SUDO_USER") {
        if !name.is_empty() && name != "root" {
            return name;
        }
    }
    match lookup("xcap") {
        Ok(Some(_)) => "xcap".to_owned(),
        _ => "nobody".to_owned(),
    }
}

/// What the main thread keeps once it runs as the user.
pub struct Kept(Vec<(u32, &'static str)>);

impl Kept {
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|(_, n)| *n).collect()
    }
}

/// Becomes `user`, keeping CAP_NET_ADMIN, CAP_BPF and, when `rotates`
/// and the user cannot write the folder of `file`, CAP_DAC_OVERRIDE.
/// `file` (the first `-w` file, if any) becomes the user's.
pub fn become_user(user: &User, file: Option<&str>, rotates: bool) -> Result<Kept> {
    let failed = |what: &str| {
        anyhow!(
            "-Z {}: {what}: {}",
            user.name,
            IoError(io::Error::last_os_error())
        )
    };
    if let Some(path) = file.filter(|p| *p != "-") {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(IoError)
            .with_context(|| format!("-Z {}: {path}", user.name))?;
    }
    let name = CString::new(user.name.as_str()).map_err(|_| anyhow!("-Z: a name without NUL"))?;
    // SAFETY: plain process-attribute calls; `name` outlives them. glibc
    // applies the id changes to every thread.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(failed("PR_SET_KEEPCAPS"));
        }
        if libc::initgroups(name.as_ptr(), user.gid) != 0 {
            return Err(failed("initgroups"));
        }
        if libc::setresgid(user.gid, user.gid, user.gid) != 0 {
            return Err(failed("setresgid"));
        }
        if libc::setresuid(user.uid, user.uid, user.uid) != 0 {
            return Err(failed("setresuid"));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    let mut kept = vec![(CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_BPF, "CAP_BPF")];
    if rotates && !file.is_some_and(folder_writable) {
        kept.push((CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"));
    }
    set_capabilities(&kept).map_err(|e| anyhow!("-Z {}: capset: {}", user.name, IoError(e)))?;
    Ok(Kept(kept))
}

/// Whether the user (now the real user) may create files beside `file`.
fn folder_writable(file: &str) -> bool {
    let folder = match Path::new(file).parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(folder) = CString::new(folder.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path valid for the call. access() checks
    // with the real ids and, for a real user that is not root, without
    // capabilities.
    unsafe { libc::access(folder.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// The calling thread's effective and permitted sets become `caps`; its
/// inheritable set empty.
fn set_capabilities(caps: &[(u32, &str)]) -> io::Result<()> {
    let mut mask = [0u32; 2];
    for (cap, _) in caps {
        mask[(*cap / 32) as usize] |= 1 << (cap % 32);
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words of each set.
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = mask.map(|m| Data {
        effective: m,
        permitted: m,
        inheritable: 0,
    });
    // SAFETY: capset reads the header and two data structs, valid for
    // the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The password database's entry for `name`.
fn lookup(name: &str) -> Result<Option<User>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    // SAFETY: a zeroed passwd is valid; getpwnam_r fills it with pointers
    // into `buf`, which outlives their use here.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a local valid for the call.
    let r = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if r != 0 {
        return Err(anyhow!(
            "-Z {name}: {}",
            IoError(io::Error::from_raw_os_error(r))
        ));
    }
    if found.is_null() {
        return Ok(None);
    }
    // SAFETY: getpwnam_r succeeded: pw_name points to a C string in buf.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    Ok(Some(User {
        name,
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    }))
}
