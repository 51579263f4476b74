//! Loads the spliced capture object, live (XDP, TC) and tracing (`tp_btf`,
//! `fentry`) alike: [`Object::create`] makes its maps with the settings
//! given, then [`Object::load`] loads each program asked for.
//!
//! aya's loader is not used: creating one parses the kernel's whole BTF
//! (5 MB, about 30 ms on the build machine, more than everything else xcap
//! does before it captures), and the programs need none of it: they have no
//! CO-RE relocations and no kernel types (the tracing programs get their
//! field offsets in a global, and their attach target's BTF id in
//! [`Load::attach_btf_id`]). `aya-obj` parses the ELF and applies the map
//! and call relocations; the maps and programs are created with plain
//! `bpf(2)` calls (`bpf_sys`). The object's own BTF is not loaded either:
//! nothing here needs it (maps are created from their definitions, the
//! filter function is verified as a static subprogram, which it has to be
//! anyway as it takes packet pointers).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use aya_obj::{EbpfSectionKind, ProgramSection};
use cbpf2ebpf::ebpf::Insn;
use injector::fold::Frozen;

pub use crate::sys::Refused;
use crate::sys::{self, MapSpec};
use crate::{cpus, Error};

/// What [`Object::create`] sets before anything loads.
#[derive(Default)]
pub struct Settings<'a> {
    /// `.rodata` globals (name, bytes), frozen: the verifier sees constants.
    pub globals: &'a [(&'a str, &'a [u8])],
    /// Maps the caller made (name, fd), used instead of the object's.
    pub made: HashMap<String, OwnedFd>,
    /// `max_entries` of maps (name, entries) other than declared.
    pub max_entries: &'a [(&'a str, u32)],
    /// Bytes of the ring buffer template of an array of ring buffers; 0
    /// keeps the declared size.
    pub ring_bytes: u32,
    /// The spliced filters, inlined at their call sites where found
    /// ([`injector::inline`]); a filter not given here stays a call.
    pub inline: &'a [&'a [Insn]],
}

/// One program to load.
#[derive(Default)]
pub struct Load<'a> {
    pub name: &'a str,
    /// Tracing programs: the kernel BTF id of their target (see
    /// `bpf_sys::ProgLoad::attach_btf_id`).
    pub attach_btf_id: u32,
    /// Tracing programs attached to another BPF program.
    pub attach_prog_fd: Option<BorrowedFd<'a>>,
}

/// An object whose maps exist, and the programs loaded so far. Dropping it
/// closes them.
pub struct Object {
    obj: aya_obj::Object,
    maps: HashMap<String, OwnedFd>,
    /// Each frozen `.rodata` map's fd and value, for
    /// [`injector::fold::frozen_loads`].
    frozen: Vec<FrozenMap>,
    inline: Vec<Vec<Insn>>,
    programs: HashMap<String, OwnedFd>,
    linkages: HashMap<String, Linkage>,
}

/// A frozen `.rodata` map: its fd and its value.
type FrozenMap = (i32, Vec<u8>);

/// How a loaded program runs its filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// The filter's body replaced its call.
    Inlined,
    /// A bpf2bpf call, and why it was not inlined.
    Called(String),
}

impl std::fmt::Display for Linkage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Linkage::Inlined => f.write_str("inlined"),
            Linkage::Called(why) => write!(f, "called: {why}"),
        }
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Error {
        Error::Load(r.message)
    }
}

impl Object {
    /// Parses `elf`, sets the globals of `settings` in their data sections
    /// and creates every map but those the caller made. Perf event arrays
    /// and arrays of maps get one slot per possible CPU.
    pub fn create(elf: &[u8], settings: Settings<'_>) -> Result<Object, Error> {
        let Settings {
            globals,
            made,
            max_entries,
            ring_bytes,
            inline,
        } = settings;
        let mut obj = aya_obj::Object::parse(elf).map_err(load_err)?;
        obj.patch_map_data(globals.iter().map(|(n, v)| (*n, (*v, true))).collect())
            .map_err(load_err)?;
        let (maps, frozen) = create_maps(&obj, made, max_entries, ring_bytes)?;
        relocate(&mut obj, &maps)?;
        Ok(Object {
            obj,
            maps,
            frozen,
            inline: inline.iter().map(|f| f.to_vec()).collect(),
            programs: HashMap::new(),
            linkages: HashMap::new(),
        })
    }

