//! Keeping the test runs on one CPU.

/// Test runs execute on the calling CPU: keep them all on one, the last
/// (interrupts and the rest of the machine favour CPU 0). Returns the
/// previous mask, to restore: processes started later inherit it.
pub(crate) fn pin_to_last_cpu() -> libc::cpu_set_t {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: zeroed cpu_set_t values, filled by the kernel or libc macros.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, size, &mut old);
        let n = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(n - 1, &mut set);
        libc::sched_setaffinity(0, size, &set);
        old
    }
}

pub(crate) fn restore_affinity(set: &libc::cpu_set_t) {
    // SAFETY: a mask sched_getaffinity filled.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
}
