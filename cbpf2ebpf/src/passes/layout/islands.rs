//! Far jumps without `gotol`: jump islands.
//!
//! A jump whose target lies past a 16-bit offset goes to an *entry*
//! instead: a `ja` within reach, on the way to the target, that jumps on
//! to the target or to the next entry (as many hops as the distance
//! needs). Jumps to the same target share its entries. An *island* is the
//! entries at one place, a *site* between two items:
//!
//! - after an instruction control never falls through (`ja`, `exit`): the
//!   island costs only its entries;
//! - elsewhere, behind a `ja` over it: one more instruction, run by the
//!   code falling through.
//!
//! No island goes inside an `ld_imm64`, inside the span of a jump whose
//! offset is already fixed (an [`Item::Insn`] jump), or between a label
//! and its instruction.
//!
//! Placement iterates: lay out, find the jumps and entries that do not
//! reach, send each to an entry on the way to its target (the one furthest
//! along within reach, else a new one as far along as possible), repeat
//! until everything reaches. Every hop moves strictly toward its target in
//! the item order, which insertions never change, so no chain loops.
//! Entries that end up unused are dropped (which only shortens jumps), so
//! every instruction stays reachable, as the verifier requires.

use std::collections::{BTreeMap, HashMap};

use super::{fits, Item, Label};
use crate::ebpf::{op, Insn};
use crate::Error;

/// How far short of the 16-bit reach new entries go, leaving room for the
/// islands later placed between a jump and its entry. A placement that
/// does not settle starts again with the next margin: only programs with
/// thousands of far jumps to different targets need more than the first.
const MARGINS: [usize; 4] = [1 << 10, 1 << 12, 1 << 13, 1 << 14];

/// Rounds of one placement before it starts again with a larger margin
/// (two or three when it settles: each round places whole chains).
const ROUNDS: usize = 8;

const LD_IMM64: u8 = op::LD | op::DW | op::IMM;

/// What an island may cost at a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Site {
    /// Inside an `ld_imm64`, a fixed jump's span, or after a label.
    Forbidden,
    /// After an unconditional jump or `exit`.
    Free,
    /// Needs a `ja` over the island.
    Guarded,
}

/// A `ja` in an island.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The island's site: before `items[site]`.
    site: usize,
    /// The label the chain leads to.
    target: Label,
    /// Where this entry jumps: `target` or another entry's label.
    dest: Label,
}

/// Something that jumps to a label: a jump item or an entry.
#[derive(Clone, Copy, Debug)]
enum Source {
    Item(usize),
    Entry(usize),
}

/// Instruction positions for the current islands.
struct Placement {
    item_pc: Vec<usize>,
    site_pc: Vec<usize>,
    /// Every label: the function's, then one per entry.
    label_pc: Vec<usize>,
}

struct Islands<'a> {
    items: &'a [Item],
    /// Labels of the function; entry `e` has label `labels + e`.
    labels: usize,
    sites: Vec<Site>,
    /// Sorted indices of free and of usable (free or guarded) sites.
    free: Vec<usize>,
    usable: Vec<usize>,
    /// The item index of each label's `Bind`.
    bound_at: Vec<usize>,
    /// Per jump item: where it jumps now.
    dest: Vec<Label>,
    entries: Vec<Entry>,
    /// Site -> its entries, in order.
    islands: BTreeMap<usize, Vec<usize>>,
}

pub(super) fn run(items: &[Item], labels: usize) -> Result<Vec<Insn>, Error> {
    let mut isl = Islands::new(items, labels)?;
    isl.place_until_everything_reaches()?;
    isl.emit()
}

impl<'a> Islands<'a> {
    fn new(items: &'a [Item], labels: usize) -> Result<Self, Error> {
        let sites = sites(items)?;
        let pick = |want: &dyn Fn(Site) -> bool| -> Vec<usize> {
            (0..sites.len()).filter(|&g| want(sites[g])).collect()
        };
        let free = pick(&|s| s == Site::Free);
        let usable = pick(&|s| s != Site::Forbidden);
        let mut bound_at = vec![usize::MAX; labels];
        let mut dest = vec![Label(u32::MAX); items.len()];
        for (n, item) in items.iter().enumerate() {
            match *item {
                Item::Bind(l) => bound_at[l.0 as usize] = n,
                Item::Jump(_, l) => dest[n] = l,
                Item::Insn(_) => {}
            }
        }
        Ok(Islands {
            items,
            labels,
            sites,
            free,
            usable,
            bound_at,
            dest,
            entries: Vec::new(),
            islands: BTreeMap::new(),
        })
    }

