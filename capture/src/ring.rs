//! BPF ring buffers (`BPF_MAP_TYPE_RINGBUF`), one per CPU, read without
//! libbpf: the XDP and TC programs write their records here.
//!
//! A ring is mapped as the kernel lays it out: the consumer page (ours to
//! write: `consumer_pos`), then, read-only, the producer page
//! (`producer_pos`) and the data pages, mapped twice in a row so that a
//! record that wraps around the end reads as one slice. Each record starts
//! with an 8-byte header: its length, with a busy bit (being written) and a
//! discard bit (dropped by the program), and a page offset we ignore.
//!
//! A reader that found nothing for a while sleeps without a timeout: it
//! sets its flag in `XCAP_ASLEEP` (an array map mapped here, a cache line
//! per CPU) and the next record written to its ring wakes it (see
//! `wake_if_asleep` in `capture-bpf`). An idle capture then costs no
//! wakeups at all, and the first packet after a quiet spell is read at
//! once rather than at the next poll timeout.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::perf::{map_shared, page_size, wait_any_readable, wait_readable_or, Record};

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const RECORD_HDR_BYTES: u64 = 8;

/// The programs' array of rings (`XCAP_RINGS`: an array of maps, indexed
/// by CPU), the rings in it and their readers' sleep flags (`XCAP_ASLEEP`).
pub struct Rings {
    pub array: OwnedFd,
    pub asleep: OwnedFd,
    pub rings: Vec<(u32, BpfRing)>,
}

/// Bytes of a reader's slot in the sleep flags: a cache line, so that the
/// program on one CPU does not read a line another CPU's reader writes.
const FLAG_SLOT_BYTES: usize = 64;

/// The sleep flags' map, mapped; shared by the rings' readers.
struct FlagPages {
    base: *mut u8,
    len: usize,
}

// Each reader touches its own slot only, atomically.
unsafe impl Send for FlagPages {}
unsafe impl Sync for FlagPages {}

impl Drop for FlagPages {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A reader's flag: its slot in the mapped `XCAP_ASLEEP`.
struct SleepFlag {
    pages: Arc<FlagPages>,
    offset: usize,
}

impl SleepFlag {
    fn get(&self) -> &AtomicU64 {
        // SAFETY: a slot inside the mapping, 64-byte aligned, which lives
        // as long as `pages`.
        unsafe { &*(self.pages.base.add(self.offset) as *const AtomicU64) }
    }
}

impl Rings {
    /// Creates the array, with one slot per possible CPU, and a ring of
    /// `bytes` bytes for each of `cpus`, put in at the CPU's index, and
    /// the sleep flags `asleep_name`, a slot per possible CPU. Each
    /// update of an array of maps waits for an RCU grace period (about 12
    /// ms here), so all go in one batch update, which waits once; callers
    /// run this on a thread while other work goes on.
    pub fn create(
        name: &str,
        asleep_name: &str,
        possible_cpus: u32,
        cpus: &[u32],
        bytes: u32,
    ) -> Result<Rings, String> {
        let asleep = crate::sys::map_create(&crate::sys::MapSpec {
            name: asleep_name,
            map_type: crate::sys::MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: FLAG_SLOT_BYTES as u32,
            max_entries: possible_cpus,
            flags: crate::sys::BPF_F_MMAPABLE,
            inner_map_fd: None,
            btf: None,
        })
        .map_err(|e| format!("map {asleep_name}: {e}"))?;
        let len = (possible_cpus as usize * FLAG_SLOT_BYTES).next_multiple_of(page_size());
        let pages = Arc::new(FlagPages {
            base: map_shared(asleep.as_raw_fd(), len, true, 0)
                .map_err(|e| format!("map {asleep_name}: {e}"))?,
            len,
        });
        let template =
            BpfRing::create_map(name, bytes).map_err(|e| format!("ring buffer {name}: {e}"))?;
        let array = crate::sys::map_create(&crate::sys::MapSpec {
            name,
            map_type: crate::sys::MAP_TYPE_ARRAY_OF_MAPS,
            key_size: 4,
            value_size: 4,
            max_entries: possible_cpus,
            flags: 0,
            inner_map_fd: Some(template.as_raw_fd()),
            btf: None,
        })
        .map_err(|e| format!("map {name}: {e}"))?;
        drop(template);
        let mut rings = Vec::new();
        for &cpu in cpus {
            let flag = SleepFlag {
                pages: pages.clone(),
                offset: cpu as usize * FLAG_SLOT_BYTES,
            };
            if cpu >= possible_cpus {
                return Err(format!("cpu {cpu} is online but not possible"));
            }
            let ring = BpfRing::create(&format!("xcap_ring{cpu}"), bytes, flag)
                .map_err(|e| format!("ring buffer of cpu {cpu}: {e}"))?;
            rings.push((cpu, ring));
        }
        let keys: Vec<u8> = rings.iter().flat_map(|(c, _)| c.to_ne_bytes()).collect();
        let fds: Vec<u8> = rings
            .iter()
            .flat_map(|(_, r)| (r.fd() as u32).to_ne_bytes())
            .collect();
        // One batch (one RCU grace period); kernels whose arrays of maps
        // have no batch update (5.10 answers ENOTSUPP) take them one by one.
        if crate::sys::map_update_batch(array.as_raw_fd(), &keys, &fds, rings.len() as u32).is_err()
        {
            for (key, fd) in keys.chunks_exact(4).zip(fds.chunks_exact(4)) {
                crate::sys::map_update(array.as_raw_fd(), key, fd)
                    .map_err(|e| format!("ring buffers: {e}"))?;
            }
        }
        Ok(Rings {
            array,
            asleep,
            rings,
        })
    }
}

pub struct BpfRing {
    fd: OwnedFd,
    consumer: *mut u8,
    producer: *mut u8,
    page: usize,
    size: usize,
    asleep: SleepFlag,
}

// The mappings belong to this value alone; it moves to its reader thread.
unsafe impl Send for BpfRing {}

impl BpfRing {
    /// Creates a ring of `bytes` bytes (a power-of-two number of pages)
    /// and maps it; its reader sleeps with `asleep` set.
    fn create(name: &str, bytes: u32, asleep: SleepFlag) -> io::Result<BpfRing> {
        BpfRing::map(BpfRing::create_map(name, bytes)?, bytes as usize, asleep)
    }

