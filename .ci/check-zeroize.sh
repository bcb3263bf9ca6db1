#!/usr/bin/env bash
# Check that the dependencies holding our secrets wipe them: the `zeroize` feature must be
# enabled on each crate below, in every feature set we ship (default, no_std with PQXDH,
# no_std without PQXDH, and the `aws-lc` backend, which still takes HMAC, HKDF, SHA-256,
# Ed25519 and ML-KEM from these crates and falls back to x25519-dalek where AWS-LC refuses).
# AWS-LC wipes its own secrets in C (`OPENSSL_free` cleanses every allocation; see
# src/backend/awslc.rs): `aws-lc-rs` has no zeroize feature to check.
#
# How: for each crate, `cargo tree -e normal,features -i <crate>@<version> --prefix depth`
# prints the crate at depth 0 and each of its enabled features as a depth-1 node
# (`1<crate> feature "zeroize"`), so the feature is on exactly when that line is present.
# `-e normal` matters: dev-dependencies are left out of both the graph and cargo's feature
# resolution, so a dev-dependency that happens to turn `zeroize` on (aes-gcm does, for aes)
# cannot hide a missing feature in the library build. Every version of a crate in the
# normal graph is checked, and a crate that is missing from the graph is an error too.
# The graph is the host target's; cargo metadata and cargo tree need no compilation.
set -euo pipefail
cd "$(dirname "$0")/.."

# hmac and sha2 carry `zeroize` down to digest (and block-buffer); digest is checked
# directly as well since that is where the hash state is wiped.
always=(hmac sha2 digest aes polyval aes-gcm-siv x25519-dalek ed25519-dalek curve25519-dalek)
with_pqxdh=(ml-kem sha3 shake)

failures=0

check_set() {
    local label=$1 pq=$2
    shift 2
    local flags=("$@")
    local crates=("${always[@]}")
    if [ "$pq" = yes ]; then
        crates+=("${with_pqxdh[@]}")
    fi
    echo "-- $label (cargo tree ${flags[*]:-with default flags})"

    # `name vX.Y.Z` for every package reachable through normal dependencies.
    local packages
    packages=$(cargo tree "${flags[@]}" -e normal --prefix none --format '{p}' | awk '{ print $1, $2 }' | sort -u)

    local crate versions version spec tree
    for crate in "${crates[@]}"; do
        versions=$(awk -v c="$crate" '$1 == c { sub(/^v/, "", $2); print $2 }' <<<"$packages")
        if [ -z "$versions" ]; then
            echo "   FAIL  $crate is not a normal dependency in this feature set"
            failures=$((failures + 1))
            continue
        fi
        for version in $versions; do
            spec="$crate@$version"
            tree=$(cargo tree "${flags[@]}" -e normal,features -i "$spec" --prefix depth)
            if grep -qxE "1${crate//./\\.} feature \"zeroize\"( \(\*\))?" <<<"$tree"; then
                echo "   ok    $spec has feature \"zeroize\""
            else
                echo "   FAIL  $spec does not have feature \"zeroize\"; its enabled features:"
                grep -E "^1${crate//./\\.} feature " <<<"$tree" | sed 's/^1/           /' || echo "           (none)"
                failures=$((failures + 1))
            fi
        done
    done
}

check_set "default features" yes
check_set "no_std with PQXDH" yes --no-default-features --features pqxdh
check_set "no_std without PQXDH" no --no-default-features
check_set "aws-lc backend" yes --features aws-lc

if [ "$failures" -ne 0 ]; then
    echo "check-zeroize: FAIL: $failures check(s) failed: a crate lacks the zeroize feature or is missing (see above)" >&2
    exit 1
fi
echo "check-zeroize: OK: zeroize is enabled on every listed crate in every feature set"