    fn entry_label(&self, e: usize) -> Label {
        Label((self.labels + e) as u32)
    }

    /// The entry a label belongs to, if it is an entry's.
    fn entry_of(&self, l: Label) -> Option<usize> {
        (l.0 as usize).checked_sub(self.labels)
    }

    fn place(&self) -> Placement {
        let n = self.items.len();
        let mut p = Placement {
            item_pc: vec![usize::MAX; n],
            site_pc: vec![0; n + 1],
            label_pc: vec![usize::MAX; self.labels + self.entries.len()],
        };
        let mut pc = 0;
        for g in 0..=n {
            p.site_pc[g] = pc;
            if let Some(ids) = self.islands.get(&g) {
                pc += usize::from(self.sites[g] == Site::Guarded);
                for &e in ids {
                    p.label_pc[self.labels + e] = pc;
                    pc += 1;
                }
            }
            if g < n {
                p.item_pc[g] = pc;
                match self.items[g] {
                    Item::Insn(_) | Item::Jump(..) => pc += 1,
                    Item::Bind(l) => p.label_pc[l.0 as usize] = pc,
                }
            }
        }
        p
    }

    /// Every jump and entry that does not reach its destination, with its
    /// position, in program order.
    fn out_of_reach(&self, p: &Placement) -> Result<Vec<(Source, usize)>, Error> {
        let mut bad = Vec::new();
        for (g, ids) in &self.islands {
            for &e in ids {
                let at = p.label_pc[self.labels + e];
                if !fits(at, p.label_pc[self.entries[e].dest.0 as usize]) {
                    bad.push((Source::Entry(e), at));
                }
            }
            debug_assert!(self.sites[*g] != Site::Forbidden);
        }
        for (n, item) in self.items.iter().enumerate() {
            if let Item::Jump(..) = item {
                let to = p.label_pc[self.dest[n].0 as usize];
                if to == usize::MAX {
                    return Err(Error::Internal("jump to an unbound label"));
                }
                if !fits(p.item_pc[n], to) {
                    bad.push((Source::Item(n), p.item_pc[n]));
                }
            }
        }
        bad.sort_by_key(|&(_, at)| at);
        Ok(bad)
    }

    fn place_until_everything_reaches(&mut self) -> Result<(), Error> {
        for margin in MARGINS {
            if self.try_placing(i16::MAX as usize - margin)? {
                return Ok(());
            }
            self.start_again();
        }
        Err(Error::FarJumps)
    }

    /// Rounds of placement with new entries at most `reach` away; whether
    /// everything reaches in the end.
    fn try_placing(&mut self, reach: usize) -> Result<bool, Error> {
        for _ in 0..ROUNDS {
            let p = self.place();
            let mut work = self.out_of_reach(&p)?;
            if work.is_empty() {
                return Ok(true);
            }
            // Entries per target, by site (new ones join as they come).
            let mut by_target: HashMap<Label, BTreeMap<usize, usize>> = HashMap::new();
            for ids in self.islands.values() {
                for &e in ids {
                    let x = self.entries[e];
                    by_target.entry(x.target).or_default().insert(x.site, e);
                }
            }
            work.reverse();
            while let Some((src, at)) = work.pop() {
                let target = self.target_of(src);
                let (e, new) = self.entry_toward(&p, reach, &mut by_target, src, at, target)?;
                match src {
                    Source::Item(n) => self.dest[n] = self.entry_label(e),
                    Source::Entry(s) => self.entries[s].dest = self.entry_label(e),
                }
                // A new entry still out of reach continues the chain now,
                // at its estimated position.
                let e_at = p.site_pc[self.entries[e].site] + 1;
                if new && !fits(e_at, p.label_pc[target.0 as usize]) {
                    work.push((Source::Entry(e), e_at));
                }
            }
            // Entries left behind by rerouted jumps take no room next round.
            self.drop_unused_entries();
        }
        Ok(false)
    }

    fn start_again(&mut self) {
        self.entries.clear();
        self.islands.clear();
        for (n, item) in self.items.iter().enumerate() {
            if let Item::Jump(_, l) = item {
                self.dest[n] = *l;
            }
        }
    }

