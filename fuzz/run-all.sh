#!/usr/bin/env bash
# Builds every cargo-fuzz target of this crate and runs each, one after the other, for
# SECONDS seconds (default 60). Exits non-zero if a build fails or any target finds a crash
# (panic, sanitizer report, leak, out-of-memory or a unit slower than FUZZ_TIMEOUT seconds).
#
#   fuzz/run-all.sh SECONDS
#
# Works from any directory. Installs cargo-fuzz when `cargo fuzz` is missing, and runs on
# the stable toolchain through RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags). The corpora
# grow in fuzz/corpus/<target>/ (only the committed seed-* files are tracked); crashes are
# written to fuzz/artifacts/<target>/ and their libFuzzer output is printed. Full logs are
# kept in fuzz/target/fuzz-logs/.
#
# Coverage instrumentation covers this repository's code only (coverage-wrapper.sh, set as
# RUSTC_WRAPPER): the dependencies, constant-time cryptography above all, are built with
# AddressSanitizer but without coverage counters or comparison tracing, which cost more
# than half of every execution and guide the fuzzer nowhere. FUZZ_COVERAGE=all instruments
# everything, as a plain `cargo fuzz build` does.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*)
    echo "usage: $0 SECONDS" >&2
    exit 2
    ;;
esac
timeout_s="${FUZZ_TIMEOUT:-30}"

cd "$(dirname "${BASH_SOURCE[0]}")"
export RUSTC_BOOTSTRAP=1
# Cargo does not rebuild when RUSTC_WRAPPER changes: builds with the wrapper get their own
# target directory.
target_dir=target
if [ "${FUZZ_COVERAGE:-}" != all ]; then
  export RUSTC_WRAPPER="$PWD/coverage-wrapper.sh"
  target_dir=target/own-coverage
fi

# Targets built without AddressSanitizer: the stateful protocol targets, `session`
# (whole conversations), `symmetric` (the DH-free path: chain steps, skipped keys,
# transactional decryption), `record` (a session record's routing, requests and bounds),
# `device_list` (accounts signing device lists, a contact taking them) and `group_session`
# (three group members sending, receiving, removing and rotating). The crate
# forbids `unsafe`, and what these targets look for are panics, failed assertions and
# state changed by a rejection, none of which needs ASan, while ASan (with its leak
# checks) costs them a large share of their executions. Every other target keeps ASan
# and drives the same dependencies (X25519, Ed25519, ML-KEM, AES-GCM-SIV, SHA-2), so
# their unsafe code stays covered by it; `contact_load` and `group_load` (the stored
# account, contact, group and member chains types) are loaders like `load` and
# `record_load` and keep it, as does `group_message` (hostile bytes against a fixed
# receiver, like `decode_message`).
no_sanitizer_targets="session symmetric record device_list group_session"

# cargo-fuzz's build flags for one target: its sanitizer, and a target directory per
# sanitizer (cargo would otherwise rebuild everything whenever the flags change).
build_args() {
  case " $no_sanitizer_targets " in
    *" $1 "*) echo "--sanitizer none --target-dir $target_dir-nosan" ;;
    *) echo "--target-dir $target_dir" ;;
  esac
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets="$(cargo fuzz list)"
if [ -z "$targets" ]; then
  echo "no fuzz targets found" >&2
  exit 1
fi

echo "== building all fuzz targets"
for target in $targets; do
  # shellcheck disable=SC2046 # the flags are split on purpose
  cargo fuzz build $(build_args "$target") "$target"
done

# Per-target libFuzzer flags. The session and record targets' inputs are lists of up to
# 64 operations: let them use long inputs from the start instead of growing them slowly.
# The device_list target's input is a device list (up to 1 707 bytes), a device link (134
# bytes) and a list of up to 48 operations. The group_session target's is a list of up to
# 64 operations of at most 8 bytes each.
target_args() {
  case "$1" in
    session | record | group_session) echo "-len_control=0 -max_len=512" ;;
    device_list) echo "-len_control=0 -max_len=1800" ;;
    *) echo "" ;;
  esac
}

logs="target/fuzz-logs"
mkdir -p "$logs"
failed=()
for target in $targets; do
  log="$logs/$target.log"
  echo "== $target: ${seconds}s (log: fuzz/$log)"
  # shellcheck disable=SC2046 # the per-target flags are split on purpose
  if cargo fuzz run $(build_args "$target") "$target" -- $(target_args "$target") \
    -max_total_time="$seconds" -timeout="$timeout_s" -print_final_stats=1 >"$log" 2>&1; then
    # The closing lines: executions, coverage and corpus size.
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
  else
    echo "!! $target FAILED; the end of its log:"
    tail -n 80 "$log"
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "all fuzz targets ran ${seconds}s without a crash"
