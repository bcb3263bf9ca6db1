#!/usr/bin/env bash
# RUSTC_WRAPPER that run-all.sh sets: libFuzzer's coverage instrumentation (cargo-fuzz's
# `-Cpasses=sancov-module` and its options) for this repository's code only. A dependency
# (its source under a Cargo registry or git checkout) is compiled with
# `-sanitizer-coverage-level=0` appended (LLVM takes the last value), so no coverage
# counters or comparison tracing: the cryptographic primitives (curve25519-dalek, ML-KEM,
# SHA-2, AES, ...) are constant-time, their control flow tells the fuzzer nothing about
# the input, and tracing their arithmetic cost more than half of every execution. They are
# still built with AddressSanitizer and debug assertions.
#
#   RUSTC_WRAPPER=fuzz/coverage-wrapper.sh cargo fuzz build
set -euo pipefail
rustc="$1"
shift
for arg in "$@"; do
  case "$arg" in
    */.cargo/registry/* | */.cargo/git/* | */cargo/registry/* | */cargo/git/*)
      exec "$rustc" "$@" -Cllvm-args=-sanitizer-coverage-level=0
      ;;
  esac
done
exec "$rustc" "$@"
