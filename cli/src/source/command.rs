//! `xcap ... -- CMD ARGS...`: the command whose packets are captured. It
//! is forked held (waiting on a pipe before its exec), so that its pid is
//! selected and the programs are attached before it can make a socket;
//! released once the capture runs; and waited for, its exit status
//! becoming xcap's. It runs as the user who ran sudo, when there is one
//! (`SUDO_UID`, `SUDO_GID`), with xcap's stdin, stdout and stderr.
//!
//! A plain fork, not `std::process::Command`: its spawn returns only once
//! the child has exec'd, and this child execs only when released.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{anyhow, Result};

/// A command forked and held before its exec, or released and running.
pub struct Held {
    pid: libc::pid_t,
    /// Writing a byte lets the child exec (closing it too).
    release: Option<OwnedFd>,
    /// Its wait status, once it has exited.
    status: Option<libc::c_int>,
}

impl Held {
    /// Forks `argv`, holding it before the exec.
    pub fn start(argv: &[String]) -> Result<Held> {
        let program = argv.first().ok_or_else(|| anyhow!("-- needs a command"))?;
        // Everything the child needs, made before the fork (after it, the
        // child may only make async-signal-safe calls).
        let args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow!("-- {program}: an argument holds a NUL byte"))?;
        let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let failed = format!("xcap: -- {program}: cannot run it\n");
        let user = sudo_user();
        let mut fds = [0; 2];
        // SAFETY: an array of two fds for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(anyhow!("pipe: {}", io::Error::last_os_error()));
        }
        // SAFETY: fresh fds, ours alone.
        let (wait_end, release_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child only calls async-signal-safe functions (read,
        // setgroups, setgid, setuid, execvp, write, _exit) on memory made
        // before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(anyhow!("fork: {}", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: the forked child: async-signal-safe calls only, on
            // fds it holds and memory made before the fork.
            unsafe {
                // Only xcap may release it.
                libc::close(release_end.as_raw_fd());
                let mut byte = 0u8;
                let released = libc::read(wait_end.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
                let dropped = match user {
                    Some((uid, gid)) => {
                        libc::setgroups(0, std::ptr::null()) == 0
                            && libc::setgid(gid) == 0
                            && libc::setuid(uid) == 0
                    }
                    None => true,
                };
                if released == 1 && dropped {
                    libc::execvp(arg_ptrs[0], arg_ptrs.as_ptr());
                    libc::write(2, failed.as_ptr().cast(), failed.len());
                }
                libc::_exit(127);
            }
        }
        drop(wait_end);
        Ok(Held {
            pid,
            release: Some(release_end),
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the command exec.
    pub fn release(&mut self) {
        if let Some(pipe) = self.release.take() {
            // SAFETY: one byte from a live buffer to our pipe.
            unsafe { libc::write(pipe.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        }
    }

    /// Whether it has exited (noting its status).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            let mut status = 0;
            // SAFETY: our child's pid and an int for its status.
            if unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } == self.pid {
                self.status = Some(status);
            }
        }
        self.status.is_some()
    }

    /// Its exit status as a shell gives it: the code, or 128 + the signal
    /// that ended it.
    pub fn exit_code(&self) -> Option<u8> {
        let status = self.status?;
        Some(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status) as u8
        } else {
            128u8.wrapping_add(libc::WTERMSIG(status) as u8)
        })
    }
}

impl Drop for Held {
    /// A command never released (xcap failed to start) never runs; one
    /// still running when the capture ends (`-c`, a signal) keeps running.
    fn drop(&mut self) {
        if self.release.take().is_some() {
            // Closing the pipe lets it read 0 bytes: it exits with 127.
            let mut status = 0;
            // SAFETY: our child's pid and an int for its status.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// The user who ran sudo, if xcap runs under sudo as root.
fn sudo_user() -> Option<(u32, u32)> {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    Some((uid, gid))
}
