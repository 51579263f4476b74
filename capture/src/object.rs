//! Loads the spliced capture object, for live and tracing captures alike:
//! [`Maps::create`] makes its maps and `.rodata` globals, then
//! [`Maps::load_programs`] loads the XDP/TC programs asked for and
//! [`Maps::load_tracing`] a tracing program (`tp_btf`, fentry, fexit) on
//! its target: a kernel tracepoint or function, or a loaded program.
//!
//! aya's loader is not used because creating one parses the kernel's whole
//! BTF (5 MB, about 30 ms on the build machine, more than everything else
//! xcap does before it captures), and the programs need none of it: they
//! have no CO-RE relocations and no kernel types (the tracing programs get
//! their field offsets in a global, and their target's BTF id from the one
//! parse of the kernel's BTF the tracing start makes). `aya-obj` still
//! parses the ELF and applies the map and call relocations; the maps and
//! programs are created with plain `bpf(2)` calls (`bpf_sys`). The
//! object's own BTF is not loaded either: nothing here needs it (maps are
//! created from their definitions, the filter function is verified as a
//! static subprogram, which it has to be anyway as it takes packet pointers).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use aya_obj::{EbpfSectionKind, Object, ProgramSection};
use cbpf2ebpf::ebpf::Insn;
use injector::fold::Frozen;

use crate::sys::{self, MapSpec};
use crate::Error;

const BPF_MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;

/// The maps and loaded programs of one object. Dropping it closes them.
pub struct Loaded {
    maps: HashMap<String, OwnedFd>,
    programs: HashMap<String, OwnedFd>,
    linkages: HashMap<String, Linkage>,
    /// The cgroup hook (`BPF_CGROUP_*`) of each cgroup program loaded.
    cgroup_hooks: HashMap<String, u32>,
}

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

/// An object whose maps exist and whose programs are not loaded yet: the
/// caller may fill maps meanwhile (see [`Maps::load_programs`]).
pub struct Maps {
    obj: Object,
    maps: HashMap<String, OwnedFd>,
    /// Each frozen `.rodata` map's fd and value, for
    /// [`injector::fold::frozen_loads`].
    frozen: Vec<(i32, Vec<u8>)>,
}

impl Maps {
    /// Parses `elf`, sets each global of `globals` (name, bytes) in its data
    /// section and creates every map but those of `made` (name, fd), made
    /// by the caller. Arrays of maps get one slot per possible CPU, and
    /// their ring buffers (the template here) `ring_bytes` bytes; the maps
    /// of `max_entries` (name, entries) that many entries.
    pub fn create(
        elf: &[u8],
        globals: &[(&str, &[u8])],
        ring_bytes: u32,
        mut made: HashMap<String, OwnedFd>,
        max_entries: &[(&str, u32)],
    ) -> Result<Maps, Error> {
        let mut obj = parse_with_globals(elf, globals)?;
        let mut maps = HashMap::new();
        let mut frozen = Vec::new();
        for (name, map) in &obj.maps {
            let fd = match made.remove(name) {
                Some(fd) => fd,
                None => {
                    let fd = create_map(name, map, ring_bytes, max_entries)?;
                    if let Some(data) = fill_data_section(name, map, fd.as_fd())? {
                        frozen.push((fd.as_raw_fd(), data));
                    }
                    fd
                }
            };
            maps.insert(name.clone(), fd);
        }
        relocate(&mut obj, &maps)?;
        Ok(Maps { obj, maps, frozen })
    }

    pub fn map(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.maps.get(name).map(|f| f.as_fd())
    }

    /// Loads the programs named in `programs` (XDP, TC classifier and
    /// cgroup socket programs). Each function of a program whose instructions are
    /// one of `inline` (the spliced filters) is inlined at its call sites
    /// ([`injector::inline`]).
    pub fn load_programs(self, programs: &[&str], inline: &[&[Insn]]) -> Result<Loaded, Error> {
        let loaded = self.load_each(programs, inline)?;
        Ok(Loaded {
            maps: self.maps,
            ..loaded
        })
    }

