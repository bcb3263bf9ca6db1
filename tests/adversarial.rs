//! Adversarial inputs through the public API: replays, every single-bit corruption, every
//! truncation, forged headers that skip too far (or as far as allowed), floods of forged
//! messages, stale and reflected messages, invalid keys in every key position of messages
//! and bundles, bundles signed for another identity, messages for another party or session,
//! malformed framing, oversized input, and a failing RNG. Every rejection is checked for
//! its exact error and for leaving the session (or prekey store) byte-identical.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::layout::{
    BUNDLE_IK, BUNDLE_OPK, BUNDLE_SIGNATURE, BUNDLE_SPK, INITIAL_BODY, INITIAL_DH, INITIAL_EK,
    INITIAL_IK, INITIAL_N, INITIAL_OPK_FLAG, INITIAL_OPK_ID, INITIAL_PN, INITIAL_SPK_ID,
    NORMAL_BODY, NORMAL_DH, NORMAL_N, NORMAL_PN, TAG,
};
use common::{
    assert_rejected, forge_header, get_u32, message_number, previous_chain_length, rng, state,
    text, FailingRng, Offer, Pair, Party,
};
use curve25519_dalek::constants::{EIGHT_TORSION, X25519_LOW_ORDER_POINTS};
use curve25519_dalek::edwards::CompressedEdwardsY;
use doubleratchet::{
    Error, IdentityKey, IdentityKeyPair, Limits, Message, OneTimePreKey, PreKeyBundle, PreKeyStore,
    Session, SignedPreKey, StorageKey, MAX_MESSAGE_SIZE, MAX_PLAINTEXT_SIZE, MAX_SKIP_CAP,
};
use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha20Rng;
use std::collections::HashSet;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `p = 2^255 - 19`, little-endian.
const P: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// `p + k` for `k <= 18`, little-endian (only the low byte changes).
fn p_plus(k: u8) -> [u8; 32] {
    let mut v = P;
    v[0] += k;
    v
}

fn key32(bytes: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(bytes);
    k
}

/// SPEC.md §2.2, written independently: canonical (bit 255 clear, value below p) and not
/// one of the small-order u-coordinates.
fn x25519_acceptable(u: &[u8; 32]) -> bool {
    let high_bit = u[31] & 0x80 != 0;
    let at_least_p = u[31] == 0x7f && u[1..31].iter().all(|b| *b == 0xff) && u[0] >= 0xed;
    let small_order = X25519_LOW_ORDER_POINTS.iter().any(|pt| pt.as_bytes() == u);
    !high_bit && !at_least_p && !small_order
}

/// X25519 encodings every key position must reject: the small-order points (canonical and
/// with bit 255 set), every value in `p..2^255`, and a valid key with bit 255 set.
fn bad_x25519_keys(valid: &[u8; 32]) -> Vec<[u8; 32]> {
    let mut keys: Vec<[u8; 32]> = X25519_LOW_ORDER_POINTS
        .iter()
        .map(|p| p.to_bytes())
        .collect();
    for p in X25519_LOW_ORDER_POINTS.iter() {
        let mut high = p.to_bytes();
        high[31] |= 0x80;
        keys.push(high);
    }
    keys.extend((0..=18).map(p_plus));
    let mut high = *valid;
    high[31] |= 0x80;
    keys.push(high);
    keys.push([0xff; 32]);
    for k in &keys {
        assert!(!x25519_acceptable(k), "{k:02x?}");
    }
    assert!(x25519_acceptable(valid));
    keys
}

/// Ed25519 encodings an identity key position must reject: every point of the 8-torsion
/// subgroup (the identity included), the same with the sign bit set, a `y` that does not
/// decompress, and non-canonical encodings (`y >= p`) of points that are not small order.
fn bad_identity_keys() -> Vec<[u8; 32]> {
    let mut keys = Vec::new();
    for t in EIGHT_TORSION.iter() {
        let c = t.compress().to_bytes();
        keys.push(c);
        let mut signed = c;
        signed[31] ^= 0x80;
        keys.push(signed);
    }
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(keys.contains(&identity));
    let mut y2 = [0u8; 32];
    y2[0] = 2;
    assert!(CompressedEdwardsY(y2).decompress().is_none());
    keys.push(y2);
    let mut non_canonical = 0;
    for k in 0..=18 {
        for sign in [0u8, 0x80] {
            let mut y = p_plus(k);
            y[31] |= sign;
            if let Some(point) = CompressedEdwardsY(y).decompress() {
                if !point.is_small_order() {
                    non_canonical += 1;
                }
            }
            keys.push(y);
        }
    }
    assert!(
        non_canonical > 0,
        "no non-canonical encoding of a full-order point found"
    );
    keys
}

/// The error that rejects a message whose version or type byte was corrupted. A type byte
/// turned into another message type (the post-quantum initial message `0x03` included)
/// makes the rest fail to parse as that type.
fn framing_error(m: &[u8]) -> Error {
    if m[0] != 0x01 {
        return Error::UnsupportedVersion(m[0]);
    }
    match m[1] {
        // Message types (SPEC.md §5.5). A flipped type byte that names the header-encrypted
        // variant of a message may still parse; a session of the other mode then refuses it.
        0x01..=0x06 => Message::parse(m).err().unwrap_or(Error::WrongSession),
        t => Error::UnexpectedType(t),
    }
}

/// The error for a message at `n` in the receiver's current chain, expecting `nr`
/// (SPEC.md §4.6 step 2), for a message that does not authenticate.
fn current_chain_error(n: u32, nr: u32, max_skip: u32) -> Error {
    if n < nr {
        Error::DuplicateOrExpired
    } else if n - nr > max_skip {
        Error::TooFarAhead
    } else {
        Error::DecryptionFailed
    }
}

/// The error for a forged message on a new ratchet key (SPEC.md §4.6 step 3).
fn new_chain_error(pn: u32, n: u32, nr: Option<u32>, max_skip: u32) -> Error {
    let pn_too_far = nr.is_some_and(|nr| pn > nr && pn - nr > max_skip);
    if pn_too_far || n > max_skip {
        Error::TooFarAhead
    } else {
        Error::DecryptionFailed
    }
}

