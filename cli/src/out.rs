//! Small output helpers.

use std::io;

/// `err`'s text without Rust's ` (os error N)` suffix, as C's `strerror`
/// prints it (tcpdump's messages have no suffix).
pub fn io_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// Whether the error chain holds a broken pipe (the reader of our stdout
/// went away, as with `xcap -d ... | head -1`): a quiet exit, not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// An `io::Error` with its strerror text, for `anyhow` context chains.
#[derive(Debug)]
pub struct IoError(pub io::Error);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&io_message(&self.0))
    }
}

impl std::error::Error for IoError {}

/// `HH:MM:SS.uuuuuu` in local time, as tcpdump prints timestamps.
pub fn local_time(secs: i64, usecs: i64) -> String {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`; a zeroed tm is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to locals, valid for the call.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return format!("{secs}.{usecs:06}");
    }
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        tm.tm_hour, tm.tm_min, tm.tm_sec, usecs
    )
}
