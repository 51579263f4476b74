//! # xcap-fuzzgen
//!
//! Input generators and differential checks shared by the cargo-fuzz targets
//! in `fuzz/` (thin wrappers) and the deterministic corpus replay in
//! `tests/fuzz_replay.rs`, which runs under plain `cargo test`.
//!
//! Every check takes raw fuzzer bytes, decodes them deterministically with
//! [`Src`] into a test case and returns `Err(report)` on a finding: a report
//! is a self-contained text (expression or program, packet hex, libpcap's
//! result and ours) fit for a bug report.
//!
//! - [`check_expr`]: a tcpdump expression from a grammar ([`expr`]) and
//!   packets biased toward valid headers ([`packet`]); libpcap compiles it,
//!   we translate it in all three modes (`Hook::Offline`) and compare the
//!   filter's result with libpcap's `bpf_filter()`.
//! - [`check_cbpf`]: a random cBPF program libpcap's interpreter runs safely
//!   and that terminates ([`cbpf_gen`]), same comparison.
//! - [`check_parsers`]: the cBPF text parsers and the injector's ELF reader
//!   never panic, and parsing round-trips through the printers.
//!
//! The `engines` argument selects where the translation runs: the VM alone
//! when fuzzing, VM and kernel in the replay test.

pub mod bounded;
pub mod cbpf_gen;
pub mod expr;
pub mod known;
pub mod packet;

use std::fmt::Write as _;

use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};
use xcap_runner::{Engine, Filter, RunFilter};

pub use packet::Packet;

/// All three access modes, as every check translates in each.
pub const MODES: [Mode; 3] = [Mode::Direct, Mode::Skb, Mode::Probe];

/// A deterministic reader of fuzzer bytes. Past the end every read returns
/// zero, so generators must make choice 0 the simplest (terminating) one.
pub struct Src<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Src<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Src { data, pos: 0 }
    }

    pub fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 | 1 => 0,
            2..=256 => self.byte() as usize % n,
            _ => self.u32() as usize % n,
        }
    }

    /// True with probability `num / 256` (false once exhausted).
    pub fn chance(&mut self, num: u8) -> bool {
        self.byte() < num
    }

    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }

    /// Up to `max` bytes of the remaining input, taken as they are.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let start = self.pos.min(self.data.len());
        let end = (start + max).min(self.data.len());
        self.pos = start + max;
        self.data[start..end].to_vec()
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// What a check did with its input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// libpcap refused the expression (or the input decoded to nothing).
    pub skipped: bool,
    /// (program, mode, engine, packet) comparisons made.
    pub cases: usize,
    /// Packets an engine could not take (kernel size limits).
    pub too_large: usize,
    /// Known findings skipped (see [`known`]; only when asked to).
    pub known: usize,
    /// Packets on which the program takes more backward jumps than the
    /// model follows (not compared; libpcap may not even return).
    pub beyond_loop_bound: usize,
    /// Packets on which libpcap never returns (a state repeats): the
    /// translation must return 0.
    pub endless: usize,
}

/// How many backward jumps the step model follows before it gives up:
/// past every generated budget ([`cbpf_gen::MAX_BUDGET`]) and every
/// `protochain` walk of a generated packet.
pub const MODEL_BOUND: u32 = 1 << 20;