    /// Loads program `load.name`: an XDP, TC classifier, `tp_btf` or
    /// `fentry` program of the object. A refusal names the program.
    pub fn load(&mut self, load: &Load<'_>) -> Result<(), Refused> {
        let name = load.name;
        let refused = |message: String| Refused {
            errno: None,
            message: format!("{name}: {message}"),
        };
        let prog = self
            .obj
            .programs
            .get(name)
            .ok_or_else(|| refused("no such program".into()))?;
        let kind = ProgramKind::of(&prog.section)
            .ok_or_else(|| refused("not an XDP, TC or tracing program".into()))?;
        let function = &self.obj.functions[&prog.function_key()];
        let (insns, linkage) = inline_filters(&instructions(function), &self.inline);
        // The settings the program reads are known now: their loads
        // become constants (the verifier prunes on them either way).
        let frozen: Vec<Frozen> = self
            .frozen
            .iter()
            .map(|(fd, data)| Frozen { fd: *fd, data })
            .collect();
        let insns = injector::fold::frozen_loads(&insns, &frozen).0;
        // A filter's loop callback: the kernel wants func_info for each
        // function then, which a small BTF of our own gives (the object's
        // BTF is not loaded, see the module docs).
        let btf = function_btf(&insns).map_err(refused)?;
        let fd = sys::prog_load(&bpf_sys::ProgLoad {
            name,
            prog_type: kind.prog_type,
            expected_attach_type: kind.expected_attach_type,
            flags: kind.flags,
            insns: &cbpf2ebpf::ebpf::to_bytes(&insns),
            license: &prog.license,
            kernel_version: prog.kernel_version.unwrap_or(0),
            func_info: btf.as_ref().map(|(fd, info)| (fd.as_fd(), &info[..])),
            attach_btf_id: load.attach_btf_id,
            attach_prog_fd: load.attach_prog_fd,
        })
        .map_err(|e| Refused {
            errno: e.errno,
            message: format!("{name}: {}", e.message),
        })?;
        self.linkages.insert(name.to_owned(), linkage);
        self.programs.insert(name.to_owned(), fd);
        Ok(())
    }

    /// How program `name` runs its filter.
    pub fn linkage(&self, name: &str) -> Option<&Linkage> {
        self.linkages.get(name)
    }

    pub fn map(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.maps.get(name).map(|f| f.as_fd())
    }

    pub fn program(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.programs.get(name).map(|f| f.as_fd())
    }
}

fn load_err(e: impl std::fmt::Display) -> Error {
    Error::Load(e.to_string())
}

/// How the kernel loads a program of a section.
struct ProgramKind {
    prog_type: u32,
    expected_attach_type: u32,
    flags: u32,
}

impl ProgramKind {
    fn of(section: &ProgramSection) -> Option<ProgramKind> {
        let kind = |prog_type, expected_attach_type, flags| ProgramKind {
            prog_type,
            expected_attach_type,
            flags,
        };
        Some(match *section {
            ProgramSection::Xdp { frags, .. } => kind(
                sys::PROG_TYPE_XDP,
                sys::BPF_XDP,
                if frags { sys::BPF_F_XDP_HAS_FRAGS } else { 0 },
            ),
            ProgramSection::SchedClassifier => kind(sys::PROG_TYPE_SCHED_CLS, 0, 0),
            ProgramSection::BtfTracePoint => kind(sys::PROG_TYPE_TRACING, sys::BPF_TRACE_RAW_TP, 0),
            ProgramSection::FEntry { sleepable } => kind(
                sys::PROG_TYPE_TRACING,
                sys::BPF_TRACE_FENTRY,
                if sleepable { sys::BPF_F_SLEEPABLE } else { 0 },
            ),
            _ => return None,
        })
    }
}