    /// Loads `programs` as [`Maps::load_programs`] does, keeping this
    /// object for more loads (the tracing capture's owner programs, next
    /// to its tracing programs): the result holds copies of the map fds.
    pub fn load_beside(&self, programs: &[&str]) -> Result<Loaded, Error> {
        let mut loaded = self.load_each(programs, &[])?;
        for (name, fd) in &self.maps {
            let copy = fd
                .try_clone()
                .map_err(|e| Error::Load(format!("map {name}: {e}")))?;
            loaded.maps.insert(name.clone(), copy);
        }
        Ok(loaded)
    }

    /// The programs of [`Maps::load_programs`], loaded, with no maps.
    fn load_each(&self, programs: &[&str], inline: &[&[Insn]]) -> Result<Loaded, Error> {
        let load_err = |what: String| Error::Load(what);
        let Maps { obj, frozen, .. } = self;
        let mut loaded = HashMap::new();
        let mut linkages = HashMap::new();
        let mut cgroup_hooks = HashMap::new();
        for &name in programs {
            let prog = obj
                .programs
                .get(name)
                .ok_or_else(|| load_err(format!("no program {name}")))?;
            let (prog_type, expected_attach_type, flags) = match prog.section {
                ProgramSection::Xdp { frags, .. } => (
                    sys::PROG_TYPE_XDP,
                    sys::BPF_XDP,
                    if frags { sys::BPF_F_XDP_HAS_FRAGS } else { 0 },
                ),
                ProgramSection::SchedClassifier => (sys::PROG_TYPE_SCHED_CLS, 0, 0),
                ProgramSection::CgroupSock { .. } | ProgramSection::CgroupSockAddr { .. } => {
                    let hook = attach_type(&prog.section).unwrap_or(0);
                    cgroup_hooks.insert(name.to_owned(), hook);
                    let prog_type = match prog.section {
                        ProgramSection::CgroupSock { .. } => bpf_sys::cgroup::PROG_TYPE_CGROUP_SOCK,
                        _ => bpf_sys::cgroup::PROG_TYPE_CGROUP_SOCK_ADDR,
                    };
                    (prog_type, hook, 0)
                }
                _ => {
                    return Err(load_err(format!(
                        "{name}: not an XDP, TC or cgroup program"
                    )))
                }
            };
            let (insns, linkage) = program_insns(obj, name, inline, frozen);
            linkages.insert(name.to_owned(), linkage);
            // A filter's loop callback: the kernel wants func_info for each
            // function then, which a small BTF of our own gives (the
            // object's BTF is not loaded, see the module docs).
            let btf = function_btf(&insns).map_err(|e| load_err(format!("{name}: {e}")))?;
            let fd = sys::prog_load(&bpf_sys::ProgLoad {
                name,
                prog_type,
                expected_attach_type,
                flags,
                insns: &cbpf2ebpf::ebpf::to_bytes(&insns),
                license: &prog.license,
                kernel_version: prog.kernel_version.unwrap_or(0),
                func_info: btf.as_ref().map(|(fd, info)| (fd.as_fd(), &info[..])),
                ..Default::default()
            })
            .map_err(|e| load_err(format!("{name}: {e}")))?;
            loaded.insert(name.to_owned(), fd);
        }
        Ok(Loaded {
            maps: HashMap::new(),
            programs: loaded,
            linkages,
            cgroup_hooks,
        })
    }
}

/// `elf` parsed, with each global of `globals` (name, bytes) set in its
/// data section.
fn parse_with_globals(elf: &[u8], globals: &[(&str, &[u8])]) -> Result<Object, Error> {
    let mut obj = Object::parse(elf).map_err(|e| Error::Load(e.to_string()))?;
    obj.patch_map_data(globals.iter().map(|(n, v)| (*n, (*v, true))).collect())
        .map_err(|e| Error::Load(e.to_string()))?;
    Ok(obj)
}