/// Something that receives messages and has a state that must not change on rejection.
trait Receiver {
    fn receive(&mut self, message: &[u8]) -> Result<(), Error>;
    fn snapshot(&self) -> Vec<u8>;
}

impl Receiver for Session {
    fn receive(&mut self, message: &[u8]) -> Result<(), Error> {
        self.decrypt(message).map(|_| ())
    }

    fn snapshot(&self) -> Vec<u8> {
        state(self)
    }
}

/// A responder accepting initial messages through its prekey store.
impl Receiver for Party {
    fn receive(&mut self, message: &[u8]) -> Result<(), Error> {
        self.accept(message).map(|_| ())
    }

    fn snapshot(&self) -> Vec<u8> {
        self.store_state()
    }
}

/// Flips every bit of `message` in turn. Each corrupted copy must be rejected by
/// `receiver` with the error `expected(byte index, corrupted copy)`, leaving its state
/// byte-identical. Returns the distinct errors seen, so that a test can check that every
/// kind of check was reached.
fn flip_every_bit(
    message: &[u8],
    receiver: &mut impl Receiver,
    expected: impl Fn(usize, &[u8]) -> Error,
) -> HashSet<Error> {
    let before = receiver.snapshot();
    let mut seen = HashSet::new();
    for bit in 0..message.len() * 8 {
        let mut m = message.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        let want = expected(bit / 8, &m);
        assert_eq!(
            receiver.receive(&m),
            Err(want),
            "bit {bit} (byte {})",
            bit / 8
        );
        assert!(receiver.snapshot() == before, "bit {bit} changed the state");
        seen.insert(want);
    }
    seen
}

/// Asserts that every error in `expected` was among those `seen`.
#[track_caller]
fn assert_reached(seen: &HashSet<Error>, expected: &[Error]) {
    for e in expected {
        assert!(
            seen.contains(e),
            "no corruption reached {e:?}; saw {seen:?}"
        );
    }
}

/// A random 32-byte string that is an acceptable X25519 public key.
fn random_ratchet_key(r: &mut ChaCha20Rng) -> [u8; 32] {
    loop {
        let mut k = [0u8; 32];
        r.fill_bytes(&mut k);
        k[31] &= 0x7f;
        if x25519_acceptable(&k) {
            return k;
        }
    }
}

/// Alice's next message on a new ratchet key: Bob replies, Alice decrypts and sends.
fn new_chain_message(p: &mut Pair, plaintext: &[u8]) -> Vec<u8> {
    p.deliver_b_to_a(b"turn");
    let m = p.a_sends(plaintext);
    assert_eq!(message_number(&m), 0);
    m
}

// ---------------------------------------------------------------------------------------
// Replays
// ---------------------------------------------------------------------------------------

#[test]
fn replays_are_rejected_and_change_nothing() {
    let mut p = Pair::established(100);
    // In order.
    let m = p.deliver_a_to_b(b"once");
    assert_rejected(&mut p.b, &m, Error::DuplicateOrExpired);
    // Through the skipped-key store.
    let m1 = p.a_sends(b"one");
    let m2 = p.a_sends(b"two");
    assert_eq!(p.b.decrypt(&m2).unwrap(), b"two");
    assert_eq!(p.b.decrypt(&m1).unwrap(), b"one");
    assert_rejected(&mut p.b, &m1, Error::DuplicateOrExpired);
    assert_rejected(&mut p.b, &m2, Error::DuplicateOrExpired);
    // The other direction, on a fresh ratchet step.
    let r = p.deliver_b_to_a(b"reply");
    assert_rejected(&mut p.a, &r, Error::DuplicateOrExpired);

    // A later initial message, replayed to the responder's session.
    let mut q = Pair::started(101);
    let i2 = q.a_sends(b"second initial");
    assert_eq!(q.b.decrypt(&i2).unwrap(), b"second initial");
    assert_rejected(&mut q.b, &i2, Error::DuplicateOrExpired);
}

#[test]
fn replay_after_reload_is_rejected() {
    let mut p = Pair::established(102);
    let m1 = p.a_sends(b"one");
    let m2 = p.a_sends(b"two");
    let m3 = p.a_sends(b"three");
    assert_eq!(p.b.decrypt(&m3).unwrap(), b"three");
    assert_eq!(p.b.decrypt(&m1).unwrap(), b"one");
    let mut b = Session::from_bytes(&p.b.to_bytes()).unwrap();
    assert_rejected(&mut b, &m3, Error::DuplicateOrExpired);
    assert_rejected(&mut b, &m1, Error::DuplicateOrExpired);
    // The skipped key survives the reload, and is deleted once used.
    assert_eq!(b.decrypt(&m2).unwrap(), b"two");
    let mut b = Session::from_bytes(&b.to_bytes()).unwrap();
    assert_rejected(&mut b, &m2, Error::DuplicateOrExpired);
    assert_eq!(b.stored_skipped_keys(), 0);
}

#[test]
fn messages_from_old_chains_are_rejected() {
    let mut p = Pair::established(103);
    let decrypted = p.deliver_a_to_b(b"decrypted long ago");
    let skipped = p.a_sends(b"skipped, used later");
    let after = p.a_sends(b"after");
    assert_eq!(p.b.decrypt(&after).unwrap(), b"after");
    p.ping_pong(10);
    // A skipped key from an old chain still works once...
    assert_eq!(p.b.decrypt(&skipped).unwrap(), b"skipped, used later");
    // ...and then, like every replay from a chain that is gone, fails authentication
    // (SPEC.md §4.7: DecryptionFailed once its chain is gone).
    assert_rejected(&mut p.b, &skipped, Error::DecryptionFailed);
    assert_rejected(&mut p.b, &decrypted, Error::DecryptionFailed);

    // Keys that were never stored (max_stored_skipped = 0).
    p.b.set_limits(Limits {
        max_skip: 1000,
        max_stored_skipped: 0,
    })
    .unwrap();
    let m = new_chain_message(&mut p, b"first");
    assert_eq!(p.b.decrypt(&m).unwrap(), b"first");
    let lost = p.a_sends(b"never stored");
    let m = p.a_sends(b"next");
    assert_eq!(p.b.decrypt(&m).unwrap(), b"next");
    assert_eq!(p.b.stored_skipped_keys(), 0);
    // In the current chain it is known to be behind: DuplicateOrExpired.
    assert_rejected(&mut p.b, &lost, Error::DuplicateOrExpired);
    p.ping_pong(5);
    // Once its chain is gone: DecryptionFailed.
    assert_rejected(&mut p.b, &lost, Error::DecryptionFailed);
    p.ping_pong(1);
}

