//! What live and tracing captures share: the state their reader threads
//! watch (stop, drain, wake the consumer), the counters, the clock offset
//! and the privilege check.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{cpus, object, Error, Stats};

/// What a capture shares with its reader threads (live and tracing alike).
pub(crate) struct Shared {
    pub(crate) draining: AtomicBool,
    pub(crate) perf_lost: AtomicU64,
    /// An eventfd, readable once `draining` is set: readers poll it with
    /// their ring, so none waits out a timeout (or sleeps on) after detach.
    pub(crate) stop: OwnedFd,
    /// Puts an empty batch in the consumer's queue ([`Waker`]); `None`
    /// after detach, so that the queue disconnects once the readers are done.
    pub(crate) wake_consumer: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl Shared {
    pub(crate) fn new() -> Result<Arc<Shared>, Error> {
        // SAFETY: eventfd has no memory preconditions; the fd is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::Buffer(format!(
                "eventfd: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Arc::new(Shared {
            draining: AtomicBool::new(false),
            perf_lost: AtomicU64::new(0),
            // SAFETY: a fresh fd, ours alone.
            stop: unsafe { OwnedFd::from_raw_fd(fd) },
            wake_consumer: Mutex::new(None),
        }))
    }

    pub(crate) fn stop_fd(&self) -> RawFd {
        self.stop.as_raw_fd()
    }

    pub(crate) fn wake_consumer(&self) -> MutexGuard<'_, Option<Box<dyn Fn() + Send>>> {
        self.wake_consumer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The programs' counters summed over CPUs, with the perf losses read
    /// so far. Live and tracing objects share the counters map's layout.
    pub(crate) fn stats(&self, counters: Option<BorrowedFd<'_>>) -> Stats {
        let mut s = Stats {
            perf_lost: self.perf_lost.load(Ordering::Relaxed),
            ..Stats::default()
        };
        let cpus = cpus::possible().unwrap_or(1);
        if let Some(map) = counters {
            let sum = |i: u32| object::percpu_sum(map, i, cpus).unwrap_or(0);
            s.seen = sum(capture_abi::COUNTER_SEEN);
            s.matched = sum(capture_abi::COUNTER_MATCHED);
            s.output_errors = sum(capture_abi::COUNTER_OUTPUT_ERRORS);
        }
        s
    }
}

/// Closes every link (detaching the programs), then tells the readers to
/// drain their rings and stop; a second call does nothing.
pub(crate) fn detach_links<L>(detached: &mut bool, links: &mut Vec<L>, shared: &Shared) {
    if *detached {
        return;
    }
    *detached = true;
    links.clear();
    // A program that was running when its link went away may still be
    // writing its sample: give it time before the final drain.
    std::thread::sleep(Duration::from_millis(20));
    shared.draining.store(true, Ordering::Release);
    // SAFETY: an 8-byte write to our eventfd.
    unsafe { libc::write(shared.stop_fd(), 1u64.to_ne_bytes().as_ptr().cast(), 8) };
    *shared.wake_consumer() = None;
}

/// Wakes a consumer waiting in `recv_timeout` (with an empty batch), from
/// any thread: e.g. the one that takes a signal, so that the consumer can
/// wait without a short timeout and still stop at once. Does nothing once
/// the capture is detached.
#[derive(Clone)]
pub struct Waker(pub(crate) Arc<Shared>);

impl Waker {
    pub fn wake(&self) {
        if let Some(wake) = self.0.wake_consumer().as_ref() {
            wake();
        }
    }
}

/// Waits for the readers to finish, after [`detach_links`].
pub(crate) fn join_readers<T>(rx: &mut Option<Receiver<T>>, readers: &mut Vec<JoinHandle<()>>) {
    // Readers blocked on a full channel get an error once it is gone.
    *rx = None;
    for r in readers.drain(..) {
        let _ = r.join();
    }
}

/// The next batch from the readers; `Disconnected` once the receiver is gone.
pub(crate) fn recv_batch<T>(
    rx: Option<&Receiver<T>>,
    timeout: Duration,
) -> Result<T, RecvTimeoutError> {
    match rx {
        Some(rx) => rx.recv_timeout(timeout),
        None => Err(RecvTimeoutError::Disconnected),
    }
}

pub(crate) fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// CLOCK_REALTIME - CLOCK_TAI, in ns (the kernel stamps with TAI, which
/// moves with the wall clock except for leap seconds; the offset is taken
/// once, at start).
pub(crate) fn tai_to_realtime_ns() -> i64 {
    let a = clock_ns(libc::CLOCK_TAI);
    let r = clock_ns(libc::CLOCK_REALTIME);
    let b = clock_ns(libc::CLOCK_TAI);
    r - (a + (b - a) / 2)
}

/// CAP_BPF (39), CAP_NET_ADMIN (12) and CAP_PERFMON (38) in the effective
/// set.
pub(crate) fn check_privileges() -> Result<(), Error> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    let Some(eff) = eff else { return Ok(()) };
    let missing: Vec<&str> = [(39, "CAP_BPF"), (12, "CAP_NET_ADMIN"), (38, "CAP_PERFMON")]
        .iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, n)| *n)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Privileges(missing.join(", ")))
    }
}