/// `bytes` as hex, 32 bytes a line.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in bytes.chunks(32).enumerate() {
        if i > 0 {
            s.push('\n');
        }
        for b in chunk {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

fn listing(prog: &[Insn]) -> String {
    cbpf2ebpf::cbpf::dump::dump_d(prog)
}

/// Translates `prog` in every mode and compares every engine's result with
/// libpcap's interpreter on every packet. `what` names the input in reports.
pub fn compare(
    what: &str,
    prog: &[Insn],
    packets: &[Packet],
    engines: &[Engine],
    out: &mut Outcome,
) -> Result<(), String> {
    // Packets on which the program ends within the model's bound, with
    // libpcap's answer (checked against the model); where libpcap never
    // returns, xcap's answer is 0.
    let mut kept = Vec::new();
    let mut expected = Vec::new();
    for p in packets {
        let model = match bounded::model(prog, &p.data, p.wirelen, MODEL_BOUND) {
            bounded::Run::Ends(v) => v,
            bounded::Run::Endless => {
                out.endless += 1;
                kept.push(p.clone());
                expected.push(0);
                continue;
            }
            bounded::Run::TooLong => {
                out.beyond_loop_bound += 1;
                continue;
            }
        };
        let want = libpcap::filter(prog, &p.data, p.wirelen);
        if model != want {
            return Err(format!(
                "{what}\nharness bug: libpcap {want}, fuzzgen::bounded {model}\npacket ({} of {} bytes):\n{}\ncBPF:\n{}",
                p.data.len(),
                p.wirelen,
                hex(&p.data),
                listing(prog)
            ));
        }
        kept.push(p.clone());
        expected.push(want);
    }
    let packets = &kept[..];
    for mode in MODES {
        let opts = Options {
            mode,
            hook: Hook::Offline,
            gotol: xcap_runner::kernel_has_gotol(),
            ..Options::default()
        };
        let t = translate(prog, &opts).map_err(|e| {
            format!(
                "{what}\ntranslation failed in {mode:?} mode: {e}\ncBPF:\n{}",
                listing(prog)
            )
        })?;
        'engine: for &engine in engines {
            let filter = match Filter::load(engine, &t.insns, mode) {
                Ok(f) => f,
                Err(e)
                    if known::skipping()
                        && known::classify(prog, mode, &e.to_string()).is_some() =>
                {
                    out.known += 1;
                    continue;
                }
                Err(e) => {
                    let log = e.verifier_log().map(|l| l.join("\n")).unwrap_or_default();
                    return Err(format!(
                        "{what}\n{engine}/{mode:?}: load failed: {e}\n{log}\ncBPF:\n{}",
                        listing(prog)
                    ));
                }
            };
            for (p, &want) in packets.iter().zip(&expected) {
                if p.data.len() > filter.max_packet_len() {
                    out.too_large += 1;
                    continue;
                }
                out.cases += 1;
                let got = filter.run(&p.data, p.wirelen);
                if !matches!(got, Ok(g) if g == want) {
                    let got = match got {
                        Ok(g) => format!("{g}"),
                        Err(e) => format!("error: {e}"),
                    };
                    if known::skipping() && known::classify(prog, mode, &got).is_some() {
                        out.known += 1;
                        continue 'engine;
                    }
                    return Err(format!(
                        "{what}\n{engine}/{mode:?}: libpcap {want}, ours {got}\npacket ({} captured of {} bytes on the wire):\n{}\ncBPF:\n{}",
                        p.data.len(),
                        p.wirelen,
                        hex(&p.data),
                        listing(prog)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The `expr` target: an expression and 1-4 packets from `data`.
pub fn check_expr(data: &[u8], engines: &[Engine]) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let case = expr::Case::generate(&mut Src::new(data));
    let prog = match libpcap::compile(&case.expr, case.linktype, case.snaplen) {
        Ok(p) => p,
        Err(_) => {
            out.skipped = true;
            return Ok(out);
        }
    };
    // libpcap's answer is undefined there (it reads stack garbage).
    if cbpf_gen::reads_scratch_before_write(&prog) {
        out.skipped = true;
        return Ok(out);
    }
    let what = format!(
        "expression `{}` (linktype {}, snaplen {})",
        case.expr, case.linktype, case.snaplen
    );
    compare(&what, &prog, &case.packets, engines, &mut out)?;
    Ok(out)
}

/// The `cbpf` target: a random terminating cBPF program and 1-4 packets.
pub fn check_cbpf(data: &[u8], engines: &[Engine]) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let mut src = Src::new(data);
    let mut prog = cbpf_gen::program(&mut src);
    let packets = cbpf_gen::packets(&mut src);
    cbpf_gen::lengthen_loops(&mut prog, &mut src);
    if let Some(p) = packets.first() {
        // The generator's contract: libpcap's interpreter can run it.
        if let Err(e) = libpcap::try_filter(&prog, &p.data, p.wirelen) {
            return Err(format!(
                "generator bug: unsafe program ({e})\n{}",
                listing(&prog)
            ));
        }
    }
    let what = format!(
        "cBPF program (-ddd: {})",
        cbpf2ebpf::cbpf::dump::dump_ddd(&prog)
            .trim_end()
            .replace('\n', ",")
    );
    compare(&what, &prog, &packets, engines, &mut out)?;
    Ok(out)
}

/// The stub name the `parsers` target splices into ELF input.
pub const STUB: &str = "xcap_filter";

/// The `parsers` target. The first byte picks the input kind:
/// 0: arbitrary text to all three parsers; 1: generated `-ddd`/`-dd`-like
/// text; 2: ELF bytes to `injector::splice`; 3: a generated program printed
/// with `-dd`/`-ddd` must parse back to itself, and print with `-d` as
/// libpcap's `bpf_image()` does.
pub fn check_parsers(data: &[u8]) -> Result<Outcome, String> {
    use cbpf2ebpf::cbpf::{dump, parse};
    let mut src = Src::new(data);
    let kind = src.byte() % 4;
    match kind {
        0 | 1 => {
            let text = if kind == 0 {
                String::from_utf8_lossy(src.rest()).into_owned()
            } else {
                cbpf_gen::listing_text(&mut src)
            };
            for (name, result) in [
                ("parse_auto", parse::parse_auto(&text)),
                ("parse_dd", parse::parse_dd(&text)),
                ("parse_ddd", parse::parse_ddd(&text)),
            ] {
                if let Err(e) = result {
                    let msg = e.to_string();
                    if msg.contains('\n') || e.line == 0 {
                        return Err(format!("{name} on {text:?}: malformed error {msg:?}"));
                    }
                }
            }
        }
        2 => splice(src.rest())?,
        _ => {
            let prog = cbpf_gen::program(&mut src);
            // Our `-d` printer is libpcap's bpf_image().
            for (n, insn) in prog.iter().enumerate() {
                let (ours, theirs) = (dump::image(insn, n), libpcap::image(insn, n));
                if ours != theirs {
                    return Err(format!(
                        "image of {insn:?}: ours {ours:?}, libpcap's bpf_image {theirs:?}"
                    ));
                }
            }
            for (name, text) in [
                ("-dd", dump::dump_dd(&prog)),
                ("-ddd", dump::dump_ddd(&prog)),
            ] {
                match parse::parse_auto(&text) {
                    Ok(p) if p == prog => {}
                    other => {
                        return Err(format!(
                            "{name} listing does not parse back: {other:?}\n{text}"
                        ))
                    }
                }
            }
        }
    }
    Ok(Outcome::default())
}

#[cfg(feature = "injector")]
fn splice(elf: &[u8]) -> Result<(), String> {
    use cbpf2ebpf::ebpf::{Insn as EInsn, R0, R4};
    let filter = [EInsn::mov32_reg(R0, R4), EInsn::exit()];
    // Panics are the finding; errors are expected for most inputs.
    if let Ok(spliced) = injector::splice(elf, &[(STUB, &filter[..])]) {
        // What the injector wrote, it must read back.
        if let Err(e) = injector::splice(&spliced.elf, &[(STUB, &filter[..])]) {
            return Err(format!(
                "splice output does not splice again: {e}\ninput:\n{}",
                hex(elf)
            ));
        }
    }
    Ok(())
}

#[cfg(not(feature = "injector"))]
fn splice(_elf: &[u8]) -> Result<(), String> {
    Ok(())
}