// ---------------------------------------------------------------------------------------
// Corruption: every bit, every truncation, trailing bytes
// ---------------------------------------------------------------------------------------

#[test]
fn every_bit_flip_of_an_initial_message_is_rejected() {
    let mut p = Pair::started(110);
    // Bob's session has received N = 0 of Alice's chain; this is N = 1.
    let m = p.a_sends(b"initial message under attack");
    let max_skip = p.b.limits().max_skip;
    let seen = flip_every_bit(&m, &mut p.b, |byte, x| match byte {
        0 | 1 => framing_error(x),
        b if b < INITIAL_EK => match IdentityKey::from_bytes(&key32(&x[INITIAL_IK..INITIAL_EK])) {
            Err(_) => Error::InvalidPublicKey,
            Ok(_) => Error::WrongSession,
        },
        b if b < INITIAL_SPK_ID => {
            if x25519_acceptable(&key32(&x[INITIAL_EK..INITIAL_SPK_ID])) {
                Error::WrongSession
            } else {
                Error::InvalidPublicKey
            }
        }
        INITIAL_OPK_FLAG => Error::InvalidEncoding,
        b if (INITIAL_DH..INITIAL_PN).contains(&b) => {
            if x25519_acceptable(&key32(&x[INITIAL_DH..INITIAL_PN])) {
                Error::DecryptionFailed
            } else {
                Error::InvalidPublicKey
            }
        }
        b if (INITIAL_N..INITIAL_BODY).contains(&b) => {
            current_chain_error(get_u32(x, INITIAL_N), 1, max_skip)
        }
        // Prekey ids, PN and the ciphertext are only authenticated.
        _ => Error::DecryptionFailed,
    });
    assert_reached(
        &seen,
        &[
            Error::UnsupportedVersion(0x81),
            Error::InvalidPublicKey,
            Error::WrongSession,
            Error::InvalidEncoding,
            Error::DuplicateOrExpired,
            Error::TooFarAhead,
            Error::DecryptionFailed,
        ],
    );
    assert_eq!(p.b.decrypt(&m).unwrap(), b"initial message under attack");
}

#[test]
fn every_bit_flip_of_an_initial_message_is_rejected_by_the_prekey_store() {
    let mut o = Offer::new(111);
    let max_skip = Limits::default().max_skip;
    let seen = flip_every_bit(&o.first, &mut o.bob, |byte, x| match byte {
        0 | 1 => framing_error(x),
        b if b < INITIAL_EK => {
            match IdentityKey::from_bytes(&key32(&x[INITIAL_IK..INITIAL_EK])) {
                Err(_) => Error::InvalidPublicKey,
                // Another IK_A: DH1 differs, so does SK.
                Ok(_) => Error::DecryptionFailed,
            }
        }
        b if b < INITIAL_SPK_ID => {
            if x25519_acceptable(&key32(&x[INITIAL_EK..INITIAL_SPK_ID])) {
                Error::DecryptionFailed
            } else {
                Error::InvalidPublicKey
            }
        }
        b if b < INITIAL_OPK_FLAG => Error::UnknownSignedPreKey(get_u32(x, INITIAL_SPK_ID)),
        INITIAL_OPK_FLAG => Error::InvalidEncoding,
        b if b < INITIAL_DH => Error::UnknownOneTimePreKey(get_u32(x, INITIAL_OPK_ID)),
        b if b < INITIAL_PN => {
            if x25519_acceptable(&key32(&x[INITIAL_DH..INITIAL_PN])) {
                Error::DecryptionFailed
            } else {
                Error::InvalidPublicKey
            }
        }
        // A new responder has no receiving chain, so PN is only authenticated.
        b if b < INITIAL_N => Error::DecryptionFailed,
        b if b < INITIAL_BODY => new_chain_error(0, get_u32(x, INITIAL_N), None, max_skip),
        _ => Error::DecryptionFailed,
    });
    assert_reached(
        &seen,
        &[
            Error::UnexpectedType(0x0a),
            Error::InvalidPublicKey,
            Error::UnknownSignedPreKey(1 ^ 0x8000_0000),
            Error::InvalidEncoding,
            Error::UnknownOneTimePreKey(o.one_time_prekey() ^ 0x10),
            Error::TooFarAhead,
            Error::DecryptionFailed,
        ],
    );
    assert!(o.bob.store.one_time_prekey(o.one_time_prekey()).is_some());
    o.accepted();
}

#[test]
fn every_bit_flip_of_a_normal_message_is_rejected() {
    let mut p = Pair::established(112);
    // Bob expects N = 1 of Alice's current chain next; this is it.
    let m = p.a_sends(b"normal message under attack");
    assert_eq!(message_number(&m), 1);
    let max_skip = p.b.limits().max_skip;
    let seen = flip_every_bit(&m, &mut p.b, |byte, x| match byte {
        0 | 1 => framing_error(x),
        // Another ratchet key starts a (forged) ratchet step.
        b if b < NORMAL_PN => {
            if x25519_acceptable(&key32(&x[NORMAL_DH..NORMAL_PN])) {
                new_chain_error(get_u32(x, NORMAL_PN), 1, Some(1), max_skip)
            } else {
                Error::InvalidPublicKey
            }
        }
        // In the current chain PN is only authenticated.
        b if b < NORMAL_N => Error::DecryptionFailed,
        b if b < NORMAL_BODY => current_chain_error(get_u32(x, NORMAL_N), 1, max_skip),
        _ => Error::DecryptionFailed,
    });
    assert_reached(
        &seen,
        &[
            Error::UnsupportedVersion(0x00),
            Error::UnexpectedType(0x09),
            Error::InvalidPublicKey,
            Error::DuplicateOrExpired,
            Error::TooFarAhead,
            Error::DecryptionFailed,
        ],
    );
    assert_eq!(p.b.decrypt(&m).unwrap(), b"normal message under attack");
}

