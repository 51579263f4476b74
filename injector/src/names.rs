//! Matching a stub name against symbol names, including Rust's mangled
//! local symbols (`_ZN7capture11xcap_filter17h0123456789abcdefE`,
//! `_RNvCs1234_7capture11xcap_filter`) and C++ ones.

/// True when `symbol` is `stub`, or a mangled name one of whose path
/// components is exactly `stub` (length-prefixed, so `xcap_filter` does not
/// match `xcap_filter_tc`).
pub(crate) fn matches(symbol: &str, stub: &str) -> bool {
    if symbol == stub {
        return true;
    }
    if stub.is_empty() || !(symbol.starts_with("_Z") || symbol.starts_with("_R")) {
        return false;
    }
    let needle = format!("{}{}", stub.len(), stub);
    let bytes = symbol.as_bytes();
    symbol
        .match_indices(&needle)
        .any(|(i, _)| i > 0 && !bytes[i - 1].is_ascii_digit())
}

/// A readable form of a symbol name for messages: the last identifier of a
/// Rust or C++ mangled name (without the legacy hash), else the name itself.
pub(crate) fn short(symbol: &str) -> String {
    if !(symbol.starts_with("_Z") || symbol.starts_with("_R")) {
        return symbol.to_owned();
    }
    let b = symbol.as_bytes();
    let mut idents = Vec::new();
    let mut i = 2;
    while i < b.len() {
        if b[i].is_ascii_digit() && !b[i - 1].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n: usize = symbol[start..i].parse().unwrap_or(usize::MAX);
            if let Some(id) = symbol.get(i..i.saturating_add(n)).filter(|_| n > 0) {
                let is_hash = id.len() == 17
                    && id.starts_with('h')
                    && id[1..].bytes().all(|c| c.is_ascii_hexdigit());
                if !is_hash {
                    idents.push(id);
                }
                i += n;
                continue;
            }
        }
        i += 1;
    }
    match idents.last() {
        Some(last) => format!("{last} ({symbol})"),
        None => symbol.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_mangled() {
        assert!(matches("xcap_filter", "xcap_filter"));
        assert!(matches(
            "_ZN7capture11xcap_filter17h0123456789abcdefE",
            "xcap_filter"
        ));
        assert!(matches(
            "_RNvCs9c57sBitCI1_7capture11xcap_filter",
            "xcap_filter"
        ));
        assert!(!matches(
            "_RNvCs9c57sBitCI1_7capture14xcap_filter_tc",
            "xcap_filter"
        ));
        assert!(matches(
            "_RNvCs9c57sBitCI1_7capture14xcap_filter_tc",
            "xcap_filter_tc"
        ));
        assert!(!matches(
            "_ZN7capture111xcap_filter17h0123456789abcdefE",
            "xcap_filter"
        ));
        assert!(!matches("my_xcap_filter", "xcap_filter"));
        assert!(!matches("_R", ""));
        assert_eq!(
            short("_ZN7capture11xcap_filter17h0123456789abcdefE"),
            "xcap_filter (_ZN7capture11xcap_filter17h0123456789abcdefE)"
        );
        assert_eq!(
            short("_RNvCs9c57sBitCI1_7capture14xcap_filter_tc"),
            "xcap_filter_tc (_RNvCs9c57sBitCI1_7capture14xcap_filter_tc)"
        );
    }
}
