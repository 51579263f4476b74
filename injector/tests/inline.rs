//! `injector::inline` on small linked programs, instruction by instruction.
//! (That inlined filters verify and answer as called ones do is checked in
//! the kernel by the differential tests, engine `kernel-inlined`.)

use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R10, R2, R3, R4, R5, R6, R7, R8};
use injector::inline::{find_function, inline_calls};

fn call(rel: i32) -> Insn {
    Insn::new(op::JMP | op::CALL, 0, 1, 0, rel)
}

#[test]
fn exits_become_jumps_past_the_body_and_the_callee_goes() {
    let prog = [
        Insn::jmp_imm(op::JEQ, R1, 0, 2), // 0: -> 3, over the call
        call(3),                          // 1: -> 5
        Insn::ja(0),                      // 2
        Insn::mov64_imm(R0, 0),           // 3
        Insn::exit(),                     // 4
        Insn::jmp_imm(op::JEQ, R1, 1, 2), // 5 (callee): -> 8
        Insn::mov64_imm(R0, 1),           // 6
        Insn::exit(),                     // 7: becomes a jump past the body
        Insn::mov64_imm(R0, 2),           // 8
        Insn::exit(),                     // 9: the last one falls through
    ];
    let out = inline_calls(&prog, 5).unwrap();
    assert_eq!(out.sites, 1);
    assert_eq!(
        out.insns,
        [
            Insn::jmp_imm(op::JEQ, R1, 0, 5), // -> 6, still over the body
            Insn::jmp_imm(op::JEQ, R1, 1, 2), // 1: -> 4
            Insn::mov64_imm(R0, 1),
            Insn::ja(1), // -> 5, past the body
            Insn::mov64_imm(R0, 2),
            Insn::ja(0), // 5
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ]
    );
}

#[test]
fn the_body_frame_moves_below_the_callers() {
    let prog = [
        Insn::st_imm(op::W, R10, -12, 7), // caller's frame: 12 bytes
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(op::ADD, R3, -20), // a pointer to a 20-byte-deep object
        call(1),
        Insn::exit(),
        Insn::stx(op::DW, R10, R2, -8), // callee
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(op::ADD, R3, -8),
        Insn::ldx(op::DW, R0, R3, 0),
        Insn::exit(),
    ];
    let out = inline_calls(&prog, 5).unwrap();
    // 20 bytes rounded to 24; nothing to save.
    assert_eq!(
        out.insns[3..],
        [
            Insn::stx(op::DW, R10, R2, -32),
            Insn::mov64_reg(R3, R10),
            Insn::alu64_imm(op::ADD, R3, -24),
            Insn::alu64_imm(op::ADD, R3, -8),
            Insn::ldx(op::DW, R0, R3, 0),
            Insn::exit(),
        ]
    );
}

/// `call bpf_ktime_get_ns`: a helper call, which clobbers r1-r5.
fn helper_call() -> Insn {
    Insn::call_helper(5)
}