#[test]
fn every_bit_flip_of_a_ratchet_step_message_is_rejected() {
    let mut p = Pair::established(113);
    let m = new_chain_message(&mut p, b"new ratchet key under attack");
    assert_eq!(previous_chain_length(&m), 1);
    // Bob's receiving chain is at Nr = 1 (he received "answer").
    let nr = Some(1);
    let max_skip = p.b.limits().max_skip;
    let seen = flip_every_bit(&m, &mut p.b, |byte, x| match byte {
        0 | 1 => framing_error(x),
        b if b < NORMAL_PN => {
            if x25519_acceptable(&key32(&x[NORMAL_DH..NORMAL_PN])) {
                Error::DecryptionFailed
            } else {
                Error::InvalidPublicKey
            }
        }
        b if b < NORMAL_BODY => {
            new_chain_error(get_u32(x, NORMAL_PN), get_u32(x, NORMAL_N), nr, max_skip)
        }
        _ => Error::DecryptionFailed,
    });
    assert_reached(
        &seen,
        &[
            Error::InvalidPublicKey,
            Error::TooFarAhead,
            Error::DecryptionFailed,
        ],
    );
    assert_eq!(p.b.decrypt(&m).unwrap(), b"new ratchet key under attack");
}

#[test]
fn every_truncation_and_a_trailing_byte_are_rejected() {
    // Every shortening of an initial message and one byte more, to the prekey store and
    // (a later initial message) to the responder's session.
    let variants = |m: &[u8]| {
        let mut v: Vec<Vec<u8>> = (0..m.len()).map(|len| m[..len].to_vec()).collect();
        v.push([m, &[0][..]].concat());
        v
    };
    let initial_error = |m: &[u8]| {
        if m.len() < INITIAL_BODY + TAG {
            Error::Truncated
        } else {
            Error::DecryptionFailed
        }
    };
    let mut o = Offer::new(114);
    for m in variants(&o.first) {
        let before = o.bob.store_state();
        let want = initial_error(&m);
        assert_eq!(o.bob.accept(&m).map(|_| ()), Err(want), "len {}", m.len());
        assert_eq!(o.bob.store_state(), before);
    }
    let mut p = o.accepted();
    let initial = p.a_sends(b"an initial message");
    for m in variants(&initial) {
        assert_rejected(&mut p.b, &m, initial_error(&m));
    }

    p.deliver_b_to_a(b"reply");
    let normal = p.a_sends(b"a normal message");
    let mut extended = normal.clone();
    extended.push(0);
    assert_rejected(&mut p.b, &extended, Error::DecryptionFailed);
    for len in 0..normal.len() {
        let want = if len < NORMAL_BODY + TAG {
            Error::Truncated
        } else {
            Error::DecryptionFailed
        };
        assert_rejected(&mut p.b, &normal[..len], want);
    }
    // An empty plaintext gives the shortest message, which is not truncated.
    let empty = p.a_sends(b"");
    assert_eq!(empty.len(), NORMAL_BODY + TAG);
    assert_eq!(p.b.decrypt(&initial).unwrap(), b"an initial message");
    assert_eq!(p.b.decrypt(&normal).unwrap(), b"a normal message");
    assert_eq!(p.b.decrypt(&empty).unwrap(), b"");
}

// ---------------------------------------------------------------------------------------
// Bounds on skipping
// ---------------------------------------------------------------------------------------

#[test]
fn too_far_ahead_in_the_current_chain() {
    let mut p = Pair::established(120);
    let max_skip = p.b.limits().max_skip;
    // Forged: Bob expects N = 1; one past the bound is refused before any derivation,
    // the bound itself is allowed and then fails authentication.
    let m = p.a_sends(b"x");
    assert_eq!(message_number(&m), 1);
    assert_rejected(
        &mut p.b,
        &forge_header(&m, None, None, Some(1 + max_skip + 1)),
        Error::TooFarAhead,
    );
    assert_rejected(
        &mut p.b,
        &forge_header(&m, None, None, Some(1 + max_skip)),
        Error::DecryptionFailed,
    );
    assert_eq!(p.b.decrypt(&m).unwrap(), b"x");

    // Genuine messages, with a small bound: Bob expects N = 2.
    p.b.set_limits(Limits {
        max_skip: 20,
        max_stored_skipped: 100,
    })
    .unwrap();
    let msgs: Vec<_> = (0..22).map(|i| p.a_sends(&text("a", i))).collect();
    assert_eq!(message_number(&msgs[21]), 23);
    assert_rejected(&mut p.b, &msgs[21], Error::TooFarAhead);
    assert_eq!(p.b.decrypt(&msgs[20]).unwrap(), text("a", 20));
    assert_eq!(p.b.stored_skipped_keys(), 20);
    assert_eq!(p.b.decrypt(&msgs[21]).unwrap(), text("a", 21));
}

#[test]
fn too_far_ahead_in_a_new_chain() {
    let mut p = Pair::established(121);
    let max_skip = p.b.limits().max_skip;
    let m = new_chain_message(&mut p, b"x");
    assert_rejected(
        &mut p.b,
        &forge_header(&m, None, None, Some(max_skip + 1)),
        Error::TooFarAhead,
    );
    assert_rejected(
        &mut p.b,
        &forge_header(&m, None, None, Some(max_skip)),
        Error::DecryptionFailed,
    );

    // Genuine messages with a small bound: the new chain's N = 21 is one too many.
    p.b.set_limits(Limits {
        max_skip: 20,
        max_stored_skipped: 100,
    })
    .unwrap();
    let msgs: Vec<_> = (0..21).map(|i| p.a_sends(&text("a", i))).collect();
    assert_eq!(message_number(&msgs[20]), 21);
    assert_rejected(&mut p.b, &msgs[20], Error::TooFarAhead);
    assert_eq!(p.b.decrypt(&msgs[19]).unwrap(), text("a", 19));
    assert_eq!(p.b.stored_skipped_keys(), 20); // N = 0 (m) and 1..=19
    assert_eq!(p.b.decrypt(&m).unwrap(), b"x");
}