/// Creates the map `name`: arrays of maps and perf event arrays get one
/// slot per possible CPU, the maps of `max_entries` that many entries.
fn create_map(
    name: &str,
    map: &aya_obj::Map,
    ring_bytes: u32,
    max_entries: &[(&str, u32)],
) -> Result<OwnedFd, Error> {
    let mut entries = map.max_entries();
    if map.map_type() == BPF_MAP_TYPE_PERF_EVENT_ARRAY && entries == 0
        || map.map_type() == sys::MAP_TYPE_ARRAY_OF_MAPS
    {
        entries = possible_cpus()? as u32;
    }
    if let Some(&(_, n)) = max_entries.iter().find(|(n, _)| *n == name) {
        entries = n;
    }
    let template = map
        .inner()
        .map(|inner| inner_template(name, &inner, ring_bytes))
        .transpose()?;
    sys::map_create(&MapSpec {
        name,
        map_type: map.map_type(),
        key_size: map.key_size(),
        value_size: map.value_size(),
        max_entries: entries,
        flags: map.map_flags(),
        inner_map_fd: template.as_ref().map(|t| t.as_raw_fd()),
        btf: None,
    })
    .map_err(|e| Error::Load(format!("map {name}: {e}")))
}

/// The template of a map of maps' inner maps: the verifier learns their
/// type from it, and ring buffers must match it in size (`ring_bytes`).
fn inner_template(name: &str, inner: &aya_obj::Map, ring_bytes: u32) -> Result<OwnedFd, Error> {
    sys::map_create(&MapSpec {
        name,
        map_type: inner.map_type(),
        key_size: inner.key_size(),
        value_size: inner.value_size(),
        max_entries: if inner.map_type() == sys::MAP_TYPE_RINGBUF {
            ring_bytes
        } else {
            inner.max_entries()
        },
        flags: inner.map_flags(),
        inner_map_fd: None,
        btf: None,
    })
    .map_err(|e| Error::Load(format!("map {name} (inner): {e}")))
}

/// Writes a data section's contents into its map; freezes `.rodata` and
/// returns its value, for folding loads from it.
fn fill_data_section(
    name: &str,
    map: &aya_obj::Map,
    fd: BorrowedFd<'_>,
) -> Result<Option<Vec<u8>>, Error> {
    let kind = map.section_kind();
    let data_section = matches!(
        kind,
        EbpfSectionKind::Data | EbpfSectionKind::Rodata | EbpfSectionKind::Bss
    );
    if data_section && !map.data().is_empty() {
        sys::map_update(fd.as_raw_fd(), &0u32.to_ne_bytes(), map.data())
            .map_err(|e| Error::Load(format!("map {name}: {e}")))?;
    }
    if kind != EbpfSectionKind::Rodata {
        return Ok(None);
    }
    sys::map_freeze(fd).map_err(|e| Error::Load(format!("map {name}: {e}")))?;
    Ok(Some(map.data().to_vec()))
}

/// Points the programs' map references at the maps' fds, and resolves
/// their calls.
fn relocate(obj: &mut Object, maps: &HashMap<String, OwnedFd>) -> Result<(), Error> {
    let load_err = |e: &dyn std::fmt::Display| Error::Load(e.to_string());
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
    .map_err(|e| load_err(&e))?;
    obj.relocate_calls(&text_sections).map_err(|e| load_err(&e))
}

/// Where a tracing program attaches: a function of a loaded program, or
/// a kernel function or tracepoint.
pub struct AttachTarget<'a> {
    /// The loaded program; `None`: the kernel.
    pub prog: Option<BorrowedFd<'a>>,
    /// The target's type id in that program's BTF, or the kernel's: a
    /// function, or a tracepoint's `btf_trace_<name>` typedef.
    pub btf_id: u32,
}

/// Why a tracing program did not load.
#[derive(Debug)]
pub enum LoadError {
    /// `EPERM` before any verification: this kernel refuses BPF
    /// trampolines (fentry, fexit).
    Refused,
    /// Anything else, with the verifier's last words when it spoke.
    Other(String),
}