/// Creates every map of `obj` but those of `made`, and fills and freezes
/// the data sections; returns the maps by name and the frozen ones' values.
fn create_maps(
    obj: &aya_obj::Object,
    mut made: HashMap<String, OwnedFd>,
    max_entries_set: &[(&str, u32)],
    ring_bytes: u32,
) -> Result<(HashMap<String, OwnedFd>, Vec<FrozenMap>), Error> {
    let mut maps = HashMap::new();
    let mut frozen = Vec::new();
    for (name, map) in &obj.maps {
        if let Some(fd) = made.remove(name) {
            maps.insert(name.clone(), fd);
            continue;
        }
        let declared = map.max_entries();
        let max_entries = match max_entries_set.iter().find(|(n, _)| n == name) {
            Some(&(_, entries)) => entries,
            None if map.map_type() == sys::MAP_TYPE_PERF_EVENT_ARRAY && declared == 0
                || map.map_type() == sys::MAP_TYPE_ARRAY_OF_MAPS =>
            {
                cpus::possible()? as u32
            }
            None => declared,
        };
        // The verifier learns an inner map's type from a template passed at
        // creation; ring buffers must match it in size.
        let template = match map.inner() {
            Some(inner) => Some(
                sys::map_create(&MapSpec {
                    name,
                    map_type: inner.map_type(),
                    key_size: inner.key_size(),
                    value_size: inner.value_size(),
                    max_entries: if inner.map_type() == sys::MAP_TYPE_RINGBUF && ring_bytes != 0 {
                        ring_bytes
                    } else {
                        inner.max_entries()
                    },
                    flags: inner.map_flags(),
                    inner_map_fd: None,
                })
                .map_err(|e| Error::Load(format!("map {name} (inner): {e}")))?,
            ),
            None => None,
        };
        let fd = sys::map_create(&MapSpec {
            name,
            map_type: map.map_type(),
            key_size: map.key_size(),
            value_size: map.value_size(),
            max_entries,
            flags: map.map_flags(),
            inner_map_fd: template.as_ref().map(|t| t.as_raw_fd()),
        })
        .map_err(|e| Error::Load(format!("map {name}: {e}")))?;
        let kind = map.section_kind();
        let data_section = matches!(
            kind,
            EbpfSectionKind::Data | EbpfSectionKind::Rodata | EbpfSectionKind::Bss
        );
        if data_section && !map.data().is_empty() {
            sys::map_update(fd.as_raw_fd(), &0u32.to_ne_bytes(), map.data())
                .map_err(|e| Error::Load(format!("map {name}: {e}")))?;
        }
        if kind == EbpfSectionKind::Rodata {
            sys::map_freeze(fd.as_fd()).map_err(|e| Error::Load(format!("map {name}: {e}")))?;
            frozen.push((fd.as_raw_fd(), map.data().to_vec()));
        }
        maps.insert(name.clone(), fd);
    }
    Ok((maps, frozen))
}

/// Points the object's map references at the maps' fds and resolves its
/// calls.
fn relocate(obj: &mut aya_obj::Object, maps: &HashMap<String, OwnedFd>) -> Result<(), Error> {
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    let by_name: Vec<(String, i32, aya_obj::Map)> = obj
        .maps
        .iter()
        .map(|(n, m)| (n.clone(), maps[n].as_raw_fd(), m.clone()))
        .collect();
    obj.relocate_maps(
        by_name.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)),
        &text_sections,
    )
    .map_err(load_err)?;
    obj.relocate_calls(&text_sections).map_err(load_err)
}