    /// The label a jump item or entry ultimately leads to.
    fn target_of(&self, src: Source) -> Label {
        match src {
            Source::Item(n) => match self.items[n] {
                Item::Jump(_, l) => l,
                _ => unreachable!("sources are jumps"),
            },
            Source::Entry(e) => self.entries[e].target,
        }
    }

    /// An entry for `target` strictly between `src` (at `at`) and the
    /// target, within `reach` of `at`: an existing one as far along as
    /// possible, else a new one. Returns it and whether it is new.
    fn entry_toward(
        &mut self,
        p: &Placement,
        reach: usize,
        by_target: &mut HashMap<Label, BTreeMap<usize, usize>>,
        src: Source,
        at: usize,
        target: Label,
    ) -> Result<(usize, bool), Error> {
        let w = self.window(p, reach, src, at, target);
        if w.reach.0 > w.reach.1 {
            // No site between: only a fixed jump's span could do that.
            return Err(Error::FarJumps);
        }
        let known = by_target.entry(target).or_default();
        if let Some((_, &e)) = w.furthest(known.range(w.reach.0..=w.reach.1)) {
            return Ok((e, false));
        }
        let site = self.new_site(&w)?;
        let e = self.entries.len();
        self.entries.push(Entry {
            site,
            target,
            dest: target,
        });
        self.islands.entry(site).or_default().push(e);
        known.insert(site, e);
        Ok((e, true))
    }

    /// The sites an entry for `src` may use.
    fn window(&self, p: &Placement, reach: usize, src: Source, at: usize, target: Label) -> Window {
        let bound = self.bound_at[target.0 as usize];
        let forward = p.label_pc[target.0 as usize] > at;
        // Strictly between the source and the target's `Bind`.
        let (lo, hi) = match (src, forward) {
            (Source::Item(n), true) => (n + 1, bound),
            (Source::Entry(e), true) => (self.entries[e].site + 1, bound),
            (Source::Item(n), false) => (bound + 1, n),
            (Source::Entry(e), false) => (bound + 1, self.entries[e].site.saturating_sub(1)),
        };
        // Within reach, and the far half of that.
        let pcs = &p.site_pc;
        if forward {
            let last = pcs
                .partition_point(|&s| s <= at + 1 + reach)
                .saturating_sub(1);
            let mid = pcs.partition_point(|&s| s < at + 1 + reach / 2);
            Window {
                forward,
                reach: (lo, hi.min(last)),
                half: (lo.max(mid), hi.min(last)),
            }
        } else {
            let first = pcs.partition_point(|&s| s + reach < at + 1);
            let mid = pcs.partition_point(|&s| s + reach / 2 <= at + 1);
            Window {
                forward,
                reach: (lo.max(first), hi),
                half: (lo.max(first), hi.min(mid.saturating_sub(1))),
            }
        }
    }

    /// Where a new entry goes: a site that costs no guard (free, or an
    /// island already there) in the far half of the window, else any
    /// usable site as far along as possible.
    fn new_site(&self, w: &Window) -> Result<usize, Error> {
        let island = if w.half.0 <= w.half.1 {
            w.furthest(self.islands.range(w.half.0..=w.half.1))
                .map(|(&g, _)| g)
        } else {
            None
        };
        let cheap = [w.furthest_of(&self.free, w.half), island]
            .into_iter()
            .flatten()
            .reduce(|a, b| if w.forward { a.max(b) } else { a.min(b) });
        cheap
            .or_else(|| w.furthest_of(&self.usable, w.reach))
            .ok_or(Error::FarJumps)
    }

