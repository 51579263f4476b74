//! `-w` files as tcpdump's `-C`, `-G`, `-W` and `-z` rotate them: when
//! the next file starts (checked before each record, as tcpdump), what it
//! is called, and what runs on the one closed. Each file is complete on
//! its own: the source writes its header again.
//!
//! Names as tcpdump's `MakeFilename`: with `-G`, the `-w` name through
//! strftime(3) at the file's start; with `-C`, a number after it (none on
//! the first file unless `-W` is given), zero-padded to the width of
//! `-W`'s COUNT-1. Where xcap differs: `-G` windows are aligned to the
//! local clock rather than counted from the last switch, a file's time is
//! its window's start, decided by the packet's time stamp, and a new window
//! starts `-C`'s count at 0 again (tcpdump goes on counting).

use std::ffi::CString;
use std::io::{self, BufWriter, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::out::io_message;
use crate::plan::Rotation;

use super::RecordFile;

/// The bytes of a `-w` file (or stdout for '-'), counted as they are
/// written, so that `-C` sees the size a file will have, buffered bytes
/// included (tcpdump asks `ftell`).
pub struct Stream {
    out: BufWriter<Box<dyn Write>>,
    written: Arc<AtomicU64>,
}

impl Stream {
    fn new(out: Box<dyn Write>, written: Arc<AtomicU64>) -> Self {
        written.store(0, Ordering::Relaxed);
        Stream {
            out: BufWriter::new(out),
            written,
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The `-w` file being written, and the rotation that replaces it.
pub struct Files<F> {
    /// None once `-W` files were written with `-G` alone (the capture
    /// then stops).
    file: Option<F>,
    /// The current file's name.
    name: String,
    written: Arc<AtomicU64>,
    rotation: Option<Rotator>,
}

/// What a record may go to.
#[derive(Debug, PartialEq, Eq)]
pub enum Room {
    /// The current file (perhaps a new one).
    Open,
    /// `-G` with `-W`: the last file is closed; the capture stops.
    LimitReached,
}

impl<F: RecordFile> Files<F> {
    /// The first file: `-w`'s name, or with rotation its first name.
    pub fn open(
        path: &str,
        rotation: Option<&Rotation>,
        open: impl FnOnce(Stream) -> io::Result<F>,
    ) -> io::Result<Self> {
        let rotation = rotation.map(|r| Rotator::new(r, path, now()));
        let name = match &rotation {
            Some(r) => r.name(),
            None => path.to_owned(),
        };
        let written = Arc::new(AtomicU64::new(0));
        let file = open(create(&name, &written)?).map_err(|e| named(&name, e))?;
        Ok(Files {
            file: Some(file),
            name,
            written,
            rotation,
        })
    }

    /// Before a record stamped `time_ns` (since 1970): a new file if
    /// `-G`'s window or `-C`'s size says so. Errors carry the file's name.
    pub fn before_record(
        &mut self,
        time_ns: u64,
        mut open: impl FnMut(Stream) -> io::Result<F>,
    ) -> io::Result<Room> {
        let Some(rotator) = &mut self.rotation else {
            return Ok(Room::Open);
        };
        if self.file.is_none() {
            return Ok(Room::LimitReached);
        }
        let seconds = (time_ns / 1_000_000_000) as i64;
        match rotator.after_window(seconds) {
            Switch::Keep => {}
            Switch::Stop(count) => {
                self.close()?;
                eprintln!("Maximum file limit reached: {count}");
                return Ok(Room::LimitReached);
            }
            Switch::To(name) => self.switch(name, &mut open)?,
        }
        let size = self.written.load(Ordering::Relaxed);
        if let Some(name) = self.rotation.as_mut().and_then(|r| r.after_size(size)) {
            self.switch(name, &mut open)?;
        }
        Ok(Room::Open)
    }

    /// The file records go to now.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether other files will be created (`-C`, `-G`).
    pub fn rotates(&self) -> bool {
        self.rotation.is_some()
    }

    /// A record written to the current file with `write`.
    pub fn write(&mut self, write: impl FnOnce(&mut F) -> io::Result<()>) -> io::Result<()> {
        match &mut self.file {
            Some(file) => write(file).map_err(|e| named(&self.name, e)),
            None => Err(io::Error::other("the last -W file is closed")),
        }
    }

    /// Everything written so far out of our buffers.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush().map_err(|e| named(&self.name, e)),
            None => Ok(()),
        }
    }

    /// At the end: the file flushed (`-z` does not run on it, as with
    /// tcpdump), and the `-z` commands still running waited for.
    pub fn finish(&mut self) -> io::Result<()> {
        let flushed = self.flush();
        if let Some(r) = &mut self.rotation {
            r.commands.wait_all();
        }
        flushed
    }

    /// The current file closed (and `-z` started on it), the next opened.
    fn switch(
        &mut self,
        name: String,
        open: &mut impl FnMut(Stream) -> io::Result<F>,
    ) -> io::Result<()> {
        self.close()?;
        let file = open(create(&name, &self.written)?).map_err(|e| named(&name, e))?;
        self.file = Some(file);
        self.name = name;
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush().map_err(|e| named(&self.name, e))?;
        }
        if let Some(r) = &mut self.rotation {
            r.commands.run_on(&self.name);
        }
        Ok(())
    }
}

/// `-w NAME` created (stdout for '-'), its byte count starting at 0.
fn create(name: &str, written: &Arc<AtomicU64>) -> io::Result<Stream> {
    let out: Box<dyn Write> = if name == "-" {
        Box::new(io::stdout())
    } else {
        Box::new(std::fs::File::create(name).map_err(|e| named(name, e))?)
    };
    Ok(Stream::new(out, written.clone()))
}

/// `e` with the file's name before its strerror text: every error of
/// [`Files`] names its file.
fn named(name: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{name}: {}", io_message(&e)))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What the rotation asks for before a record.
#[derive(Debug, PartialEq, Eq)]
enum Switch {
    Keep,
    /// Close the file and start this one.
    To(String),
    /// Close the file and stop: `-W` files written (the count).
    Stop(u32),
}

/// The rotation's state: where the current file stands in `-G`'s windows
/// and `-C`'s numbers.
struct Rotator {
    rule: Rotation,
    /// `-w`'s name, with its strftime patterns.
    template: String,
    /// Digits of `-C`'s number (0: the first file has none).
    width: usize,
    /// `-G`: the current window's end (seconds since 1970).
    window_end: i64,
    /// The time the name's strftime patterns are filled with.
    name_time: i64,
    /// `-C`'s number in the current name.
    number: u32,
    /// Files `-G` closed so far.
    time_files: u32,
    commands: PostCommands,
}

impl Rotator {
    fn new(rule: &Rotation, template: &str, start: i64) -> Self {
        let width = match (rule.size, rule.files) {
            (Some(_), Some(count)) => digits_below(count),
            _ => 0,
        };
        let window_end = rule
            .seconds
            .map_or(i64::MAX, |g| window_start(start, g as i64) + g as i64);
        Rotator {
            commands: PostCommands(rule.post_command.clone(), Vec::new()),
            rule: rule.clone(),
            template: template.to_owned(),
            width,
            window_end,
            name_time: start,
            number: 0,
            time_files: 0,
        }
    }

    /// The current file's name (tcpdump's `MakeFilename`).
    fn name(&self) -> String {
        let base = match self.rule.seconds {
            Some(_) => strftime(&self.template, self.name_time),
            None => self.template.clone(),
        };
        numbered(&base, self.number, self.width)
    }

    /// `-G`: a record at `seconds` past the current window starts the
    /// window it falls in, or stops after `-W` files (with no `-C`).
    fn after_window(&mut self, seconds: i64) -> Switch {
        let Some(g) = self.rule.seconds else {
            return Switch::Keep;
        };
        if seconds < self.window_end {
            return Switch::Keep;
        }
        let g = g as i64;
        self.name_time = window_start(seconds, g);
        self.window_end = self.name_time + g;
        self.time_files += 1;
        self.number = 0;
        match self.rule.files {
            Some(count) if self.rule.size.is_none() && self.time_files >= count => {
                Switch::Stop(count)
            }
            _ => Switch::To(self.name()),
        }
    }

    /// `-C`: a file larger than the size gives way to the next number
    /// (back to 0 after `-W`'s COUNT-1).
    fn after_size(&mut self, size: u64) -> Option<String> {
        let limit = self.rule.size?;
        if size <= limit {
            return None;
        }
        self.number += 1;
        if self.rule.files.is_some_and(|count| self.number >= count) {
            self.number = 0;
        }
        Some(self.name())
    }
}

/// tcpdump's file number after `base`: none for 0 without a width.
fn numbered(base: &str, number: u32, width: usize) -> String {
    if number == 0 && width == 0 {
        return base.to_owned();
    }
    format!("{base}{number:0width$}")
}

/// The digits of `count - 1` (tcpdump's `getWflagChars`): -W 10 numbers
/// files 0 to 9, one digit.
fn digits_below(count: u32) -> usize {
    let mut rest = count.saturating_sub(1);
    let mut digits = 0;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    digits
}

/// The start of the `g`-second window of local time that holds `t`
/// (seconds since 1970): windows are multiples of `g` since 1970 on the
/// local clock, so -G 3600 starts on the hour and -G 86400 at midnight.
fn window_start(t: i64, g: i64) -> i64 {
    let offset = local_offset(t);
    (t + offset).div_euclid(g) * g - offset
}

/// The local time zone's offset from UTC at `t`, in seconds.
fn local_offset(t: i64) -> i64 {
    local_tm(t).map_or(0, |tm| tm.tm_gmtoff)
}

fn local_tm(t: i64) -> Option<libc::tm> {
    let t = t as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`; a zeroed tm is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to locals, valid for the call.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    ok.then_some(tm)
}

/// `pattern` through strftime(3) at local time `t` (as tcpdump, up to
/// PATH_MAX bytes).
fn strftime(pattern: &str, t: i64) -> String {
    let (Ok(format), Some(tm)) = (CString::new(pattern), local_tm(t)) else {
        return pattern.to_owned();
    };
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: strftime writes at most buf.len() bytes into buf, reads the
    // NUL-terminated format and the tm, all valid for the call.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
            format.as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `-z CMD`: started on each closed file at the lowest priority, as
/// tcpdump, reaped as others finish and waited for at the end.
struct PostCommands(Option<String>, Vec<Child>);

impl PostCommands {
    fn run_on(&mut self, file: &str) {
        let Some(program) = &self.0 else {
            return;
        };
        self.1.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        let mut cmd = Command::new(program);
        cmd.arg(file).stdin(Stdio::null());
        // SAFETY: setpriority is async-signal-safe and touches only the
        // child.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => self.1.push(child),
            Err(e) => eprintln!("xcap: -z {program} {file}: {}", io_message(&e)),
        }
    }

    fn wait_all(&mut self) {
        for mut c in self.1.drain(..) {
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(size: Option<u64>, seconds: Option<u64>, files: Option<u32>) -> Rotation {
        Rotation {
            size,
            seconds,
            files,
            post_command: None,
        }
    }

    #[test]
    fn size_rotation_numbers_files_after_the_first_as_tcpdump() {
        let mut r = Rotator::new(&rule(Some(100), None, None), "out.pcap", 0);
        assert_eq!(r.name(), "out.pcap");
        assert_eq!(r.after_size(100), None, "not larger yet");
        assert_eq!(r.after_size(101), Some("out.pcap1".into()));
        assert_eq!(r.after_size(101), Some("out.pcap2".into()));
    }

    #[test]
    fn a_ring_pads_numbers_to_the_width_of_count_minus_one_and_wraps() {
        let mut r = Rotator::new(&rule(Some(1), None, Some(3)), "ring", 0);
        assert_eq!(r.name(), "ring0");
        let names: Vec<_> = (0..4).map(|_| r.after_size(2).unwrap()).collect();
        assert_eq!(names, ["ring1", "ring2", "ring0", "ring1"]);
        let r = Rotator::new(&rule(Some(1), None, Some(11)), "ring", 0);
        assert_eq!(r.name(), "ring00");
        assert_eq!(digits_below(10), 1);
        assert_eq!(digits_below(1), 0);
        assert_eq!(digits_below(101), 3);
    }

    #[test]
    fn time_windows_are_aligned_to_the_clock_and_name_files_by_their_start() {
        let g = 3600;
        let start = 1_700_000_000 + 17; // some seconds into an hour
        let mut r = Rotator::new(&rule(None, Some(g), None), "t-%s", start);
        assert_eq!(r.name(), format!("t-{start}"), "the first file: the start");
        let boundary = window_start(start, g as i64) + g as i64;
        assert_eq!((boundary + local_offset(boundary)) % g as i64, 0);
        assert_eq!(r.after_window(boundary - 1), Switch::Keep);
        assert_eq!(
            r.after_window(boundary + 5),
            Switch::To(format!("t-{boundary}"))
        );
        // A quiet hour: the next file is named by the window its packet is in.
        let later = boundary + 2 * g as i64 + 9;
        assert_eq!(
            r.after_window(later),
            Switch::To(format!("t-{}", later - 9))
        );
    }

    #[test]
    fn time_rotation_with_a_count_stops_after_count_files() {
        let mut r = Rotator::new(&rule(None, Some(1), Some(2)), "t-%s", 10);
        assert_eq!(r.after_window(11), Switch::To("t-11".into()));
        assert_eq!(r.after_window(12), Switch::Stop(2));
    }

    #[test]
    fn time_and_size_together_number_within_each_window() {
        let mut r = Rotator::new(&rule(Some(10), Some(1), Some(5)), "t-%s-", 10);
        assert_eq!(r.name(), "t-10-0");
        assert_eq!(r.after_size(11), Some("t-10-1".into()));
        assert_eq!(r.after_window(11), Switch::To("t-11-0".into()));
        assert_eq!(
            r.after_window(20),
            Switch::To("t-20-0".into()),
            "-W ignored"
        );
    }
}
