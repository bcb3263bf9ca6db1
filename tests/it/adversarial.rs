//! Adversarial inputs through the public API: replays, every single-bit corruption, every
//! truncation, forged headers that skip too far (or as far as allowed), floods of forged
//! messages, stale and reflected messages, invalid keys in every key position of messages
//! and bundles, bundles signed for another identity, messages for another party or session,
//! malformed framing, oversized input, authenticated plaintexts without the end marker of
//! SPEC.md §4.9, and a failing RNG. Every rejection is checked for its exact error and for
//! leaving the session (or prekey store) byte-identical.

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use curve25519_dalek::constants::{EIGHT_TORSION, X25519_LOW_ORDER_POINTS};
use curve25519_dalek::edwards::CompressedEdwardsY;
use doubleratchet::OneTimePreKeyId;
use doubleratchet::PreKeyPolicy;
use doubleratchet::SessionOptions;
use doubleratchet::SignedPreKeyId;
use doubleratchet::{
    Error, IdentityKey, IdentityKeyPair, Limits, Message, OneTimePreKey, Padding, PreKeyBundle,
    Session, SignedPreKey, StorageKey, BUNDLE_VERSION, MAX_MESSAGE_SIZE, MAX_PLAINTEXT_SIZE,
    MAX_SKIP_CAP, PADME_MINIMUM, STORAGE_VERSION, WIRE_VERSION,
};
use doubleratchet_test_support::layout::{
    BUNDLE_IK, BUNDLE_OPK, BUNDLE_SIGNATURE, BUNDLE_SPK, INITIAL_BODY, INITIAL_DH, INITIAL_EK,
    INITIAL_IK, INITIAL_N, INITIAL_OPK_FLAG, INITIAL_OPK_ID, INITIAL_PN, INITIAL_SPK_ID,
    NORMAL_BODY, NORMAL_DH, NORMAL_N, NORMAL_PN, TAG,
};
use doubleratchet_test_support::storage::{STATE_RECEIVING_CHAIN, STATE_SENDING_CHAIN};
use doubleratchet_test_support::{
    assert_rejected, forge_header, get_u32, get_u64, message_number, previous_chain_length, rng,
    stored, text, FailingRng, Offer, Pair, Party,
};
use doubleratchet_test_support::{bundle_of, device_of, padding_offset};
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
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
    if m[0] != WIRE_VERSION {
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
        stored(self)
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
    let mut b = Session::from_bytes(&p.b.to_bytes(), p.b.local_identity()).unwrap();
    assert_rejected(&mut b, &m3, Error::DuplicateOrExpired);
    assert_rejected(&mut b, &m1, Error::DuplicateOrExpired);
    // The skipped key survives the reload, and is deleted once used.
    assert_eq!(b.decrypt(&m2).unwrap(), b"two");
    let mut b = Session::from_bytes(&b.to_bytes(), b.local_identity()).unwrap();
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
    p.b.set_limits(Limits::new(1000, 0)).unwrap();
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
    // The 28-byte plaintext, its end marker and zeros up to Padmé's 64-byte minimum: the
    // flips past the marker land in the (encrypted) padding.
    assert_eq!(m.len(), INITIAL_BODY + PADME_MINIMUM + TAG);
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
            Error::UnsupportedVersion(WIRE_VERSION ^ 0x80),
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
    assert_eq!(o.first.len(), INITIAL_BODY + PADME_MINIMUM + TAG);
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
        b if b < INITIAL_OPK_FLAG => Error::UnknownSignedPreKey(get_u64(x, INITIAL_SPK_ID).into()),
        INITIAL_OPK_FLAG => Error::InvalidEncoding,
        b if b < INITIAL_DH => Error::UnknownOneTimePreKey(get_u64(x, INITIAL_OPK_ID).into()),
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
            Error::UnknownSignedPreKey((o.bundle.signed_prekey_id().to_u64() ^ (1 << 63)).into()),
            Error::InvalidEncoding,
            Error::UnknownOneTimePreKey((o.one_time_prekey().to_u64() ^ 0x10).into()),
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
    assert_eq!(m.len(), NORMAL_BODY + PADME_MINIMUM + TAG);
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
            Error::UnsupportedVersion(WIRE_VERSION ^ 0x02),
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
    assert_eq!(m.len(), NORMAL_BODY + PADME_MINIMUM + TAG);
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
    // An empty plaintext is padded to Padmé's minimum; without padding it is the end
    // marker alone, the shortest message a session sends. Neither is truncated. (A body of
    // the tag alone, shorter still, parses and fails authentication: see above.)
    let empty = p.a_sends(b"");
    assert_eq!(empty.len(), NORMAL_BODY + PADME_MINIMUM + TAG);
    p.a.set_padding(Padding::None);
    let shortest = p.a_sends(b"");
    assert_eq!(shortest.len(), NORMAL_BODY + 1 + TAG);
    for len in 0..shortest.len() {
        let want = if len < NORMAL_BODY + TAG {
            Error::Truncated
        } else {
            Error::DecryptionFailed
        };
        assert_rejected(&mut p.b, &shortest[..len], want);
    }
    assert_eq!(p.b.decrypt(&initial).unwrap(), b"an initial message");
    assert_eq!(p.b.decrypt(&normal).unwrap(), b"a normal message");
    assert_eq!(p.b.decrypt(&empty).unwrap(), b"");
    assert_eq!(p.b.decrypt(&shortest).unwrap(), b"");
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
    p.b.set_limits(Limits::new(20, 100)).unwrap();
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
    p.b.set_limits(Limits::new(20, 100)).unwrap();
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
    p.b.set_limits(Limits::new(20, 100)).unwrap();
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
        p.b.set_limits(Limits::new(max_skip, 2000)).unwrap();
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

/// What `Session::respond_with_limits` does with `message`, given Bob's prekeys.
fn respond_to(bob: &Party, message: &[u8], limits: Limits) -> Result<(), Error> {
    Session::respond(
        &bob.identity,
        |id| bob.store.signed_prekey(id),
        |id| bob.store.one_time_prekey(id),
        message,
        &SessionOptions::new().limits(limits),
    )
    .map(|_| ())
}

/// What the prekey store does with `message`; checks that a rejection changed nothing.
fn accept_rejected(bob: &mut Party, message: &[u8], limits: Limits) -> Result<(), Error> {
    let before = bob.store_state();
    let result = bob
        .store
        .accept(message, &SessionOptions::new().limits(limits))
        .map(|_| ());
    assert!(result.is_err(), "accepted");
    assert_eq!(bob.store_state(), before, "a rejection changed the store");
    result
}

#[test]
fn plain_initial_message_too_far_ahead_is_refused_before_key_agreement() {
    // SPEC.md §4.4: a new session's first chain may skip at most max_skip keys, so the
    // responder refuses a cleartext N above that before any X3DH work, through both entry
    // points, and the one-time prekey stays.
    let mut o = Offer::new(127);
    let opk = o.one_time_prekey();
    let limits = Limits::default();
    let max_skip = limits.max_skip;
    assert_eq!(message_number(&o.first), 0);
    for n in [max_skip + 1, max_skip + 2, u32::MAX - 1, u32::MAX] {
        let forged = forge_header(&o.first, None, None, Some(n));
        assert_eq!(respond_to(&o.bob, &forged, limits), Err(Error::TooFarAhead));
        assert_eq!(
            accept_rejected(&mut o.bob, &forged, limits),
            Err(Error::TooFarAhead),
            "N = {n}"
        );
        assert!(o.bob.store.one_time_prekey(opk).is_some());
    }
    // The bound itself is allowed, and then fails authentication (the header is forged).
    let at_bound = forge_header(&o.first, None, None, Some(max_skip));
    assert_eq!(
        respond_to(&o.bob, &at_bound, limits),
        Err(Error::DecryptionFailed)
    );
    assert_eq!(
        accept_rejected(&mut o.bob, &at_bound, limits),
        Err(Error::DecryptionFailed)
    );

    // The checks that come first: the prekeys the message names, then its sender.
    let far = forge_header(&o.first, None, None, Some(max_skip + 1));
    let mut unknown_opk = far.clone();
    doubleratchet_test_support::put_u64(&mut unknown_opk, INITIAL_OPK_ID, opk.to_u64() ^ 0x10);
    let mut unknown_spk = far.clone();
    doubleratchet_test_support::put_u64(&mut unknown_spk, INITIAL_SPK_ID, 77);
    let mut own = far.clone();
    own[INITIAL_IK..INITIAL_EK].copy_from_slice(o.bob.identity.public_key().as_bytes());
    for (m, want) in [
        (
            &unknown_opk,
            Error::UnknownOneTimePreKey((opk.to_u64() ^ 0x10).into()),
        ),
        (
            &unknown_spk,
            Error::UnknownSignedPreKey(SignedPreKeyId::from_u64(77)),
        ),
        (&own, Error::WrongSession),
    ] {
        assert_eq!(respond_to(&o.bob, m, limits), Err(want));
        assert_eq!(accept_rejected(&mut o.bob, m, limits), Err(want));
    }

    // A genuine initial message one ahead (Alice's first was lost) is refused under
    // max_skip = 0 and accepted under max_skip = 1.
    let second = o.a.encrypt(b"second", &mut o.rng).unwrap();
    assert_eq!(message_number(&second), 1);
    let none = Limits::new(0, 10);
    assert_eq!(respond_to(&o.bob, &second, none), Err(Error::TooFarAhead));
    assert_eq!(
        accept_rejected(&mut o.bob, &second, none),
        Err(Error::TooFarAhead)
    );
    let one = Limits::new(1, none.max_stored_skipped);
    assert!(respond_to(&o.bob, &second, one).is_ok());
    let accepted = o
        .bob
        .store
        .accept(&second, &SessionOptions::new().limits(one))
        .unwrap();
    assert_eq!(accepted.plaintext, b"second");
    assert_eq!(accepted.used_one_time_prekey, Some(opk));
    let mut b = accepted.session;
    assert_eq!(b.decrypt(&o.first).unwrap(), b"first");

    // Without a one-time prekey, a replay is refused as one before its counter is looked
    // at.
    let mut r = rng(128);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let mut a = Session::initiate(
        &alice.identity,
        &bob.bundle_without_one_time_prekey(),
        &SessionOptions::new(),
        &mut r,
    )
    .unwrap();
    let first = a.encrypt(b"first", &mut r).unwrap();
    let far = forge_header(&first, None, None, Some(max_skip + 1));
    assert_eq!(
        accept_rejected(&mut bob, &far, limits),
        Err(Error::TooFarAhead)
    );
    let _accepted = bob.accept(&first).unwrap();
    assert_eq!(
        accept_rejected(&mut bob, &far, limits),
        Err(Error::DuplicateOrExpired)
    );
}

#[test]
fn flood_of_forged_messages_changes_nothing() {
    let mut p = Pair::established(125);
    let max_skip = p.b.limits().max_skip;
    let current = p.a_sends(b"genuine, current chain");
    let mut r = rng(1250);
    let before = stored(&p.b);
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
    assert!(stored(&p.b) == before);
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
    let carol = IdentityKeyPair::generate(&mut r).unwrap();
    let bob_bundle = bob.bundle(&mut r);
    // A store draws random ids, so Carol's prekeys are generated with Bob's ids: the
    // message names prekeys Bob holds, and only the keys differ.
    let spk_id = bob_bundle.signed_prekey_id();
    let opk_id = bob_bundle.one_time_prekey_id().unwrap();
    let carol_spk = SignedPreKey::generate(&carol, spk_id, &mut r).unwrap();
    let carol_opk = OneTimePreKey::generate(opk_id, &mut r).unwrap();
    let carol_bundle =
        PreKeyBundle::from_bytes(&bundle_of(&carol, &carol_spk, Some(&carol_opk)).to_bytes())
            .unwrap();
    assert_eq!(
        bob_bundle.signed_prekey_id(),
        carol_bundle.signed_prekey_id()
    );
    assert_eq!(
        bob_bundle.one_time_prekey_id(),
        carol_bundle.one_time_prekey_id()
    );
    assert_ne!(
        bob_bundle.to_bytes()[BUNDLE_SPK..BUNDLE_SPK + 32],
        carol_bundle.to_bytes()[BUNDLE_SPK..BUNDLE_SPK + 32]
    );
    let mut a = Session::initiate(
        &alice.identity,
        &carol_bundle,
        &SessionOptions::new(),
        &mut r,
    )
    .unwrap();
    let m = a.encrypt(b"for carol", &mut r).unwrap();
    let before = bob.store_state();
    assert_eq!(bob.accept(&m).map(|_| ()), Err(Error::DecryptionFailed));
    assert_eq!(bob.store_state(), before);
    let accepted = Session::respond(
        &carol,
        |id| (id == spk_id).then_some(&carol_spk),
        |id| (id == opk_id).then_some(&carol_opk),
        &m,
        &SessionOptions::new(),
    )
    .unwrap();
    assert_eq!(accepted.used_one_time_prekey, Some(opk_id));
    let mut c = accepted.session;
    let reply = c.encrypt(b"carol here", &mut r).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"carol here");
    // Carol's session rejects Bob's would-be messages for the same reason.
    let mut b_bundle_session =
        Session::initiate(&alice.identity, &bob_bundle, &SessionOptions::new(), &mut r).unwrap();
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
    let mut a1 =
        Session::initiate(&alice.identity, &bundle1, &SessionOptions::new(), &mut r).unwrap();
    let mut a2 =
        Session::initiate(&alice.identity, &bundle2, &SessionOptions::new(), &mut r).unwrap();
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
            &SessionOptions::new()
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
        Session::initiate(&p.bob.identity, &own, &SessionOptions::new(), &mut p.rng).map(|_| ()),
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
    if m[1] == doubleratchet_test_support::layout::TYPE_INITIAL {
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
    assert_eq!(bytes.len(), doubleratchet_test_support::layout::BUNDLE_END);
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
            Session::initiate(&alice.identity, &bundle, &SessionOptions::new(), &mut r).map(|_| ()),
            Err(Error::InvalidSignature)
        );
        assert_eq!(probe.next_u64(), r.next_u64());
    }
    for genuine in [bob_bytes, carol_bytes] {
        let bundle = PreKeyBundle::from_bytes(&genuine).unwrap();
        assert_eq!(bundle.verify(), Ok(()));
        Session::initiate(&alice.identity, &bundle, &SessionOptions::new(), &mut r).unwrap();
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
    assert_eq!(normal[0], WIRE_VERSION);
    assert_eq!(initial[0], WIRE_VERSION);
    assert_eq!(bundle[0], BUNDLE_VERSION);
    // 0x01: profile v1's messages and bundles are no longer read.
    for v in [0x00u8, 0x01, 0x03, 0x7f, 0xff] {
        assert_ne!(v, WIRE_VERSION);
        assert_ne!(v, BUNDLE_VERSION);
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
    // The largest plaintext, with its end marker, would fill the longest framing (a
    // header-encrypted PQXDH initial message: 1247 bytes) exactly to MAX_MESSAGE_SIZE.
    // Padmé's bucket for it is clipped to that size, so both policies send it alike.
    assert_eq!(MAX_PLAINTEXT_SIZE, 1_047_312);
    assert_eq!(MAX_MESSAGE_SIZE, 1247 + MAX_PLAINTEXT_SIZE + 1 + TAG);
    let big = vec![0x5a; MAX_PLAINTEXT_SIZE];
    let too_big = vec![0x5a; MAX_PLAINTEXT_SIZE + 1];
    for padding in [Padding::Padme, Padding::None] {
        p.a.set_padding(padding);
        let before = stored(&p.a);
        assert_eq!(p.a.encrypt(&too_big, &mut p.rng), Err(Error::TooLarge));
        assert!(stored(&p.a) == before);
    }
    p.a.set_padding(Padding::Padme);
    let largest = p.a_sends(&big);
    assert_eq!(largest.len(), INITIAL_BODY + MAX_PLAINTEXT_SIZE + 1 + TAG);

    // Padded to exactly the limit, a message is parsed (and fails authentication)...
    let mut at_limit = largest.clone();
    at_limit.resize(MAX_MESSAGE_SIZE, 0);
    assert!(at_limit.len() > largest.len());
    assert_rejected(&mut p.b, &at_limit, Error::DecryptionFailed);
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

    // A normal-mode session refuses the same plaintext sizes, and sends the largest one
    // without padding in exactly as many bytes as with Padmé.
    p.deliver_b_to_a(b"reply");
    let before = stored(&p.a);
    assert_eq!(p.a.encrypt(&too_big, &mut p.rng), Err(Error::TooLarge));
    assert!(stored(&p.a) == before);
    p.a.set_padding(Padding::None);
    let largest = p.a_sends(&big);
    assert_eq!(largest.len(), NORMAL_BODY + MAX_PLAINTEXT_SIZE + 1 + TAG);
    assert_eq!(p.b.decrypt(&largest).unwrap(), big);
    p.ping_pong(1);
}

// ---------------------------------------------------------------------------------------
// Authenticated plaintexts without the end marker (SPEC.md §4.9)
// ---------------------------------------------------------------------------------------
//
// No sender this crate builds writes such a plaintext, so the test writes them itself:
// with the sender's stored state (SPEC.md §7.1, which an app holds in its database) it
// derives the message key as SPEC.md §4.1 says and encrypts a body of its choosing under
// the message's own associated data. The derivation is first checked against a genuine
// message, byte for byte.

/// `CKs` and `Ns` from the storage encoding of a classical session without header
/// encryption (type `0x20`).
fn sending_chain(session: &Session) -> ([u8; 32], u32) {
    let bytes = session.to_bytes();
    assert_eq!(bytes[0], STORAGE_VERSION);
    assert_eq!(
        bytes[1], 0x20,
        "not a classical session without header encryption"
    );
    // Version, type, state flags; IK_remote, EK_A; the pending fields the flags announce;
    // the limits and the padding policy (`padding_offset`); RK, DHs, DHr, then CKs and CKr
    // if the flags say they are stored.
    let state = bytes[2];
    assert_ne!(state & STATE_SENDING_CHAIN, 0, "no sending chain");
    let cks = padding_offset(&bytes) + 1 + 3 * 32;
    let ckr = if state & STATE_RECEIVING_CHAIN != 0 {
        32
    } else {
        0
    };
    let ns = cks + 32 + ckr;
    let skipped = get_u32(&bytes, ns + 12) as usize;
    assert_eq!(bytes.len(), ns + 16 + 68 * skipped);
    (key32(&bytes[cks..cks + 32]), get_u32(&bytes, ns))
}

fn hmac_sha256(key: &[u8; 32], byte: u8) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
    mac.update(&[byte]);
    key32(&mac.finalize().into_bytes())
}