/// A function's instructions as the translator's type.
fn instructions(function: &aya_obj::Function) -> Vec<Insn> {
    // SAFETY: bpf_insn is a repr(C) 8-byte struct (code, regs, off, imm),
    // and the slice covers exactly the function's instructions.
    let raw: &[[u8; 8]] = unsafe {
        std::slice::from_raw_parts(
            function.instructions.as_ptr().cast(),
            function.instructions.len(),
        )
    };
    raw.iter().map(|b| Insn::from_bytes(*b)).collect()
}

/// `insns` with each filter of `filters` found in them inlined at its call
/// sites, and how the program runs its filter.
fn inline_filters(insns: &[Insn], filters: &[Vec<Insn>]) -> (Vec<Insn>, Linkage) {
    let mut insns = insns.to_vec();
    let mut linkage = Linkage::Called("no filter in it".into());
    for body in filters {
        // A loop callback is a function of its own in the program.
        let body = match cbpf2ebpf::ebpf::function_starts(body).get(1) {
            Some(&callback) => &body[..callback],
            None => &body[..],
        };
        if let Some(at) = injector::inline::find_function(&insns, body) {
            // A refusal keeps the call, which is always right.
            linkage = match injector::inline::inline_calls(&insns, at) {
                Ok(done) => {
                    insns = done.insns;
                    Linkage::Inlined
                }
                Err(e) => Linkage::Called(e.to_string()),
            };
        }
    }
    (insns, linkage)
}

/// A loaded BTF and func_info records (`[insn_off, type_id]`) for it.
pub(crate) type FuncInfo = (OwnedFd, Vec<[u32; 2]>);

/// BTF and func_info records for a program that takes a function's
/// address (a filter's `bpf_loop` callback), which the kernel refuses
/// without them; `None` for other programs.
pub(crate) fn function_btf(insns: &[Insn]) -> Result<Option<FuncInfo>, String> {
    if !cbpf2ebpf::ebpf::takes_function_address(insns) {
        return Ok(None);
    }
    let starts = cbpf2ebpf::ebpf::function_starts(insns);
    let names: Vec<String> = (0..starts.len()).map(|i| format!("xcap_f{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut log = vec![0u8; 64 << 10];
    let btf = bpf_sys::btf_load(&bpf_sys::static_funcs_btf(&names), Some(&mut log))
        .map_err(|e| format!("BPF_BTF_LOAD: {e}: {}", bpf_sys::log_text(&log)))?;
    Ok(Some((btf, bpf_sys::static_func_info(&starts))))
}

/// A program that does nothing: `XDP_PASS`, or TCX's "next program".
/// Links are created with it while the filter compiles, then switched to
/// the capture program with [`crate::link::update`].
pub fn placeholder(xdp: bool) -> Result<OwnedFd, Error> {
    // r0 = XDP_PASS (2) or TCX_NEXT (-1); exit
    let imm: i32 = if xdp { 2 } else { -1 };
    let insns = cbpf2ebpf::ebpf::to_bytes(&[Insn::mov64_imm(0, imm), Insn::exit()]);
    sys::prog_load(&bpf_sys::ProgLoad {
        name: "xcap_wait",
        prog_type: if xdp {
            sys::PROG_TYPE_XDP
        } else {
            sys::PROG_TYPE_SCHED_CLS
        },
        expected_attach_type: if xdp { sys::BPF_XDP } else { 0 },
        flags: if xdp { sys::BPF_F_XDP_HAS_FRAGS } else { 0 },
        insns: &insns,
        license: c"GPL",
        ..Default::default()
    })
    .map_err(|e| Error::Load(e.message))
}

/// Sums a per-CPU array of u64 at `index`.
pub fn percpu_sum(map: BorrowedFd<'_>, index: u32, cpus: usize) -> Option<u64> {
    let mut values = vec![0u8; 8 * cpus];
    sys::map_lookup(map, &index.to_ne_bytes(), &mut values).ok()?;
    Some(
        values
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
            .sum(),
    )
}