#[test]
fn previous_chain_length_too_far_ahead() {
    let mut p = Pair::established(122);
    let max_skip = p.b.limits().max_skip;
    let m = new_chain_message(&mut p, b"x");
    // Bob's receiving chain expects N = 1.
    assert_rejected(
        &mut p.b,
        &forge_header(&m, None, Some(1 + max_skip + 1), None),
        Error::TooFarAhead,
    );
    assert_rejected(
        &mut p.b,
        &forge_header(&m, None, Some(1 + max_skip), None),
        Error::DecryptionFailed,
    );
    assert_eq!(p.b.decrypt(&m).unwrap(), b"x");

    // Genuine: 21 messages of Alice's chain are lost, then she ratchets; PN = 22 is 21
    // ahead of Bob's Nr = 1.
    p.b.set_limits(Limits {
        max_skip: 20,
        max_stored_skipped: 100,
    })
    .unwrap();
    let lost: Vec<_> = (0..21).map(|i| p.a_sends(&text("lost", i))).collect();
    let next = new_chain_message(&mut p, b"next chain");
    assert_eq!(previous_chain_length(&next), 22);
    assert_rejected(&mut p.b, &next, Error::TooFarAhead);
    // Once one of the lost messages arrives the gap is within the bound.
    assert_eq!(p.b.decrypt(&lost[20]).unwrap(), text("lost", 20));
    assert_eq!(p.b.decrypt(&next).unwrap(), b"next chain");
}

#[test]
fn maximal_counters_in_headers() {
    for max_skip in [Limits::default().max_skip, MAX_SKIP_CAP] {
        let mut p = Pair::established(123);
        p.b.set_limits(Limits {
            max_skip,
            max_stored_skipped: 2000,
        })
        .unwrap();
        let current = p.a_sends(b"current chain");
        let m = new_chain_message(&mut p, b"new chain");
        for (pn, n) in [(None, Some(u32::MAX)), (Some(u32::MAX), None)] {
            assert_rejected(
                &mut p.b,
                &forge_header(&current, None, pn, n),
                if pn.is_some() {
                    // PN is not used for a message in the current chain.
                    Error::DecryptionFailed
                } else {
                    Error::TooFarAhead
                },
            );
            assert_rejected(&mut p.b, &forge_header(&m, None, pn, n), Error::TooFarAhead);
        }
        let both = Some(u32::MAX);
        assert_rejected(
            &mut p.b,
            &forge_header(&m, None, both, both),
            Error::TooFarAhead,
        );
        assert_rejected(
            &mut p.b,
            &forge_header(&current, None, both, both),
            Error::TooFarAhead,
        );
        assert_eq!(p.b.decrypt(&m).unwrap(), b"new chain");
        assert_eq!(p.b.decrypt(&current).unwrap(), b"current chain");
    }

    // An initiator that has no receiving chain yet ignores PN (nothing to skip) but still
    // bounds N.
    let mut p = Pair::started(124);
    let reply = p.b_sends(b"reply");
    assert_rejected(
        &mut p.a,
        &forge_header(&reply, None, Some(u32::MAX), None),
        Error::DecryptionFailed,
    );
    assert_rejected(
        &mut p.a,
        &forge_header(&reply, None, None, Some(u32::MAX)),
        Error::TooFarAhead,
    );
    assert_eq!(p.a.decrypt(&reply).unwrap(), b"reply");
    // And the responder bounds N of its very first message.
    let mut o = Offer::new(125);
    let before = o.bob.store_state();
    for (pn, n) in [
        (u32::MAX, u32::MAX),
        (0, u32::MAX),
        (0, Limits::default().max_skip + 1),
    ] {
        let forged = forge_header(&o.first, None, Some(pn), Some(n));
        assert_eq!(o.bob.accept(&forged).map(|_| ()), Err(Error::TooFarAhead));
        assert_eq!(o.bob.store_state(), before);
    }
    // A responder has no receiving chain to skip in, so PN alone is only authenticated.
    let forged = forge_header(&o.first, None, Some(u32::MAX), None);
    assert_eq!(
        o.bob.accept(&forged).map(|_| ()),
        Err(Error::DecryptionFailed)
    );
    assert_eq!(o.bob.store_state(), before);
    o.accepted();
}

#[test]
fn flood_of_forged_messages_changes_nothing() {
    let mut p = Pair::established(125);
    let max_skip = p.b.limits().max_skip;
    let current = p.a_sends(b"genuine, current chain");
    let mut r = rng(1250);
    let before = state(&p.b);
    for i in 0..200u32 {
        let forged = match i % 4 {
            // The full max_skip in the current chain (Bob expects N = 1).
            0 => forge_header(&current, None, None, Some(1 + max_skip)),
            // A new chain ending the current one max_skip ahead, and skipping max_skip in it.
            1 => forge_header(
                &current,
                Some(random_ratchet_key(&mut r)),
                Some(1 + max_skip),
                Some(max_skip),
            ),
            // One past each bound.
            2 => forge_header(&current, None, None, Some(2 + max_skip + i)),
            _ => forge_header(
                &current,
                Some(random_ratchet_key(&mut r)),
                Some(2 + max_skip),
                Some(i),
            ),
        };
        let want = if i % 4 < 2 {
            Error::DecryptionFailed
        } else {
            Error::TooFarAhead
        };
        assert_eq!(p.b.decrypt(&forged), Err(want), "forgery {i}");
        assert_eq!(p.b.stored_skipped_keys(), 0);
    }
    assert!(state(&p.b) == before);
    assert_eq!(p.b.decrypt(&current).unwrap(), b"genuine, current chain");
    p.ping_pong(2);
}

// ---------------------------------------------------------------------------------------
// Reflection, wrong party, wrong session
// ---------------------------------------------------------------------------------------

