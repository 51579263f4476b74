//! Findings already reported and not fixed yet, recognised precisely so that
//! a fuzzing session can look past them: only with `XCAP_FUZZ_SKIP_KNOWN=1`
//! (`scripts/fuzz.sh --skip-known`). By default every finding fails, so CI
//! stays red until the translator is fixed. Each entry names its finding in
//! the report of issue 6; remove it when the fix lands.

use std::sync::OnceLock;

use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::Mode;

/// Whether known findings are skipped (`XCAP_FUZZ_SKIP_KNOWN` set, not `0`).
pub fn skipping() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| {
        std::env::var("XCAP_FUZZ_SKIP_KNOWN").is_ok_and(|v| !v.is_empty() && v != "0")
    })
}

/// The known finding `failure` (a load error or a wrong result, as text) of
/// `prog` translated for `mode` is, if any. None are open: F1 (offsets at
/// or past 2^31 in skb/probe mode laid out wrongly) was fixed in the
/// layout pass and is kept as regression files in fuzz/corpus.
pub fn classify(prog: &[Insn], mode: Mode, failure: &str) -> Option<&'static str> {
    let _ = (prog, mode, failure);
    None
}
