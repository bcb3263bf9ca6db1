//! The X3DH handshake under the crypto backend this bench is built with (issue 19): the
//! default (x25519-dalek and RustCrypto) or, with `--features aws-lc`, AWS-LC's X25519 and
//! AES-256-GCM-SIV. A backend is chosen at compile time, so one binary measures one
//! backend; `benches/backends.sh` builds both, runs them in alternation and prints the
//! ratios the issue sets (X3DH respond at least 1.8x and initiate at least 1.5x faster
//! with `aws-lc`).
//!
//! - `x3dh_initiate/<backend>`: `Session::initiate` from a parsed bundle with a one-time
//!   prekey (Ed25519 `verify_strict` of the signed prekey, `EK_A` generation, 4 X25519,
//!   the X3DH HKDF, the first ratchet key generation, X25519, the root HKDF), as
//!   `benches/ratchet.rs` measures it.
//! - `x3dh_respond/<backend>`: `Session::respond` from the initial message's bytes (a
//!   64-byte plaintext): 4 X25519, the X3DH HKDF, then the first decryption (X25519, root
//!   HKDF, `KDF_CK`, AES-256-GCM-SIV open).
//!
//! ```text
//! cargo bench -j2 --bench backend                      # default backend
//! cargo bench -j2 --bench backend --features aws-lc    # AWS-LC
//! bash benches/backends.sh                             # both, alternated, with ratios
//! ```
//!
//! Each workload is timed by `benches/support/timing.rs`, which keeps every sample; after
//! criterion's output `main` prints one line per workload,
//! `backend-median <backend> <workload> <median ns> <fastest ns>`, over this run's
//! measured samples: the line `benches/backends.sh` reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion};
use doubleratchet::{
    IdentityKeyPair, OneTimePreKey, OneTimePreKeyId, PreKeyBundle, Session, SessionOptions,
    SignedPreKey, SignedPreKeyId,
};
use doubleratchet_test_support::bundle_of;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[allow(dead_code)]
#[path = "support/timing.rs"]
mod timing;
use timing::{fastest_and_median, sample_size, samples, Group};

/// The backend this binary was built with.
const BACKEND: &str = if cfg!(feature = "aws-lc") {
    "aws-lc"
} else {
    "default"
};

/// The workloads, as criterion groups.
const WORKLOADS: [&str; 2] = ["x3dh_initiate", "x3dh_respond"];

/// Both parties' long-term keys and Bob's bundle with a one-time prekey.
struct Parties {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    spk: SignedPreKey,
    opk: OneTimePreKey,
    bundle: PreKeyBundle,
}

fn parties(rng: &mut ChaCha20Rng) -> Parties {
    let alice = IdentityKeyPair::generate(rng).unwrap();
    let bob = IdentityKeyPair::generate(rng).unwrap();
    let spk = SignedPreKey::generate(&bob, SignedPreKeyId::from_u64(1), rng).unwrap();
    let opk = OneTimePreKey::generate(OneTimePreKeyId::from_u64(7), rng).unwrap();
    let bundle = bundle_of(&bob, &spk, Some(&opk));
    Parties {
        alice,
        bob,
        spk,
        opk,
        bundle,
    }
}

fn x3dh(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let p = parties(&mut rng);

    let mut g = Group::new(c, WORKLOADS[0]);
    g.bench(BACKEND, |b| {
        b.iter_batched(
            || (),
            |()| Session::initiate(&p.alice, &p.bundle, &SessionOptions::new(), &mut rng).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.finish();

    let mut alice =
        Session::initiate(&p.alice, &p.bundle, &SessionOptions::new(), &mut rng).unwrap();
    let initial = alice.encrypt(&[0x5au8; 64], &mut rng).unwrap();
    let mut g = Group::new(c, WORKLOADS[1]);
    g.bench(BACKEND, |b| {
        b.iter_batched(
            || (),
            |()| {
                Session::respond(
                    &p.bob,
                    |_| Some(&p.spk),
                    |_| Some(&p.opk),
                    &initial,
                    &SessionOptions::new(),
                )
                .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .configure_from_args();
    x3dh(&mut c);
    c.final_summary();
    let samples = samples();
    for workload in WORKLOADS {
        let id = format!("{workload}/{BACKEND}");
        if let Some((fastest, median)) = samples
            .get(&id)
            .and_then(|s| fastest_and_median(s, sample_size()))
        {
            println!("backend-median {BACKEND} {workload} {median:.0} {fastest:.0}");
        }
    }
}
