//! Builds xcap's capture programs (`capture-bpf/`) for the BPF target and
//! leaves the object in `$OUT_DIR/capture.o`, which `src/programs.rs` embeds:
//! the crate that loads the capture programs builds them.
//!
//! The BPF build needs the nightly toolchain with `rust-src` (for
//! `-Z build-std=core`) and `bpf-linker`; `scripts/setup.sh` installs both.
//! `capture-bpf/.cargo/config.toml` and `capture-bpf/rust-toolchain.toml` hold
//! the target, flags and toolchain, so this is a plain `cargo build --release`
//! in that directory. It shares one target directory with the host build
//! (`<target>/capture-bpf`), so it only recompiles when capture-bpf changes.
//!
//! `XCAP_CAPTURE_BPF_OBJ=/path/to/object` skips the BPF build and embeds that
//! file instead (machines without the BPF toolchain).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const HOW_TO_FIX: &str =
    "run scripts/setup.sh (it installs nightly with rust-src and bpf-linker), \
     or set XCAP_CAPTURE_BPF_OBJ to a prebuilt capture-bpf object";

fn main() {
    println!("cargo:rerun-if-env-changed=XCAP_CAPTURE_BPF_OBJ");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("capture.o");

    if let Some(prebuilt) = env::var_os("XCAP_CAPTURE_BPF_OBJ") {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        if let Err(e) = std::fs::copy(&prebuilt, &out) {
            fail(&format!(
                "cannot copy XCAP_CAPTURE_BPF_OBJ={}: {e}",
                Path::new(&prebuilt).display()
            ));
        }
        return;
    }

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = manifest_dir.join("../capture-bpf");
    // capture-bpf's own files, and the contract it imports.
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../capture-abi/src").display()
    );
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        ".cargo/config.toml",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", src.join(f).display());
    }

    if !has_bpf_linker() {
        fail(&format!("bpf-linker is not installed (needed to build capture-bpf for the BPF target); {HOW_TO_FIX}"));
    }

    let target_dir = bpf_target_dir();
    // A clean environment for the nested build: the variables cargo and rustup
    // set for this build script would otherwise pick the host toolchain,
    // flags or wrappers.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&src)
        .args(["+nightly", "build", "--release", "--locked", "--quiet"])
        .arg("--target-dir")
        .arg(&target_dir);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    // Keep the nested build to the jobs the outer one allows.
    if let Ok(jobs) = env::var("NUM_JOBS") {
        cmd.env("CARGO_BUILD_JOBS", jobs);
    }
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => fail(&format!(
            "cannot run `cargo +nightly build` for capture-bpf: {e}; {HOW_TO_FIX}"
        )),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        for line in stderr.lines() {
            println!("cargo:warning=capture-bpf: {line}");
        }
        fail(&format!(
            "building capture-bpf for bpfel-unknown-none failed ({}); {HOW_TO_FIX}",
            output.status
        ));
    }
    let built = target_dir.join("bpfel-unknown-none/release/capture");
    if let Err(e) = std::fs::copy(&built, &out) {
        fail(&format!(
            "capture-bpf built but {} is missing: {e}",
            built.display()
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}

fn has_bpf_linker() -> bool {
    let on_path = env::var_os("PATH")
        .map(|p| env::split_paths(&p).any(|d| d.join("bpf-linker").is_file()))
        .unwrap_or(false);
    let in_cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/bpf-linker").is_file())
        .unwrap_or(false);
    on_path || in_cargo_home
}

/// `<target>/capture-bpf`, where `<target>` is the host build's target
/// directory: OUT_DIR is `<target>[/<triple>]/<profile>/build/<pkg>/out`.
/// Sharing it across profiles means one BPF build serves `cargo build`,
/// `cargo test` and `--release`.
fn bpf_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let Some(mut base) = out_dir.ancestors().nth(4).map(Path::to_path_buf) else {
        return out_dir.join("capture-bpf-target");
    };
    if let Some(triple) = env::var_os("TARGET") {
        if base.file_name() == Some(triple.as_os_str()) {
            base.pop();
        }
    }
    base.join("capture-bpf")
}