    fn drop_unused_entries(&mut self) {
        let mut used = vec![false; self.entries.len()];
        let mut work: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i, Item::Jump(..)))
            .filter_map(|(n, _)| self.entry_of(self.dest[n]))
            .collect();
        while let Some(e) = work.pop() {
            if !std::mem::replace(&mut used[e], true) {
                work.extend(self.entry_of(self.entries[e].dest));
            }
        }
        for ids in self.islands.values_mut() {
            ids.retain(|&e| used[e]);
        }
        self.islands.retain(|_, ids| !ids.is_empty());
    }

    fn emit(&self) -> Result<Vec<Insn>, Error> {
        let p = self.place();
        let jump = |from: usize, to: usize| -> Result<i16, Error> {
            i16::try_from(to as i64 - (from as i64 + 1))
                .map_err(|_| Error::Internal("a jump island out of reach"))
        };
        let mut out = Vec::with_capacity(p.site_pc[self.items.len()]);
        for g in 0..=self.items.len() {
            if let Some(ids) = self.islands.get(&g) {
                if self.sites[g] == Site::Guarded {
                    let over = i16::try_from(ids.len())
                        .map_err(|_| Error::Internal("a jump island too large"))?;
                    out.push(Insn::ja(over));
                }
                for &e in ids {
                    let to = p.label_pc[self.entries[e].dest.0 as usize];
                    out.push(Insn::ja(jump(out.len(), to)?));
                }
            }
            match self.items.get(g) {
                Some(Item::Insn(i)) => out.push(*i),
                Some(Item::Jump(i, _)) => {
                    let mut i = *i;
                    i.off = jump(out.len(), p.label_pc[self.dest[g].0 as usize])?;
                    out.push(i);
                }
                Some(Item::Bind(_)) | None => {}
            }
        }
        Ok(out)
    }
}

/// Sites (item indices, inclusive ranges) an entry may go to.
struct Window {
    forward: bool,
    /// Within reach of the source, strictly before the target.
    reach: (usize, usize),
    /// The half of `reach` nearer the target.
    half: (usize, usize),
}

impl Window {
    /// The last (forward) or first (backward) of `it`, in site order.
    fn furthest<T>(&self, mut it: impl DoubleEndedIterator<Item = T>) -> Option<T> {
        if self.forward {
            it.next_back()
        } else {
            it.next()
        }
    }

    /// The furthest of the sorted `sites` inside `range`.
    fn furthest_of(&self, sites: &[usize], range: (usize, usize)) -> Option<usize> {
        let from = sites.partition_point(|&g| g < range.0);
        let to = sites.partition_point(|&g| g <= range.1).max(from);
        self.furthest(sites[from..to].iter().copied())
    }
}

fn is_jump(i: &Insn) -> bool {
    matches!(i.class(), op::JMP | op::JMP32) && !matches!(i.code & 0xf0, op::CALL | op::EXIT)
}

fn is_unconditional(i: &Insn) -> bool {
    i.code == op::JMP | op::EXIT || (is_jump(i) && i.code & 0xf0 == op::JA)
}

/// What an island would cost before each item (and after the last).
fn sites(items: &[Item]) -> Result<Vec<Site>, Error> {
    let mut sites: Vec<Site> = std::iter::once(Site::Forbidden)
        .chain(items.iter().map(|item| match item {
            Item::Bind(_) => Site::Forbidden,
            Item::Insn(i) if i.code == LD_IMM64 => Site::Forbidden,
            Item::Insn(i) | Item::Jump(i, _) if is_unconditional(i) => Site::Free,
            _ => Site::Guarded,
        }))
        .collect();
    // Jumps with a fixed offset: nothing may move between them and their
    // targets. `item_at[pc]` is the item of each instruction.
    let item_at: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| !matches!(i, Item::Bind(_)))
        .map(|(n, _)| n)
        .collect();
    let mut pc = 0usize;
    for (n, item) in items.iter().enumerate() {
        match item {
            Item::Bind(_) => continue,
            Item::Insn(i) if is_jump(i) => {
                let off = if i.code == op::JMP32 | op::JA {
                    i64::from(i.imm)
                } else {
                    i64::from(i.off)
                };
                let t = pc as i64 + 1 + off;
                let to = usize::try_from(t)
                    .ok()
                    .and_then(|t| item_at.get(t).copied())
                    .ok_or(Error::Internal("a fixed jump leaves the function"))?;
                let span = if to > n { n + 1..=to } else { to + 1..=n };
                for s in &mut sites[span] {
                    *s = Site::Forbidden;
                }
            }
            _ => {}
        }
        pc += 1;
    }
    Ok(sites)
}

#[cfg(test)]
mod tests {
    //! Random programs, far and near jumps both ways, checked on the
    //! output alone: every instruction of the input is there, in order,
    //! with only island `ja`s (tagged `imm` 0) between them; each jump and
    //! each fall-through, followed through islands, lands where it did;
    //! fixed jumps and `ld_imm64` stay whole; no island goes unused.