/// The message key `ck` gives: `KDF_CK(ck) = (HMAC(ck, 0x02), HMAC(ck, 0x01))`.
fn message_key(ck: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(ck, 0x01)
}

/// `message` with its body (after `body_at`) replaced by `ENCRYPT(mk, encoded, AD ||
/// prefix)`: AES-256-GCM-SIV with the all-zero nonce, the tag appended.
fn with_body(
    message: &[u8],
    body_at: usize,
    ad: &[u8; 64],
    mk: &[u8; 32],
    encoded: &[u8],
) -> Vec<u8> {
    let prefix = &message[..body_at];
    let aad = [&ad[..], prefix].concat();
    let mut out = [prefix, encoded].concat();
    let tag = Aes256GcmSiv::new_from_slice(mk)
        .unwrap()
        .encrypt_inout_detached(&Nonce::from([0u8; 12]), &aad, (&mut out[body_at..]).into())
        .unwrap();
    out.extend_from_slice(&tag);
    out
}

/// `AD = IK_A || IK_B`.
fn associated_data(initiator: &Party, responder: &Party) -> [u8; 64] {
    let mut ad = [0u8; 64];
    ad[..32].copy_from_slice(initiator.identity.public_key().as_bytes());
    ad[32..].copy_from_slice(responder.identity.public_key().as_bytes());
    ad
}

