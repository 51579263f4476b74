//! Per-CPU perf buffers (`PERF_COUNT_SW_BPF_OUTPUT`), opened and read
//! without aya, so the wakeup policy can be chosen: aya 0.14 wakes the reader
//! on every sample, which costs a syscall round trip per packet.
//!
//! Each [`PerfRing`] is one `perf_event_open(cpu)` fd with `1 + pages` pages
//! mapped: the control page and the data ring. The kernel writes records at
//! `data_head`; the reader consumes up to it and publishes `data_tail`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Wakeup;

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const ATTR_WATERMARK: u64 = 1 << 14;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;
/// Offsets in `struct perf_event_mmap_page`.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;

/// A record read from the ring.
pub enum Record<'a> {
    /// The raw bytes `bpf_perf_event_output` sent (padded to 8 bytes).
    Sample(&'a [u8]),
    /// Samples the kernel dropped because the ring was full.
    Lost(u64),
}

pub struct PerfRing {
    fd: OwnedFd,
    base: *mut u8,
    mmap_len: usize,
    page: usize,
    size: usize,
    scratch: Vec<u8>,
}

// The mapping belongs to this value alone; it moves to its reader thread.
unsafe impl Send for PerfRing {}

impl PerfRing {
    /// Opens the BPF-output perf event of `cpu` with a ring of `pages`
    /// pages (a power of two).
    pub fn open(cpu: u32, pages: usize, wakeup: Wakeup) -> io::Result<PerfRing> {
        if !pages.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "perf buffer pages must be a power of two",
            ));
        }
        // struct perf_event_attr, PERF_ATTR_SIZE_VER8 (136 bytes).
        let mut attr = [0u8; 136];
        let put32 = |a: &mut [u8; 136], off: usize, v: u32| {
            a[off..off + 4].copy_from_slice(&v.to_ne_bytes())
        };
        let put64 = |a: &mut [u8; 136], off: usize, v: u64| {
            a[off..off + 8].copy_from_slice(&v.to_ne_bytes())
        };
        put32(&mut attr, 0, PERF_TYPE_SOFTWARE);
        put32(&mut attr, 4, 136);
        put64(&mut attr, 8, PERF_COUNT_SW_BPF_OUTPUT);
        put64(&mut attr, 16, 1); // sample_period
        put64(&mut attr, 24, PERF_SAMPLE_RAW);
        match wakeup {
            Wakeup::Events(n) => put32(&mut attr, 48, n.max(1)),
            Wakeup::Bytes(n) => {
                put64(&mut attr, 40, ATTR_WATERMARK);
                put32(&mut attr, 48, n.max(1));
            }
        }
        // SAFETY: a valid attr buffer; the kernel copies it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                -1 as libc::pid_t,
                cpu as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let page = page_size();
        let size = pages * page;
        let mmap_len = size + page;
        // The control page, then the data ring, as the perf ABI says.
        let base = map_shared(fd.as_raw_fd(), mmap_len, true, 0)?;
        let ring = PerfRing {
            fd,
            base,
            mmap_len,
            page,
            size,
            scratch: Vec::new(),
        };
        // SAFETY: plain ioctl on our fd.
        if unsafe { libc::ioctl(ring.fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ring)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: inside the control page, 8-aligned, shared with the kernel.
        unsafe { &*(self.base.add(DATA_HEAD) as *const AtomicU64) }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe { &*(self.base.add(DATA_TAIL) as *const AtomicU64) }
    }

    /// Waits up to `timeout_ms` for the kernel's wakeup (0: just check),
    /// or until `stop` is readable.
    pub fn wait(&self, timeout_ms: i32, stop: RawFd) {
        wait_readable_or(self.fd(), stop, timeout_ms);
    }

    /// Hands every record written so far to `f`, then frees their space.
    pub fn drain(&mut self, f: impl FnMut(Record<'_>)) {
        let head = self.head_now();
        self.drain_to(head, f);
    }

    /// Where the kernel has written up to (a position for [`Self::drain_to`]).
    pub fn head_now(&self) -> u64 {
        self.head().load(Ordering::Acquire)
    }

    /// Hands the records before `head` (from [`Self::head_now`]) to `f`,
    /// then frees their space.
    pub fn drain_to(&mut self, head: u64, mut f: impl FnMut(Record<'_>)) {
        let mut tail = self.tail().load(Ordering::Relaxed);
        // SAFETY: the data ring is `size` bytes after the control page.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.page), self.size) };
        while tail < head {
            let off = (tail % self.size as u64) as usize;
            let mut h = [0u8; 8];
            copy_wrapping(data, off, &mut h);
            let kind = u32::from_ne_bytes(h[0..4].try_into().unwrap());
            let len = u16::from_ne_bytes(h[6..8].try_into().unwrap()) as usize;
            if len < 8 || (head - tail) < len as u64 {
                // Cannot happen with a sane kernel; resynchronise at head.
                tail = head;
                break;
            }
            let rec: &[u8] = if off + len <= self.size {
                &data[off..off + len]
            } else {
                self.scratch.resize(len, 0);
                copy_wrapping(data, off, &mut self.scratch);
                &self.scratch
            };
            match kind {
                PERF_RECORD_SAMPLE if len >= 12 => {
                    let raw = u32::from_ne_bytes(rec[8..12].try_into().unwrap()) as usize;
                    let raw = raw.min(len - 12);
                    f(Record::Sample(&rec[12..12 + raw]));
                }
                PERF_RECORD_LOST if len >= 24 => {
                    f(Record::Lost(u64::from_ne_bytes(
                        rec[16..24].try_into().unwrap(),
                    )));
                }
                _ => {}
            }
            tail += len as u64;
        }
        self.tail().store(tail, Ordering::Release);
    }
}

fn copy_wrapping(data: &[u8], off: usize, out: &mut [u8]) {
    let first = (data.len() - off).min(out.len());
    out[..first].copy_from_slice(&data[off..off + first]);
    let rest = out.len() - first;
    out[first..].copy_from_slice(&data[..rest]);
}

impl Drop for PerfRing {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base.cast(), self.mmap_len) };
    }
}

/// Maps `len` bytes of `fd` at `offset`, shared, read-write or read-only.
pub(crate) fn map_shared(
    fd: RawFd,
    len: usize,
    writable: bool,
    offset: usize,
) -> io::Result<*mut u8> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: a fresh mapping of an fd the caller owns; the kernel checks
    // length and offset.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(base.cast())
}

/// Waits up to `timeout_ms` (0: just check; -1: no limit) for `fd` or
/// `stop` to be readable.
pub(crate) fn wait_readable_or(fd: RawFd, stop: RawFd, timeout_ms: i32) {
    wait_any_readable(&[fd], stop, timeout_ms);
}

/// Waits up to `timeout_ms` (0: just check; -1: no limit) for one of `fds`
/// or `stop` to be readable.
pub fn wait_any_readable(fds: &[RawFd], stop: RawFd, timeout_ms: i32) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .chain([&stop])
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p.len()` valid pollfds.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Puts the perf fd of `cpu` into the perf event array.
pub fn set_perf_fd(map_fd: RawFd, cpu: u32, perf_fd: RawFd) -> io::Result<()> {
    crate::sys::map_update(map_fd, &cpu.to_ne_bytes(), &(perf_fd as u32).to_ne_bytes())
}