    use super::super::{run, Item, Label};
    use super::is_jump;
    use crate::ebpf::{op, Insn, R0, R1, R4};

    const LD_IMM64: u8 = op::LD | op::DW | op::IMM;

    /// xorshift64*, so the tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Every instruction's `imm` is its tag (its index + 1) so the checks
    /// can tell the input's instructions from the islands'.
    fn random_program(seed: u64, insns: usize, far_share: u64) -> Vec<Item> {
        let mut rng = Rng(seed | 1);
        let labels = insns / 8;
        // Labels at random places, in order.
        let mut at: Vec<usize> = (0..labels)
            .map(|_| rng.below(insns as u64) as usize)
            .collect();
        at.sort_unstable();
        let mut items = Vec::new();
        let mut next_label = 0;
        let mut tag = 0i32;
        let mut n = 0;
        while n < insns {
            while next_label < labels && at[next_label] <= n {
                items.push(Item::Bind(Label(next_label as u32)));
                next_label += 1;
            }
            tag += 1;
            let to = |rng: &mut Rng| {
                // Mostly near, sometimes anywhere (far, either way).
                let me = (n / 8) as i64;
                let l = if rng.below(100) < far_share {
                    rng.below(labels as u64) as i64
                } else {
                    (me + rng.below(64) as i64 - 32).clamp(0, labels as i64 - 1)
                };
                Label(l as u32)
            };
            match rng.below(100) {
                0..=59 => items.push(Item::Insn(Insn::mov64_imm(R0, tag))),
                60..=79 => {
                    let l = to(&mut rng);
                    items.push(Item::Jump(Insn::jmp_imm(op::JEQ, R1, tag, 0), l));
                }
                80..=86 => {
                    let l = to(&mut rng);
                    items.push(Item::Jump(Insn::new(op::JMP | op::JA, 0, 0, 0, tag), l));
                }
                87..=92 => items.push(Item::Insn(Insn::new(op::JMP | op::EXIT, 0, 0, 0, tag))),
                93..=95 if n + 2 < insns => {
                    items.push(Item::Insn(Insn::new(LD_IMM64, R0, 0, 0, tag)));
                    tag += 1;
                    items.push(Item::Insn(Insn::new(0, 0, 0, 0, tag)));
                    n += 1;
                }
                _ if n + 2 < insns => {
                    // A fixed jump over one instruction, as skb mode's
                    // prefix copy has.
                    items.push(Item::Insn(Insn::jmp_imm(op::JLE, R4, tag, 1)));
                    tag += 1;
                    items.push(Item::Insn(Insn::mov64_imm(R0, tag)));
                    n += 1;
                }
                _ => items.push(Item::Insn(Insn::mov64_imm(R0, tag))),
            }
            n += 1;
        }
        while next_label < labels {
            items.push(Item::Bind(Label(next_label as u32)));
            next_label += 1;
        }
        tag += 1;
        items.push(Item::Insn(Insn::new(op::JMP | op::EXIT, 0, 0, 0, tag)));
        items
    }

