#!/usr/bin/env bash
# Regenerates every generated file of the repository, from fixed RNG seeds:
#   tests/vectors/*.json   known-answer vectors    (tools/vectors)
#   tests/golden/*.bin     storage golden files    (tools/vectors, via crates/test-support)
#   fuzz/corpus/*/seed-*   fuzz seeds              (fuzz/src/bin/make_seeds.rs)
# A file whose bytes do not change is not rewritten; review `git diff` afterwards.
#
#   tools/regenerate.sh           write the files
#   tools/regenerate.sh --check   write nothing; exit non-zero if any file differs
#
# tests/vectors/safety_numbers/ is computed independently by its own generate.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

case "${1:-}" in
    "")
        cargo run -p doubleratchet-vectors -- --write
        cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds
        ;;
    --check)
        cargo run -p doubleratchet-vectors
        # The fuzz crate's tests compare the seeds it generates with the committed ones.
        cargo test --manifest-path fuzz/Cargo.toml -- seeds
        ;;
    *)
        echo "usage: tools/regenerate.sh [--check]" >&2
        exit 2
        ;;
esac
