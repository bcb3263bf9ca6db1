//! Replays the fuzz corpora through the fuzz targets' own logic, so the corpora and the
//! targets never rot: `fuzz/src/lib.rs` is compiled here as a module, and every file under
//! `fuzz/corpus/<target>/` (the committed `seed-*` files, plus whatever a local fuzzing run
//! added) goes through the function of that target. A fuzzer crash saved as a `seed-*`
//! regression file fails this test until the bug is fixed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/src/lib.rs"]
pub mod fuzz_targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn target(name: &str) -> fuzz_targets::Target {
    fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

/// Runs `f` on `data`, turning a panic into an error naming the input.
fn run(f: fuzz_targets::Target, label: &str, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| f(data))).map_err(|_| {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        format!("{label} ({} bytes): {hex}", data.len())
    })
}

/// Replays every file of `fuzz/corpus/<name>/`; there must be committed seeds.
fn replay(name: &str) {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let seeds = files
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .count();
    assert!(seeds > 0, "no seed-* files in {}", dir.display());
    let f = target(name);
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).unwrap();
            run(f, &path.display().to_string(), &data).err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} inputs of {name} fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn decode_message_corpus() {
    replay("decode_message");
}

#[test]
fn session_corpus() {
    replay("session");
}

#[test]
fn respond_corpus() {
    replay("respond");
}

#[test]
fn load_corpus() {
    replay("load");
}

#[test]
fn bundle_corpus() {
    replay("bundle");
}

#[test]
fn safety_number_corpus() {
    replay("safety_number");
}

/// The seeds as the generator makes them from the current code pass too (the committed
/// ones may predate a format change), and the generator covers every target.
#[test]
fn generated_seeds_pass() {
    let seeds = fuzz_targets::seeds();
    let failures: Vec<String> = seeds
        .iter()
        .filter_map(|s| {
            run(
                target(s.target),
                &format!("{}/seed-{}", s.target, s.name),
                &s.data,
            )
            .err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "generated seeds fail:\n{}",
        failures.join("\n")
    );
    for (name, _) in fuzz_targets::TARGETS {
        assert!(
            seeds.iter().any(|s| s.target == *name),
            "no generated seed for {name}"
        );
    }
}

/// Every cargo-fuzz binary has its logic in `TARGETS` (so its corpus is replayed here), and
/// every entry of `TARGETS` has a binary.
#[test]
fn every_fuzz_target_is_replayed() {
    let mut binaries: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    binaries.sort();
    let mut names: Vec<String> = fuzz_targets::TARGETS
        .iter()
        .map(|(n, _)| (*n).to_string())
        .collect();
    names.sort();
    assert_eq!(binaries, names);
    for name in &names {
        assert!(
            fuzz_dir().join("corpus").join(name).is_dir(),
            "no corpus directory for {name}"
        );
    }
}
