//! Writes the seed corpora `fuzz/corpus/<target>/seed-*` from
//! [`doubleratchet_fuzz::seeds`]. Run from anywhere with
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds`.
//!
//! Every seed is derived from fixed RNG seeds, so a rerun rewrites the same bytes. Files it
//! did not write (fuzzer finds, regression seeds) are left alone.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for seed in doubleratchet_fuzz::seeds() {
        let (_, run) = doubleratchet_fuzz::TARGETS
            .iter()
            .find(|(name, _)| *name == seed.target)
            .ok_or_else(|| std::io::Error::other(format!("no target {}", seed.target)))?;
        // A seed must pass its own target before it is written.
        run(&seed.data);
        let dir = corpus.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("seed-{}", seed.name));
        std::fs::write(&path, &seed.data)?;
        println!("{} ({} bytes)", path.display(), seed.data.len());
    }
    Ok(())
}