    /// Checks `out` against `items`; returns how many island instructions
    /// it added.
    fn check(items: &[Item], out: &[Insn]) -> usize {
        // Where each tagged instruction went; each label's instruction.
        let mut out_pc = std::collections::HashMap::new();
        for (pc, i) in out.iter().enumerate() {
            assert!(i.code != op::JMP32 | op::JA, "gotol at {pc}");
            if i.imm != 0 {
                assert!(out_pc.insert(i.imm, pc).is_none(), "tag {} twice", i.imm);
            }
        }
        let is_island = |pc: usize| out[pc].imm == 0;
        let land = |mut pc: usize| {
            // Follow island jumps (never more hops than the program is long).
            for _ in 0..out.len() {
                if !is_island(pc) {
                    return pc;
                }
                assert_eq!(out[pc].code, op::JMP | op::JA, "island at {pc} is not a ja");
                pc = (pc as i64 + 1 + i64::from(out[pc].off)) as usize;
            }
            panic!("island jumps loop");
        };
        let mut label_tag = std::collections::HashMap::new();
        let mut pending = Vec::new();
        let mut tagged: Vec<(Insn, Option<Label>)> = Vec::new();
        for it in items {
            let (i, label) = match *it {
                Item::Bind(l) => {
                    pending.push(l);
                    continue;
                }
                Item::Insn(i) => (i, None),
                Item::Jump(i, l) => (i, Some(l)),
            };
            for l in pending.drain(..) {
                label_tag.insert(l, i.imm);
            }
            tagged.push((i, label));
        }
        for (k, &(i, label)) in tagged.iter().enumerate() {
            let pc = out_pc[&i.imm];
            let o = out[pc];
            assert_eq!((o.code, o.dst, o.src), (i.code, i.dst, i.src));
            if let Some(l) = label {
                let to = land((pc as i64 + 1 + i64::from(o.off)) as usize);
                assert_eq!(out[to].imm, label_tag[&l], "jump tagged {} misses", i.imm);
            } else {
                assert_eq!(o.off, i.off, "fixed offset changed at tag {}", i.imm);
            }
            let falls = !(i.code == op::JMP | op::EXIT || i.code == op::JMP | op::JA);
            if falls && k + 1 < tagged.len() {
                let next = tagged[k + 1].0.imm;
                if i.code == LD_IMM64 || (label.is_none() && is_jump(&i)) {
                    // Nothing may come between.
                    assert_eq!(out[pc + 1].imm, next, "split after tag {}", i.imm);
                } else {
                    assert_eq!(
                        out[land(pc + 1)].imm,
                        next,
                        "fall-through after tag {}",
                        i.imm
                    );
                }
            }
        }
        // Every island instruction is used: reached from the input's.
        let mut seen = vec![false; out.len()];
        let mut work: Vec<usize> = (0..out.len()).filter(|&pc| !is_island(pc)).collect();
        while let Some(pc) = work.pop() {
            if pc >= out.len() || std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            let i = out[pc];
            if !(i.code == op::JMP | op::EXIT || i.code == op::JMP | op::JA) {
                work.push(pc + 1);
            }
            if is_jump(&i) {
                work.push((pc as i64 + 1 + i64::from(i.off)) as usize);
            }
        }
        let unused: Vec<usize> = (0..out.len()).filter(|&pc| !seen[pc]).collect();
        assert!(
            unused.iter().all(|&pc| !is_island(pc)),
            "unused island at {unused:?}"
        );
        out.len() - tagged.len()
    }

    #[test]
    fn programs_without_far_jumps_come_out_as_with_gotol() {
        for seed in 1..20 {
            let items = random_program(seed, 20_000, 50);
            let a = run(items.clone(), true).unwrap();
            let b = run(items.clone(), false).unwrap();
            assert_eq!(a, b);
            assert_eq!(check(&items, &b), 0);
        }
    }

    #[test]
    fn far_jumps_both_ways_reach_through_islands() {
        for (seed, insns, far) in [
            (3, 100_000, 1),
            (7, 150_000, 5),
            (11, 300_000, 20),
            (13, 70_000, 100),
        ] {
            let items = random_program(seed, insns, far);
            let out = run(items.clone(), false).unwrap();
            let added = check(&items, &out);
            let wide = run(items, true).unwrap();
            assert!(added > 0, "seed {seed}: no island");
            println!("seed {seed}: {insns} instructions, {added} island instructions ({} more with gotol)", wide.len() - insns);
        }
    }

    #[test]
    fn an_island_never_splits_a_fixed_jump_or_a_label() {
        // 45,000 instructions of fixed jumps over one instruction, with
        // one far jump over all of them: the island goes between a
        // fixed jump's target and the next fixed jump.
        let mut items = vec![Item::Jump(Insn::jmp_imm(op::JEQ, R1, 1, 0), Label(0))];
        let mut tag = 1;
        for _ in 0..15_000 {
            items.push(Item::Insn(Insn::jmp_imm(op::JLE, R4, tag + 1, 1)));
            items.push(Item::Insn(Insn::mov64_imm(R0, tag + 2)));
            items.push(Item::Insn(Insn::mov64_imm(R0, tag + 3)));
            tag += 3;
        }
        items.push(Item::Insn(Insn::new(op::JMP | op::EXIT, 0, 0, 0, tag + 1)));
        items.push(Item::Bind(Label(0)));
        items.push(Item::Insn(Insn::new(op::JMP | op::EXIT, 0, 0, 0, tag + 2)));
        let out = run(items.clone(), false).unwrap();
        assert!(check(&items, &out) > 0);
    }
}