#[test]
fn reflected_messages_are_rejected() {
    let mut p = Pair::started(130);
    // An initiator's session never accepts an initial message, its own included.
    let own_initial = p.a_sends(b"mine");
    assert_rejected(&mut p.a, &own_initial, Error::WrongSession);
    // The responder's own messages, reflected.
    let own_reply = p.b_sends(b"bob's");
    assert_rejected(&mut p.b, &own_reply, Error::DecryptionFailed);
    assert_eq!(p.a.decrypt(&own_reply).unwrap(), b"bob's");

    // Alice's normal message while its ratchet key is still her current one...
    let own = p.a_sends(b"alice's");
    assert_rejected(&mut p.a, &own, Error::DecryptionFailed);
    assert_eq!(p.b.decrypt(&own).unwrap(), b"alice's");
    // ...after she received on a new chain but before she sent on a new key...
    p.deliver_b_to_a(b"turn");
    assert_rejected(&mut p.a, &own, Error::DecryptionFailed);
    // ...and after she moved on to a new ratchet key.
    p.deliver_a_to_b(b"new key");
    assert_rejected(&mut p.a, &own, Error::DecryptionFailed);
    p.ping_pong(2);
}

#[test]
fn message_for_carols_bundle_is_rejected_by_bobs_store() {
    let mut r = rng(131);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let mut carol = Party::new(&mut r);
    let bob_bundle = bob.bundle(&mut r);
    let carol_bundle = carol.bundle(&mut r);
    // Same prekey ids on both sides, so only the keys differ.
    assert_eq!(
        bob_bundle.signed_prekey_id(),
        carol_bundle.signed_prekey_id()
    );
    assert_eq!(
        bob_bundle.one_time_prekey_id(),
        carol_bundle.one_time_prekey_id()
    );
    let mut a = Session::initiate(&alice.identity, &carol_bundle, &mut r).unwrap();
    let m = a.encrypt(b"for carol", &mut r).unwrap();
    let before = bob.store_state();
    assert_eq!(bob.accept(&m).map(|_| ()), Err(Error::DecryptionFailed));
    assert_eq!(bob.store_state(), before);
    let mut c = carol.accept(&m).unwrap().session;
    let reply = c.encrypt(b"carol here", &mut r).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"carol here");
    // Carol's session rejects Bob's would-be messages for the same reason.
    let mut b_bundle_session = Session::initiate(&alice.identity, &bob_bundle, &mut r).unwrap();
    let to_bob = b_bundle_session.encrypt(b"for bob", &mut r).unwrap();
    assert_rejected(&mut c, &to_bob, Error::WrongSession);
}

#[test]
fn messages_of_another_session_between_the_same_pair_are_rejected() {
    let mut r = rng(132);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let bundle1 = bob.bundle(&mut r);
    let bundle2 = bob.bundle(&mut r);
    let mut a1 = Session::initiate(&alice.identity, &bundle1, &mut r).unwrap();
    let mut a2 = Session::initiate(&alice.identity, &bundle2, &mut r).unwrap();
    let i1 = a1.encrypt(b"session 1", &mut r).unwrap();
    let i2 = a2.encrypt(b"session 2", &mut r).unwrap();
    let mut b1 = bob.accept(&i1).unwrap().session;
    let mut b2 = bob.accept(&i2).unwrap().session;
    assert_ne!(b1.id(), b2.id());

    // Initial messages are routed by session id: the other session refuses them.
    let later_i1 = a1.encrypt(b"session 1 again", &mut r).unwrap();
    assert_rejected(&mut b2, &later_i1, Error::WrongSession);
    assert_rejected(&mut b2, &i1, Error::WrongSession);
    assert_rejected(&mut b1, &i2, Error::WrongSession);

    // Normal messages, both directions.
    let r1 = b1.encrypt(b"to a1", &mut r).unwrap();
    assert_rejected(&mut a2, &r1, Error::DecryptionFailed);
    assert_eq!(a1.decrypt(&r1).unwrap(), b"to a1");
    let r2 = b2.encrypt(b"to a2", &mut r).unwrap();
    assert_eq!(a2.decrypt(&r2).unwrap(), b"to a2");
    let n1 = a1.encrypt(b"normal 1", &mut r).unwrap();
    assert_rejected(&mut b2, &n1, Error::DecryptionFailed);
    assert_eq!(b1.decrypt(&n1).unwrap(), b"normal 1");
    assert_eq!(b1.decrypt(&later_i1).unwrap(), b"session 1 again");
    let n2 = a2.encrypt(b"normal 2", &mut r).unwrap();
    assert_rejected(&mut b1, &n2, Error::DecryptionFailed);
    assert_eq!(b2.decrypt(&n2).unwrap(), b"normal 2");
}

#[test]
fn respond_refuses_normal_messages_and_self_sessions() {
    let mut p = Pair::established(133);
    let normal = p.a_sends(b"normal");
    let before = p.bob.store_state();
    assert_eq!(
        Session::respond(
            &p.bob.identity,
            |id| p.bob.store.signed_prekey(id),
            |id| p.bob.store.one_time_prekey(id),
            &normal,
        )
        .map(|_| ()),
        Err(Error::NotInitialMessage)
    );
    assert_eq!(
        p.bob.accept(&normal).map(|_| ()),
        Err(Error::NotInitialMessage)
    );
    assert_eq!(p.bob.store_state(), before);

    // Bob's own bundle cannot start a session with himself...
    let own = p.bob.bundle(&mut p.rng);
    assert_eq!(
        Session::initiate(&p.bob.identity, &own, &mut p.rng).map(|_| ()),
        Err(Error::WrongSession)
    );
    // ...and an initial message claiming to come from Bob is refused by Bob.
    let mut o = Offer::new(134);
    let mut forged = o.first.clone();
    forged[INITIAL_IK..INITIAL_EK].copy_from_slice(o.bob.identity.public_key().as_bytes());
    let before = o.bob.store_state();
    assert_eq!(o.bob.accept(&forged).map(|_| ()), Err(Error::WrongSession));
    assert_eq!(o.bob.store_state(), before);
    o.accepted();
}

// ---------------------------------------------------------------------------------------
// Invalid keys and bundles
// ---------------------------------------------------------------------------------------

