//! Bad input: one clear error each, never a panic. No privileges needed.

mod common;

use capture::programs;
use capture_abi::live;
use common::*;
use injector::{splice, Error};

fn err(elf: &[u8], stubs: &[(&str, &[cbpf2ebpf::ebpf::Insn])]) -> Error {
    let e = splice(elf, stubs).expect_err("splice should fail");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    e
}

#[test]
fn garbage_is_not_an_elf() {
    let f = first_byte_is_0x45();
    assert_eq!(err(b"", &[("xcap_filter", &f)]), Error::NotElf);
    assert_eq!(
        err(b"hello, world, this is no object", &[("xcap_filter", &f)]),
        Error::NotElf
    );
    assert!(matches!(
        err(b"\x7fELF\x02\x01", &[("xcap_filter", &f)]),
        Error::Malformed(_)
    ));
}

#[test]
fn host_elf_is_not_bpf() {
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let f = first_byte_is_0x45();
    let e = err(&exe, &[("xcap_filter", &f)]);
    assert!(matches!(e, Error::NotBpf { machine: 62, .. }), "{e}");
    assert!(e.to_string().contains("x86-64"), "{e}");
}

#[test]
fn missing_stub_lists_candidates() {
    let f = first_byte_is_0x45();
    let e = err(programs::OBJECT, &[("xcap_filter", &f)]);
    let msg = e.to_string();
    assert!(matches!(e, Error::StubMissing { .. }), "{msg}");
    assert!(
        msg.contains("xcap_filter_xdp") && msg.contains("xcap_filter_tc"),
        "{msg}"
    );

    let obj = build_c_fixture(true);
    let msg = err(&obj, &[("no_such_stub", &f)]).to_string();
    assert!(msg.contains("xcap_filter_l3"), "{msg}");
}

#[test]
fn stub_never_called() {
    let f = first_byte_is_0x45();
    let e = err(&build_c_fixture(true), &[("xcap_filter_orphan", &f)]);
    assert!(matches!(e, Error::StubNeverCalled { .. }), "{e}");
}

#[test]
fn stub_with_wrong_signature() {
    let f = first_byte_is_0x45();
    let e = err(&build_c_fixture(true), &[("xcap_filter_bad", &f)]);
    assert!(matches!(e, Error::StubSignature { .. }), "{e}");
    assert!(e.to_string().contains("takes 2 parameters"), "{e}");
}

#[test]
fn program_is_not_a_stub() {
    let f = first_byte_is_0x45();
    let e = err(programs::OBJECT, &[(live::PROG_XDP, &f)]);
    assert!(matches!(e, Error::StubUnsupported { .. }), "{e}");
}

#[test]
fn bad_filters_and_duplicates() {
    let f = first_byte_is_0x45();
    assert!(matches!(
        err(programs::OBJECT, &[(live::STUB_XDP, &[])]),
        Error::BadFilter { .. }
    ));
    let call = [
        cbpf2ebpf::ebpf::Insn::new(0x85, 0, 1, 0, 3),
        cbpf2ebpf::ebpf::Insn::exit(),
    ];
    assert!(matches!(
        err(programs::OBJECT, &[(live::STUB_XDP, &call)]),
        Error::BadFilter { .. }
    ));
    let map = cbpf2ebpf::ebpf::Insn::ld_imm64(1, 7);
    let map = [
        cbpf2ebpf::ebpf::Insn { src: 1, ..map[0] },
        map[1],
        cbpf2ebpf::ebpf::Insn::exit(),
    ];
    assert!(matches!(
        err(programs::OBJECT, &[(live::STUB_XDP, &map)]),
        Error::BadFilter { .. }
    ));
    let e = err(
        programs::OBJECT,
        &[(live::STUB_XDP, &f), (live::STUB_XDP, &f)],
    );
    assert!(matches!(e, Error::DuplicateStub(_)), "{e}");
}

#[test]
fn unknown_relocation_in_code() {
    // Turn the capture object's first code relocation into an ABS64 one.
    let mut obj = programs::OBJECT.to_vec();
    let f = first_byte_is_0x45();
    let pos = find_rel(&obj, "xdp.frags");
    obj[pos + 8] = 2; // R_BPF_64_ABS64
    let e = err(&obj, &[(live::STUB_XDP, &f)]);
    assert!(matches!(e, Error::Relocation { .. }), "{e}");
}

/// File offset of the first `Elf64_Rel` of `.rel<section>`.
fn find_rel(obj: &[u8], section: &str) -> usize {
    let u16_at = |o: usize| u16::from_le_bytes(obj[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(obj[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(obj[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3c), u16_at(0x3e));
    let strtab = u64_at(shoff + shstrndx * 64 + 0x18);
    let want = format!(".rel{section}");
    (0..shnum)
        .map(|i| shoff + i * 64)
        .find(|&h| {
            let name = &obj[strtab + u32_at(h)..];
            &name[..want.len() + 1] == format!("{want}\0").as_bytes()
        })
        .map(|h| u64_at(h + 0x18))
        .expect("relocation section")
}

/// Truncations and byte flips of real objects: errors, never panics.
#[test]
fn mutated_objects_never_panic() {
    let f = first_byte_is_0x45();
    let objects = [programs::OBJECT.to_vec(), build_c_fixture(true)];
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for obj in &objects {
        for cut in (0..obj.len()).step_by(97) {
            let _ = splice(&obj[..cut], &[(live::STUB_XDP, &f), ("xcap_filter", &f)]);
        }
        for _ in 0..3000 {
            let mut m = obj.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() % m.len() as u64) as usize;
                m[i] = next() as u8;
            }
            let _ = splice(&m, &[(live::STUB_XDP, &f)]);
            let _ = splice(&m, &[("xcap_filter", &f), ("xcap_filter_l3", &f)]);
        }
    }
}