impl Maps {
    /// Loads the tracing program `name` (`tp_btf`, fentry or fexit) on
    /// `target`; a program may be loaded several times, once per target. The filters of `inline`
    /// are inlined as in [`Maps::load_programs`].
    pub fn load_tracing(
        &self,
        name: &str,
        target: AttachTarget<'_>,
        inline: &[&[Insn]],
    ) -> Result<OwnedFd, LoadError> {
        let prog = self
            .obj
            .programs
            .get(name)
            .ok_or_else(|| LoadError::Other(format!("no program {name}")))?;
        let expected_attach_type = match prog.section {
            ProgramSection::BtfTracePoint => sys::BPF_TRACE_RAW_TP,
            ProgramSection::FEntry { .. } => sys::BPF_TRACE_FENTRY,
            ProgramSection::FExit { .. } => sys::BPF_TRACE_FEXIT,
            _ => {
                return Err(LoadError::Other(format!(
                    "{name}: not a tp_btf, fentry or fexit program"
                )))
            }
        };
        let (insns, _) = program_insns(&self.obj, name, inline, &self.frozen);
        let btf = function_btf(&insns).map_err(LoadError::Other)?;
        let bytes = cbpf2ebpf::ebpf::to_bytes(&insns);
        let spec = bpf_sys::ProgLoad {
            name,
            prog_type: sys::PROG_TYPE_TRACING,
            expected_attach_type,
            insns: &bytes,
            license: &prog.license,
            func_info: btf.as_ref().map(|(fd, info)| (fd.as_fd(), &info[..])),
            attach_btf_id: target.btf_id,
            attach_prog: target.prog,
            ..Default::default()
        };
        match bpf_sys::prog_load(&spec, None) {
            Ok(fd) => Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(LoadError::Refused),
            // Again, with the verifier's log, to say why.
            Err(_) => sys::prog_load(&spec).map_err(LoadError::Other),
        }
    }
}

/// Program `name`'s instructions, the filters of `inline` inlined where
/// they are called (see [`Maps::load_programs`]) and the frozen settings
/// folded, and how it runs its filter.
fn program_insns(
    obj: &Object,
    name: &str,
    inline: &[&[Insn]],
    frozen: &[(i32, Vec<u8>)],
) -> (Vec<Insn>, Linkage) {
    let prog = &obj.programs[name];
    let function = &obj.functions[&prog.function_key()];
    // SAFETY: bpf_insn is a repr(C) 8-byte struct (code, regs, off, imm).
    let raw: &[[u8; 8]] = unsafe {
        std::slice::from_raw_parts(
            function.instructions.as_ptr().cast(),
            function.instructions.len(),
        )
    };
    let mut insns: Vec<Insn> = raw.iter().map(|b| Insn::from_bytes(*b)).collect();
    let mut linkage = Linkage::Called("no filter in it".into());
    for body in inline {
        // A loop callback is a function of its own in the program.
        let body = match cbpf2ebpf::ebpf::function_starts(body).get(1) {
            Some(&callback) => &body[..callback],
            None => body,
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
    // The settings the program reads are known now: their loads
    // become constants (the verifier prunes on them either way).
    let frozen: Vec<Frozen> = frozen
        .iter()
        .map(|(fd, data)| Frozen { fd: *fd, data })
        .collect();
    insns = injector::fold::frozen_loads(&insns, &frozen).0;
    (insns, linkage)
}

impl Loaded {
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

    /// A loaded cgroup program and its hook (`BPF_CGROUP_*`).
    pub fn cgroup_program(&self, name: &str) -> Option<(BorrowedFd<'_>, u32)> {
        Some((self.program(name)?, *self.cgroup_hooks.get(name)?))
    }
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
    .map_err(Error::Load)
}

/// The number of possible CPUs (the kernel sizes per-CPU values by it).
pub fn possible_cpus() -> Result<usize, Error> {
    crate::cpus::possible()
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

/// The cgroup hook of each owner program (`BPF_CGROUP_*`).
pub(crate) fn attach_type(section: &aya_obj::ProgramSection) -> Option<u32> {
    use aya_obj::generated::bpf_attach_type;
    match section {
        aya_obj::ProgramSection::CgroupSock { attach_type } => {
            Some(bpf_attach_type::from(*attach_type) as u32)
        }
        aya_obj::ProgramSection::CgroupSockAddr { attach_type } => {
            Some(bpf_attach_type::from(*attach_type) as u32)
        }
        _ => None,
    }
}