/// Puts `key` at `at` in a copy of `message`; the result must be refused by parsing, by
/// `session` (unchanged) and, for an initial message, by the prekey store (unchanged).
fn assert_key_rejected(
    message: &[u8],
    at: usize,
    key: &[u8; 32],
    session: &mut Session,
    store: &mut Party,
) {
    let mut m = message.to_vec();
    m[at..at + 32].copy_from_slice(key);
    assert_eq!(
        Message::parse(&m),
        Err(Error::InvalidPublicKey),
        "{key:02x?} at {at}"
    );
    assert_rejected(session, &m, Error::InvalidPublicKey);
    if m[1] == common::layout::TYPE_INITIAL {
        let before = store.store_state();
        assert_eq!(store.accept(&m).map(|_| ()), Err(Error::InvalidPublicKey));
        assert_eq!(store.store_state(), before);
    }
}

#[test]
fn invalid_keys_in_every_message_key_position_are_rejected() {
    let mut p = Pair::started(140);
    let initial = p.a_sends(b"initial");
    let valid = key32(&initial[INITIAL_EK..INITIAL_EK + 32]);
    let bad_x = bad_x25519_keys(&valid);
    let bad_ed = bad_identity_keys();
    for key in &bad_ed {
        assert_eq!(IdentityKey::from_bytes(key), Err(Error::InvalidPublicKey));
        assert_key_rejected(&initial, INITIAL_IK, key, &mut p.b, &mut p.bob);
    }
    for key in &bad_x {
        assert_key_rejected(&initial, INITIAL_EK, key, &mut p.b, &mut p.bob);
        assert_key_rejected(&initial, INITIAL_DH, key, &mut p.b, &mut p.bob);
    }
    p.deliver_b_to_a(b"reply");
    let normal = p.a_sends(b"normal");
    for key in &bad_x {
        assert_key_rejected(&normal, NORMAL_DH, key, &mut p.b, &mut p.bob);
    }
    assert_eq!(p.b.decrypt(&initial).unwrap(), b"initial");
    assert_eq!(p.b.decrypt(&normal).unwrap(), b"normal");
}

#[test]
fn invalid_keys_in_every_bundle_key_position_are_rejected() {
    let mut r = rng(141);
    let mut bob = Party::new(&mut r);
    let bytes = bob.bundle(&mut r).to_bytes();
    assert_eq!(bytes.len(), doubleratchet::BUNDLE_LENGTH);
    let valid = key32(&bytes[BUNDLE_SPK..BUNDLE_SPK + 32]);
    let positions: [(usize, Vec<[u8; 32]>); 3] = [
        (BUNDLE_IK, bad_identity_keys()),
        (BUNDLE_SPK, bad_x25519_keys(&valid)),
        (BUNDLE_OPK, bad_x25519_keys(&valid)),
    ];
    for (at, keys) in positions {
        for key in keys {
            let mut b = bytes.clone();
            b[at..at + 32].copy_from_slice(&key);
            assert_eq!(
                PreKeyBundle::from_bytes(&b),
                Err(Error::InvalidPublicKey),
                "{key:02x?} at {at}"
            );
        }
    }
    assert!(PreKeyBundle::from_bytes(&bytes).is_ok());
}