    fn create_map(name: &str, bytes: u32) -> io::Result<OwnedFd> {
        crate::sys::map_create(&crate::sys::MapSpec {
            name,
            map_type: crate::sys::MAP_TYPE_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: bytes,
            flags: 0,
            inner_map_fd: None,
            btf: None,
        })
    }

    fn map(fd: OwnedFd, size: usize, asleep: SleepFlag) -> io::Result<BpfRing> {
        let page = page_size();
        // The consumer page is ours to write; the producer page and the
        // data pages (mapped twice in a row) are the kernel's.
        let consumer = map_shared(fd.as_raw_fd(), page, true, 0)?;
        let producer = match map_shared(fd.as_raw_fd(), page + 2 * size, false, page) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: our mapping.
                unsafe { libc::munmap(consumer.cast(), page) };
                return Err(e);
            }
        };
        Ok(BpfRing {
            fd,
            consumer,
            producer,
            page,
            size,
            asleep,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the start of the consumer page, shared with the kernel.
        unsafe { &*(self.consumer as *const AtomicU64) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: the start of the producer page, shared with the kernel.
        unsafe { &*(self.producer as *const AtomicU64) }
    }

    /// Waits up to `timeout_ms` for unread records (0: just check), or
    /// until `stop` is readable.
    pub fn wait(&self, timeout_ms: i32, stop: RawFd) {
        wait_readable_or(self.fd(), stop, timeout_ms);
    }

    /// Waits, without a timeout, until a record is written or `stop` is
    /// readable. The programs wake only a reader whose flag is set, and look
    /// at it after committing their record: the flag is set, then (after a
    /// full barrier) poll looks for records, so a record is either seen
    /// here or its program sees the flag.
    pub fn sleep(&self, stop: RawFd) {
        BpfRing::sleep_all(std::slice::from_ref(self), stop);
    }

    /// [`Self::sleep`] on several rings at once: until one of them has a
    /// record.
    pub fn sleep_all(rings: &[BpfRing], stop: RawFd) {
        for r in rings {
            r.asleep.get().store(1, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        let fds: Vec<RawFd> = rings.iter().map(BpfRing::fd).collect();
        wait_any_readable(&fds, stop, -1);
        for r in rings {
            r.asleep.get().store(0, Ordering::Relaxed);
        }
    }

    /// Where the producers have reserved up to (a position for
    /// [`Self::drain_to`]).
    pub fn producer_now(&self) -> u64 {
        self.producer_pos().load(Ordering::Acquire)
    }

    /// Hands every record committed so far to `f`, then frees their space.
    /// Stops at the first record still being written.
    pub fn drain(&mut self, f: impl FnMut(Record<'_>)) {
        // Up to where the producer was when we started: going on while it
        // writes would hold the space back until the ring fills.
        let end = self.producer_now();
        self.drain_to(end, f);
    }

    /// Hands the records before `end` (from [`Self::producer_now`]) to `f`,
    /// then frees their space; stops early at a record still being
    /// written. Whether it got to `end`.
    pub fn drain_to(&mut self, end: u64, mut f: impl FnMut(Record<'_>)) -> bool {
        let mut pos = self.consumer_pos().load(Ordering::Relaxed);
        let mask = self.size as u64 - 1;
        while pos < end {
            let off = self.page + (pos & mask) as usize;
            // SAFETY: a record header inside the first data mapping; the
            // kernel writes its length last, with release semantics.
            let len_word = unsafe { &*(self.producer.add(off) as *const AtomicU32) };
            let len = len_word.load(Ordering::Acquire);
            if len & BUSY_BIT != 0 {
                break;
            }
            let bytes = (len & !(BUSY_BIT | DISCARD_BIT)) as usize;
            if bytes > self.size {
                // Cannot happen with a sane kernel; resynchronise at end.
                pos = end;
                break;
            }
            if len & DISCARD_BIT == 0 {
                // SAFETY: the record's data follows its header; the double
                // mapping makes it contiguous.
                let data = unsafe {
                    std::slice::from_raw_parts(
                        self.producer.add(off + RECORD_HDR_BYTES as usize),
                        bytes,
                    )
                };
                f(Record::Sample(data));
            }
            pos += (RECORD_HDR_BYTES + bytes as u64 + 7) & !7;
        }
        // Freed once per drain: the producer reads this line on every
        // reserve, so a store per record would bounce it between CPUs.
        self.consumer_pos().store(pos, Ordering::Release);
        pos >= end
    }
}

impl Drop for BpfRing {
    fn drop(&mut self) {
        // SAFETY: our mappings.
        unsafe {
            libc::munmap(self.consumer.cast(), self.page);
            libc::munmap(self.producer.cast(), self.page + 2 * self.size);
        }
    }
}