/// `dst = map_value(map 1) + 0`: an ld_imm64 whose src (6) says what its
/// constant is.
fn ld_map_value(dst: u8) -> [Insn; 2] {
    [
        Insn::new(op::LD | op::DW | op::IMM, dst, 6, 0, 1),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

#[test]
fn callee_saved_registers_are_kept_only_when_live() {
    let callee = [
        helper_call(),
        Insn::mov64_imm(R6, 1),
        Insn::mov64_imm(R7, 2),
        Insn::exit(),
    ];
    // r6 is read after the call, r7 is written first: only r6 is saved
    // (the body calls a helper: no scratch register survives it).
    let mut prog = vec![
        Insn::mov64_imm(R6, 5),
        Insn::mov64_imm(R7, 5),
        call(4),
        Insn::mov64_imm(R7, 0),
        Insn::alu64_reg(op::ADD, R0, R6),
        Insn::alu64_reg(op::ADD, R0, R7),
        Insn::exit(),
    ];
    prog.extend_from_slice(&callee);
    let out = inline_calls(&prog, 7).unwrap();
    assert_eq!(
        out.insns[2..7],
        [
            Insn::stx(op::DW, R10, R6, -8),
            helper_call(),
            Insn::mov64_imm(R6, 1),
            Insn::mov64_imm(R7, 2),
            Insn::ldx(op::DW, R6, R10, -8),
        ]
    );
    assert_eq!(out.insns.len(), prog.len() - callee.len() - 1 + 5);
}

#[test]
fn a_body_without_calls_uses_free_scratch_registers_for_live_ones() {
    // The body reads r1 and r2 (its arguments) and writes r3: r6 and r8,
    // live after the call, become r4 and r5; r7, dead there, stays.
    let callee = [
        Insn::mov64_reg(R6, R1),
        Insn::mov64_imm(R3, 0),
        ld_map_value(R8)[0], // src 6 is a kind of constant, not r6
        ld_map_value(R8)[1],
        Insn::alu64_reg(op::ADD, R6, R8),
        Insn::mov64_reg(R7, R2),
        Insn::stx(op::DW, R10, R6, -8),
        Insn::jmp_reg(op::JEQ, R6, R7, 1),
        Insn::mov64_reg(R0, R6),
        Insn::exit(),
    ];
    let mut prog = vec![
        Insn::mov64_imm(R6, 5),
        Insn::mov64_imm(R8, 5),
        call(4),
        Insn::alu64_reg(op::ADD, R0, R6),
        Insn::alu64_reg(op::ADD, R0, R8),
        Insn::mov64_imm(R7, 0),
        Insn::exit(),
    ];
    prog.extend_from_slice(&callee);
    let out = inline_calls(&prog, 7).unwrap();
    assert_eq!(
        out.insns[2..13],
        [
            Insn::mov64_reg(R4, R1),
            Insn::mov64_imm(R3, 0),
            ld_map_value(R5)[0],
            ld_map_value(R5)[1],
            Insn::alu64_reg(op::ADD, R4, R5),
            Insn::mov64_reg(R7, R2),
            Insn::stx(op::DW, R10, R4, -8),
            Insn::jmp_reg(op::JEQ, R4, R7, 1),
            Insn::mov64_reg(R0, R4),
            Insn::alu64_reg(op::ADD, R0, R6),
            Insn::alu64_reg(op::ADD, R0, R8),
        ]
    );
}

#[test]
fn a_live_register_unset_on_some_path_is_refused_when_it_must_be_saved() {
    let prog = [
        Insn::jmp_imm(op::JEQ, R1, 0, 1),
        Insn::mov64_imm(R6, 5), // r6 set on one path only
        call(2),
        Insn::mov64_reg(R0, R6),
        Insn::exit(),
        helper_call(),
        Insn::mov64_imm(R6, 1),
        Insn::exit(),
    ];
    let e = inline_calls(&prog, 5).unwrap_err().to_string();
    assert!(e.contains("not set on every path"), "{e}");
    // Renamed (no call in the body), the caller's r6 is never touched.
    let mut renamed = prog;
    renamed[5] = Insn::mov64_imm(R0, 0);
    assert!(inline_calls(&renamed, 5).is_ok());
}

#[test]
fn calls_and_jumps_around_the_callee_follow_it() {
    let prog = [
        call(2),                // 0: -> 3 (the filter)
        call(3),                // 1: -> 5 (another function, after the filter)
        Insn::exit(),           // 2
        Insn::mov64_imm(R0, 1), // 3: filter
        Insn::exit(),           // 4
        Insn::mov64_imm(R0, 2), // 5: other
        Insn::exit(),           // 6
    ];
    let out = inline_calls(&prog, 3).unwrap();
    assert_eq!(
        out.insns,
        [
            Insn::mov64_imm(R0, 1),
            call(1), // -> 3
            Insn::exit(),
            Insn::mov64_imm(R0, 2),
            Insn::exit(),
        ]
    );
}

#[test]
fn what_a_function_may_not_do_is_refused() {
    let caller = [call(1), Insn::exit()];
    let bodies: [(&str, Vec<Insn>); 5] = [
        ("calls a BPF function", vec![call(0), Insn::exit()]),
        ("jumps out of it", vec![Insn::ja(-3), Insn::exit()]),
        ("does not end in exit", vec![Insn::mov64_imm(R0, 1)]),
        ("unreachable", vec![Insn::exit(), Insn::exit()]),
        (
            "uses r10 other than",
            vec![Insn::alu64_reg(op::ADD, R0, R10), Insn::exit()],
        ),
    ];
    for (why, body) in bodies {
        let mut prog = caller.to_vec();
        prog.extend(body);
        let e = inline_calls(&prog, 2).unwrap_err().to_string();
        assert!(e.contains(why), "{why}: {e}");
    }
    // A caller that indexes its own stack: where its objects are is unknown.
    let prog = [
        Insn::mov64_reg(R3, R10),
        Insn::alu64_reg(op::ADD, R3, R1),
        call(1),
        Insn::exit(),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
    ];
    let e = inline_calls(&prog, 4).unwrap_err().to_string();
    assert!(e.contains("by a register"), "{e}");
}

#[test]
fn a_frame_too_deep_is_refused() {
    let prog = [
        Insn::st_imm(op::DW, R10, -400, 0),
        call(1),
        Insn::exit(),
        Insn::st_imm(op::DW, R10, -200, 0),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
    ];
    let e = inline_calls(&prog, 3).unwrap_err().to_string();
    assert!(e.contains("exceed 512 bytes"), "{e}");
}

#[test]
fn find_function_wants_the_whole_body() {
    let body = [Insn::mov64_imm(R0, 1), Insn::exit()];
    let prog = [call(1), Insn::exit(), body[0], body[1]];
    assert_eq!(find_function(&prog, &body), Some(2));
    assert_eq!(find_function(&prog, &body[..1]), None);
    assert_eq!(find_function(&prog, &[Insn::exit()]), None);
}

#[test]
fn every_call_site_gets_its_own_copy() {
    let prog = [
        Insn::jmp_imm(op::JEQ, R1, 0, 2), // 0: -> 3
        call(4),                          // 1: -> 6
        Insn::exit(),                     // 2
        call(2),                          // 3: -> 6
        Insn::alu64_imm(op::ADD, R0, 1),  // 4
        Insn::exit(),                     // 5
        Insn::mov64_imm(R0, 7),           // 6: the callee
        Insn::exit(),                     // 7
    ];
    let out = inline_calls(&prog, 6).unwrap();
    assert_eq!(out.sites, 2);
    assert_eq!(
        out.insns,
        [
            Insn::jmp_imm(op::JEQ, R1, 0, 2), // -> 3, the second copy
            Insn::mov64_imm(R0, 7),
            Insn::exit(),
            Insn::mov64_imm(R0, 7),
            Insn::alu64_imm(op::ADD, R0, 1),
            Insn::exit(),
        ]
    );
}

/// A filter that hands a callback to `bpf_loop` is inlined: the callback
/// stays a function of the program, and the inlined `ld_imm64` of its
/// address points at its new place; one whose frame with the callback's
/// would pass 512 bytes is refused.
#[test]
fn a_body_that_takes_a_callbacks_address_keeps_the_callback() {
    let [a0, a1] = Insn::ld_func_addr(R2, 4); // 3 -> 8, the callback
    let prog = [
        call(1),                          // 0: -> 2
        Insn::exit(),                     // 1
        Insn::mov64_imm(R1, 4),           // 2: filter
        a0,                               // 3
        a1,                               // 4
        Insn::mov64_imm(R3, 0),           // 5
        Insn::call_helper(181),           // 6: bpf_loop
        Insn::exit(),                     // 7
        Insn::st_imm(op::DW, R10, -8, 0), // 8: callback
        Insn::mov64_imm(R0, 1),           // 9
        Insn::exit(),                     // 10
    ];
    let out = inline_calls(&prog, 2).unwrap();
    assert_eq!(out.sites, 1);
    let [b0, b1] = Insn::ld_func_addr(R2, 4); // 1 -> 6
    assert_eq!(
        out.insns,
        [
            Insn::mov64_imm(R1, 4),
            b0,
            b1,
            Insn::mov64_imm(R3, 0),
            Insn::call_helper(181),
            Insn::exit(),
            Insn::st_imm(op::DW, R10, -8, 0),
            Insn::mov64_imm(R0, 1),
            Insn::exit(),
        ]
    );
    // The caller's 400 bytes, the filter's and the callback's 200: over.
    let mut deep = prog.to_vec();
    deep[8] = Insn::st_imm(op::DW, R10, -200, 0);
    deep.insert(0, Insn::st_imm(op::DW, R10, -400, 0));
    // Everything after slot 0 moved by one: the call still reaches the
    // filter (relative), and so does the address the callback.
    let e = inline_calls(&deep, 3).unwrap_err().to_string();
    assert!(e.contains("callback's (200 bytes)"), "{e}");
}