#[test]
fn bundle_signed_for_another_identity_is_rejected() {
    let mut r = rng(142);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let mut carol = Party::new(&mut r);
    let bob_bytes = bob.bundle(&mut r).to_bytes();
    let carol_bytes = carol.bundle(&mut r).to_bytes();

    // Bob's signed prekey and valid signature, Carol's identity key.
    let mut swapped = bob_bytes.clone();
    swapped[BUNDLE_IK..BUNDLE_IK + 32].copy_from_slice(&carol_bytes[BUNDLE_IK..BUNDLE_IK + 32]);
    // Bob's identity key, Carol's signed prekey with her valid signature.
    let mut grafted = bob_bytes.clone();
    grafted[BUNDLE_SPK..BUNDLE_SIGNATURE + 64]
        .copy_from_slice(&carol_bytes[BUNDLE_SPK..BUNDLE_SIGNATURE + 64]);
    // A corrupted signature.
    let mut corrupted = bob_bytes.clone();
    corrupted[BUNDLE_SIGNATURE + 5] ^= 0x10;

    for forged in [swapped, grafted, corrupted] {
        let bundle = PreKeyBundle::from_bytes(&forged).unwrap();
        assert_eq!(bundle.verify(), Err(Error::InvalidSignature));
        // Refused before drawing any randomness.
        let mut probe = r.clone();
        assert_eq!(
            Session::initiate(&alice.identity, &bundle, &mut r).map(|_| ()),
            Err(Error::InvalidSignature)
        );
        assert_eq!(probe.next_u64(), r.next_u64());
    }
    for genuine in [bob_bytes, carol_bytes] {
        let bundle = PreKeyBundle::from_bytes(&genuine).unwrap();
        assert_eq!(bundle.verify(), Ok(()));
        Session::initiate(&alice.identity, &bundle, &mut r).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Framing and sizes
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_version_and_type_bytes_are_typed_errors() {
    let mut p = Pair::established(150);
    let normal = p.a_sends(b"normal");
    let mut q = Pair::started(151);
    let initial = q.a_sends(b"initial");
    let bundle = q.bob.bundle(&mut q.rng).to_bytes();
    for v in [0x00u8, 0x02, 0x7f, 0xff] {
        for m in [&normal, &initial] {
            let mut x = m.clone();
            x[0] = v;
            assert_eq!(Message::parse(&x), Err(Error::UnsupportedVersion(v)));
            assert_rejected(&mut p.b, &x, Error::UnsupportedVersion(v));
            assert_eq!(
                q.bob.accept(&x).map(|_| ()),
                Err(Error::UnsupportedVersion(v))
            );
        }
        let mut x = bundle.clone();
        x[0] = v;
        assert_eq!(
            PreKeyBundle::from_bytes(&x),
            Err(Error::UnsupportedVersion(v))
        );
    }
    // Unknown types, and the other object types of SPEC.md §5.5.
    // (0x03-0x06 are the post-quantum and header-encrypted messages.)
    for t in [0x00u8, 0x07, 0x10, 0x20, 0x24, 0x30, 0xff] {
        for m in [&normal, &initial] {
            let mut x = m.clone();
            x[1] = t;
            assert_eq!(Message::parse(&x), Err(Error::UnexpectedType(t)));
            assert_rejected(&mut p.b, &x, Error::UnexpectedType(t));
            assert_eq!(q.bob.accept(&x).map(|_| ()), Err(Error::UnexpectedType(t)));
        }
    }
    // (0x11 is the post-quantum bundle.)
    for t in [0x01u8, 0x02, 0x20] {
        let mut x = bundle.clone();
        x[1] = t;
        assert_eq!(PreKeyBundle::from_bytes(&x), Err(Error::UnexpectedType(t)));
    }
    // A message is not a bundle, and a bundle is not a message.
    assert_eq!(
        PreKeyBundle::from_bytes(&normal),
        Err(Error::UnexpectedType(0x01))
    );
    assert_rejected(&mut p.b, &bundle, Error::UnexpectedType(0x10));
    assert_eq!(p.b.decrypt(&normal).unwrap(), b"normal");
}

#[test]
fn oversized_messages_and_plaintexts_are_too_large() {
    let mut p = Pair::started(160);
    // The largest plaintext fills an initial message exactly to MAX_MESSAGE_SIZE.
    let big = vec![0x5a; MAX_PLAINTEXT_SIZE];
    let too_big = vec![0x5a; MAX_PLAINTEXT_SIZE + 1];
    let before = state(&p.a);
    assert_eq!(p.a.encrypt(&too_big, &mut p.rng), Err(Error::TooLarge));
    assert!(state(&p.a) == before);
    let largest = p.a_sends(&big);
    assert!(largest.len() <= MAX_MESSAGE_SIZE);

    // Padded to exactly the limit, a message is parsed (and fails authentication)...
    let mut at_limit = largest.clone();
    at_limit.resize(MAX_MESSAGE_SIZE, 0);
    if at_limit.len() > largest.len() {
        assert_rejected(&mut p.b, &at_limit, Error::DecryptionFailed);
    }
    // ...one byte more is TooLarge before anything else is looked at.
    let mut over = largest.clone();
    over.resize(MAX_MESSAGE_SIZE + 1, 0);
    assert_eq!(Message::parse(&over), Err(Error::TooLarge));
    assert_rejected(&mut p.b, &over, Error::TooLarge);
    let store_before = p.bob.store_state();
    assert_eq!(p.bob.accept(&over).map(|_| ()), Err(Error::TooLarge));
    assert_eq!(p.bob.store_state(), store_before);
    // Even garbage of that size.
    let garbage = vec![0xffu8; MAX_MESSAGE_SIZE + 1];
    assert_eq!(Message::parse(&garbage), Err(Error::TooLarge));
    assert_rejected(&mut p.b, &garbage, Error::TooLarge);
    assert_eq!(p.b.decrypt(&largest).unwrap(), big);

    // A normal-mode session refuses the same plaintext sizes.
    p.deliver_b_to_a(b"reply");
    let before = state(&p.a);
    assert_eq!(p.a.encrypt(&too_big, &mut p.rng), Err(Error::TooLarge));
    assert!(state(&p.a) == before);
    p.ping_pong(1);
}

// ---------------------------------------------------------------------------------------
// A failing RNG
// ---------------------------------------------------------------------------------------

const UNAVAILABLE: Result<(), Error> = Err(Error::RandomnessUnavailable);

#[test]
fn failing_rng_is_a_typed_error_and_changes_nothing() {
    let down = || FailingRng::new(0);
    assert_eq!(
        IdentityKeyPair::generate(&mut down()).map(|_| ()),
        UNAVAILABLE
    );
    assert_eq!(StorageKey::generate(&mut down()).map(|_| ()), UNAVAILABLE);
    assert_eq!(
        OneTimePreKey::generate(1, &mut down()).map(|_| ()),
        UNAVAILABLE
    );

    let mut p = Pair::started(170);
    let identity = &p.bob.identity;
    assert_eq!(
        SignedPreKey::generate(identity, 9, &mut down()).map(|_| ()),
        UNAVAILABLE
    );
    assert_eq!(
        PreKeyStore::new(identity, &mut down()).map(|_| ()),
        UNAVAILABLE
    );
    let before = p.bob.store_state();
    assert_eq!(
        p.bob
            .store
            .generate_one_time_prekeys(5, &mut FailingRng::new(2))
            .map(|_| ()),
        UNAVAILABLE
    );
    assert_eq!(
        p.bob
            .store
            .rotate_signed_prekey(&p.bob.identity, &mut down())
            .map(|_| ()),
        UNAVAILABLE
    );
    assert_eq!(
        p.bob.store_state(),
        before,
        "a failed generation added keys"
    );

    // Initiating draws EK_A, then the first ratchet key: either failing is an error.
    let bundle = p.bob.bundle(&mut p.rng);
    for working in [0, 1] {
        assert_eq!(
            Session::initiate(&p.alice.identity, &bundle, &mut FailingRng::new(working))
                .map(|_| ()),
            UNAVAILABLE
        );
    }
    assert!(Session::initiate(&p.alice.identity, &bundle, &mut FailingRng::new(2)).is_ok());

    // Bob's first send completes a deferred ratchet step and needs randomness.
    let before = state(&p.b);
    assert_eq!(p.b.encrypt(b"reply", &mut down()).map(|_| ()), UNAVAILABLE);
    assert!(state(&p.b) == before);
    let reply = p.b.encrypt(b"reply", &mut FailingRng::new(1)).unwrap();
    // Sending on a chain that exists needs none.
    let more = p.b.encrypt(b"more", &mut down()).unwrap();
    assert_eq!(p.a.decrypt(&reply).unwrap(), b"reply");
    assert_eq!(p.a.decrypt(&more).unwrap(), b"more");
    // Alice's next send is a new ratchet step.
    let before = state(&p.a);
    assert_eq!(p.a.encrypt(b"answer", &mut down()).map(|_| ()), UNAVAILABLE);
    assert!(state(&p.a) == before);
    let answer = p.a.encrypt(b"answer", &mut FailingRng::new(1)).unwrap();
    assert_eq!(p.b.decrypt(&answer).unwrap(), b"answer");

    // Sealing draws a nonce.
    let key = StorageKey::from_bytes([7; 32]);
    assert_eq!(key.seal(&p.a, &mut down()).map(|_| ()), UNAVAILABLE);
}
