//! Replays the fuzz corpora through the fuzz targets' logic on the stable toolchain (no
//! libFuzzer, no sanitizer), so that the corpora and the targets never rot:
//!
//! ```sh
//! cd fuzz && cargo test -j2
//! ```
//!
//! Every file under `fuzz/corpus/<target>/` (the committed `seed-*` files, plus whatever a
//! local fuzzing run added) goes through the function of that target; a fuzzer crash kept
//! as a `seed-regression-*` file fails here until the bug is fixed. The seeds as the
//! generator makes them from the current code must pass too, and be the committed bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use doubleratchet_fuzz::{seeds, Target, TARGETS};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `f` on `data`, turning a panic into an error naming the input.
fn run(f: Target, label: &str, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| f(data)))
        .map_err(|_| format!("{label} ({} bytes): {}", data.len(), hex(data)))
}

/// The files of `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn is_seed(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("seed-"))
}

/// Replays every file of `fuzz/corpus/<name>/`; there must be committed seeds.
fn replay(name: &str) {
    let dir = fuzz_dir().join("corpus").join(name);
    let files = files(&dir);
    assert!(
        files.iter().any(|p| is_seed(p)),
        "no seed-* files in {}",
        dir.display()
    );
    let f = target(name);
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            run(
                f,
                &path.display().to_string(),
                &std::fs::read(path).unwrap(),
            )
            .err()
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
fn symmetric_corpus() {
    replay("symmetric");
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

#[test]
fn publish_corpus() {
    replay("publish");
}

#[test]
fn record_corpus() {
    replay("record");
}

#[test]
fn record_load_corpus() {
    replay("record_load");
}

#[test]
fn device_list_corpus() {
    replay("device_list");
}

#[test]
fn contact_load_corpus() {
    replay("contact_load");
}

#[test]
fn group_message_corpus() {
    replay("group_message");
}

#[test]
fn group_session_corpus() {
    replay("group_session");
}

#[test]
fn group_load_corpus() {
    replay("group_load");
}

/// The seeds as the generator makes them from the current code pass, are exactly the
/// committed files (`cargo run --bin make_seeds` rewrites them), and cover every target.
#[test]
fn generated_seeds_pass_and_are_committed() {
    let seeds = seeds();
    let mut failures = Vec::new();
    for s in &seeds {
        let label = format!("{}/seed-{}", s.target, s.name);
        if let Err(e) = run(target(s.target), &label, &s.data) {
            failures.push(e);
        }
        let path = fuzz_dir()
            .join("corpus")
            .join(s.target)
            .join(format!("seed-{}", s.name));
        match std::fs::read(&path) {
            Ok(committed) if committed == s.data => {}
            Ok(_) => failures.push(format!("{label} differs from the generated seed")),
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "generated seeds fail or are not committed (regenerate with `cargo run -j2 \
         --manifest-path fuzz/Cargo.toml --bin make_seeds`):\n{}",
        failures.join("\n")
    );
    for (name, _) in TARGETS {
        assert!(
            seeds.iter().any(|s| s.target == *name),
            "no generated seed for {name}"
        );
    }
}

/// Every cargo-fuzz binary has its logic in `TARGETS` (so its corpus is replayed here) and
/// a `[[bin]]` entry, and every entry of `TARGETS` has a binary and a corpus.
#[test]
fn every_fuzz_target_is_replayed() {
    let mut binaries: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    binaries.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_string()).collect();
    names.sort();
    assert_eq!(binaries, names);
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &names {
        assert!(
            manifest.contains(&format!(
                "name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\""
            )),
            "no [[bin]] for {name} in fuzz/Cargo.toml"
        );
        assert!(
            fuzz_dir().join("corpus").join(name).is_dir(),
            "no corpus directory for {name}"
        );
    }
}