/// Padmé's encoding of a plaintext shorter than its minimum.
fn padded(plaintext: &[u8]) -> Vec<u8> {
    assert!(plaintext.len() < PADME_MINIMUM);
    let mut out = plaintext.to_vec();
    out.push(0x80);
    out.resize(PADME_MINIMUM, 0);
    out
}

/// Encoded plaintexts that do not decode: no end marker before the trailing zeros.
fn without_end_marker() -> Vec<Vec<u8>> {
    let near_miss: Vec<Vec<u8>> = (0..8u8)
        .map(|bit| 0x80 ^ (1 << bit))
        .chain([0x00, 0xff])
        .map(|b| [&b"text"[..], &[b], &[0; 59]].concat())
        .collect();
    [
        // Nothing at all: the body is the tag alone.
        Vec::new(),
        // Padding only.
        vec![0; PADME_MINIMUM],
        vec![0],
        // Text and no marker, with and without padding.
        b"no end marker".to_vec(),
        [&b"no end marker"[..], &[0; 51]].concat(),
        // The marker, then a byte that is not padding.
        [&b"text"[..], &[0x80, 0x01]].concat(),
        [&b"text"[..], &[0x80, 0x00, 0x80, 0x01], &[0; 56]].concat(),
    ]
    .into_iter()
    .chain(near_miss)
    .collect()
}

