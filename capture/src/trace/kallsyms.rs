//! Kernel addresses to symbol names, for stacks.

/// Kernel symbols from `/proc/kallsyms`, for drop locations.
pub struct Kallsyms {
    syms: Vec<(u64, String)>,
}

impl Kallsyms {
    pub fn load() -> Kallsyms {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_owned()))
            })
            .collect();
        syms.sort_unstable();
        Kallsyms { syms }
    }

    /// `func+0xoff`, or the address.
    pub fn resolve(&self, addr: u64) -> String {
        match self.syms.partition_point(|(a, _)| *a <= addr) {
            0 => format!("{addr:#x}"),
            i => {
                let (a, n) = &self.syms[i - 1];
                format!("{n}+{:#x}", addr - a)
            }
        }
    }
}
