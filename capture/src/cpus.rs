//! The CPUs the kernel knows: *possible* ones size per-CPU map values and
//! per-CPU arrays of buffers; *online* ones get a buffer and a reader.
//! Both lists come from sysfs, written as ranges (`0-3,5,7-8`).

use crate::Error;

const POSSIBLE: &str = "/sys/devices/system/cpu/possible";
const ONLINE: &str = "/sys/devices/system/cpu/online";

/// How many CPUs may ever exist (the kernel sizes per-CPU values by it;
/// possible CPUs are numbered from 0 without gaps).
pub fn possible() -> Result<usize, Error> {
    Ok(read(POSSIBLE)?.len())
}

/// The CPUs online now.
pub fn online() -> Result<Vec<u32>, Error> {
    read(ONLINE)
}

fn read(path: &str) -> Result<Vec<u32>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Buffer(format!("{path}: {e}")))?;
    parse_ranges(text.trim()).ok_or_else(|| Error::Buffer(format!("{path}: cannot read {text:?}")))
}

/// `0-3,5` → `[0, 1, 2, 3, 5]`.
fn parse_ranges(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (first, last): (u32, u32) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let n = part.parse().ok()?;
                (n, n)
            }
        };
        if first > last {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::parse_ranges;

    #[test]
    fn ranges_and_single_cpus_are_listed_in_order() {
        assert_eq!(parse_ranges("0-3,5,7-8"), Some(vec![0, 1, 2, 3, 5, 7, 8]));
        assert_eq!(parse_ranges("0"), Some(vec![0]));
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert_eq!(parse_ranges("3-1"), None);
        assert_eq!(parse_ranges("a"), None);
    }
}