#[test]
fn authenticated_plaintext_without_end_marker_is_rejected_and_changes_nothing() {
    let mut p = Pair::established(180);
    let ad = associated_data(&p.alice, &p.bob);

    // The message Bob expects next in the current chain.
    let (ck, ns) = sending_chain(&p.a);
    let current = p.a_sends(b"current chain");
    assert_eq!(message_number(&current), ns);
    let mk = message_key(&ck);
    assert_eq!(
        with_body(&current, NORMAL_BODY, &ad, &mk, &padded(b"current chain")),
        current,
        "the test's ENCRYPT does not reproduce the genuine message"
    );
    for bad in without_end_marker() {
        let forged = with_body(&current, NORMAL_BODY, &ad, &mk, &bad);
        assert_rejected(&mut p.b, &forged, Error::DecryptionFailed);
    }
    assert_eq!(p.b.decrypt(&current).unwrap(), b"current chain");

    // A message whose key is in the skipped-key store: the key stays there.
    let (ck, ns) = sending_chain(&p.a);
    let skipped = p.a_sends(b"skipped");
    let later = p.a_sends(b"later");
    assert_eq!(message_number(&skipped), ns);
    assert_eq!(p.b.decrypt(&later).unwrap(), b"later");
    assert_eq!(p.b.stored_skipped_keys(), 1);
    let mk = message_key(&ck);
    assert_eq!(
        with_body(&skipped, NORMAL_BODY, &ad, &mk, &padded(b"skipped")),
        skipped
    );
    for bad in without_end_marker() {
        let forged = with_body(&skipped, NORMAL_BODY, &ad, &mk, &bad);
        assert_rejected(&mut p.b, &forged, Error::DecryptionFailed);
    }
    assert_eq!(p.b.decrypt(&skipped).unwrap(), b"skipped");
    assert_eq!(p.b.stored_skipped_keys(), 0);

    // The second message of a new chain: Bob would step his ratchet and skip a key, and
    // does neither.
    let first = new_chain_message(&mut p, b"new chain");
    let (ck, ns) = sending_chain(&p.a);
    assert_eq!(ns, 1);
    let second = p.a_sends(b"new chain, second");
    let mk = message_key(&ck);
    assert_eq!(
        with_body(
            &second,
            NORMAL_BODY,
            &ad,
            &mk,
            &padded(b"new chain, second")
        ),
        second
    );
    for bad in without_end_marker() {
        let forged = with_body(&second, NORMAL_BODY, &ad, &mk, &bad);
        assert_rejected(&mut p.b, &forged, Error::DecryptionFailed);
    }
    // With an end marker the same forgery decrypts: only the encoding was wrong. (Any
    // number of zeros after the marker decodes, whatever the sender's policy.)
    let forged = with_body(&second, NORMAL_BODY, &ad, &mk, b"forged\x80\x00\x00\x00");
    assert_eq!(p.b.decrypt(&forged).unwrap(), b"forged");
    assert_rejected(&mut p.b, &second, Error::DuplicateOrExpired);
    assert_eq!(p.b.decrypt(&first).unwrap(), b"new chain");

    // An initial message: neither entry point creates a session, and the one-time prekey
    // stays in the store.
    let mut r = rng(181);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let bundle = bob.bundle(&mut r);
    let opk = bundle.one_time_prekey_id().unwrap();
    let mut a =
        Session::initiate(&alice.identity, &bundle, &SessionOptions::new(), &mut r).unwrap();
    let ad = associated_data(&alice, &bob);
    let (ck, ns) = sending_chain(&a);
    assert_eq!(ns, 0);
    let initial = a.encrypt(b"initial", &mut r).unwrap();
    let mk = message_key(&ck);
    assert_eq!(
        with_body(&initial, INITIAL_BODY, &ad, &mk, &padded(b"initial")),
        initial
    );
    for bad in without_end_marker() {
        let forged = with_body(&initial, INITIAL_BODY, &ad, &mk, &bad);
        assert_eq!(
            respond_to(&bob, &forged, Limits::default()),
            Err(Error::DecryptionFailed)
        );
        assert_eq!(
            accept_rejected(&mut bob, &forged, Limits::default()),
            Err(Error::DecryptionFailed)
        );
        assert!(bob.store.one_time_prekey(opk).is_some());
    }
    assert_eq!(bob.accept(&initial).unwrap().plaintext, b"initial");
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
        OneTimePreKey::generate(OneTimePreKeyId::from_u64(1), &mut down()).map(|_| ()),
        UNAVAILABLE
    );

    let mut p = Pair::started(170);
    let identity = &p.bob.identity;
    assert_eq!(
        SignedPreKey::generate(identity, SignedPreKeyId::from_u64(9), &mut down()).map(|_| ()),
        UNAVAILABLE
    );
    assert_eq!(device_of(identity, &mut down()).map(|_| ()), UNAVAILABLE);
    let before = p.bob.store_state();
    assert_eq!(
        p.bob
            .store
            .generate_one_time_prekeys(5, &mut FailingRng::new(2))
            .map(|_| ()),
        UNAVAILABLE
    );
    assert_eq!(
        p.bob.store.rotate_signed_prekey(0, &mut down()).map(|_| ()),
        UNAVAILABLE
    );
    // Replacing the whole store draws a new current and standby signed prekey (id, then
    // secret, four draws here: Bob's one-time prekey was consumed): failing at any of them
    // leaves the store as it was.
    for working in 0..4 {
        assert_eq!(
            p.bob
                .store
                .after_restore(0, &mut FailingRng::new(working))
                .map(|_| ()),
            UNAVAILABLE,
            "{working} working draws"
        );
    }
    // With a standby already held, replenishing draws nothing.
    assert_eq!(
        p.bob
            .store
            .maintain(0, &PreKeyPolicy::default(), &mut down())
            .map(|m| m.replenished_standby),
        Ok(false)
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
            Session::initiate(
                &p.alice.identity,
                &bundle,
                &SessionOptions::new(),
                &mut FailingRng::new(working)
            )
            .map(|_| ()),
            UNAVAILABLE
        );
    }
    assert!(Session::initiate(
        &p.alice.identity,
        &bundle,
        &SessionOptions::new(),
        &mut FailingRng::new(2)
    )
    .is_ok());

    // Bob's first send completes a deferred ratchet step and needs randomness.
    let before = stored(&p.b);
    assert_eq!(p.b.encrypt(b"reply", &mut down()).map(|_| ()), UNAVAILABLE);
    assert!(stored(&p.b) == before);
    let reply = p.b.encrypt(b"reply", &mut FailingRng::new(1)).unwrap();
    // Sending on a chain that exists needs none.
    let more = p.b.encrypt(b"more", &mut down()).unwrap();
    assert_eq!(p.a.decrypt(&reply).unwrap(), b"reply");
    assert_eq!(p.a.decrypt(&more).unwrap(), b"more");
    // Alice's next send is a new ratchet step.
    let before = stored(&p.a);
    assert_eq!(p.a.encrypt(b"answer", &mut down()).map(|_| ()), UNAVAILABLE);
    assert!(stored(&p.a) == before);
    let answer = p.a.encrypt(b"answer", &mut FailingRng::new(1)).unwrap();
    assert_eq!(p.b.decrypt(&answer).unwrap(), b"answer");

    // Sealing draws a nonce.
    let key = StorageKey::from_bytes([7; 32]);
    assert_eq!(
        key.seal(&p.a, b"alice/session", &mut down()).map(|_| ()),
        UNAVAILABLE
    );
}
