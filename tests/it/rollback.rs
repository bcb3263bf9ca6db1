//! Rollback: a session restored from an older copy (`Session::to_bytes` /
//! `Session::from_bytes`, a backup or a crash before the last save) encrypts its next
//! message under a message key `mk` it has already used.
//!
//! * Profile v1 derived both the AES-256-GCM key and its nonce from `mk`
//!   (`key || nonce = HKDF(0^32, mk, "doubleratchet v1 message keys", 44)`), so the two
//!   messages share key and nonce: `c1 ^ c2 = p1 ^ p2`, and from the two tags of one-block
//!   bodies under equal AAD the GHASH key power `H^2 = (t1 ^ t2) / (c1 ^ c2)` in GF(2^128);
//!   a forged message with a chosen plaintext then verifies. [`v1_construction_is_forgeable`]
//!   does exactly that against plain AES-256-GCM, with the GF(2^128) arithmetic below.
//! * Profile v2 encrypts with AES-256-GCM-SIV under `mk` and a zero nonce (SPEC.md §4.1,
//!   v2). The same recipe against the library's sessions is rejected
//!   ([`v2_rejects_the_v1_forgery`]); the copies' ciphertexts share no keystream; the only
//!   leak is whether the same (AAD, encoded plaintext) was encrypted twice, visible as equal
//!   bodies in plain-header mode (in header-encrypted mode the header nonce is random and
//!   part of the body's AAD, so even that disappears); and the peer decrypts the first of
//!   two messages with the same (chain, N) and rejects the second, for both roles, in both
//!   header modes, while the initiator still sends initial messages and afterwards.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use doubleratchet::{Error, Limits, Message, Padding, Session, SessionOptions, WIRE_VERSION};
use doubleratchet_test_support::{rng, sent_header, stored, Parties};
use hkdf::Hkdf;
use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

// ---------------------------------------------------------------------------------------
// GF(2^128) in GCM's bit order (NIST SP 800-38D §6.3).
//
// A 16-byte block is the polynomial whose coefficient of x^0 is the most significant bit
// of byte 0 and whose coefficient of x^127 is the least significant bit of byte 15. Read
// as a big-endian `u128`, x^i is therefore bit `127 - i`: "multiply by x" is a right
// shift, and the field's 1 is `1 << 127`. The field polynomial is
// x^128 + x^7 + x^2 + x + 1; a bit shifted out at x^128 folds back in as x^7 + x^2 + x + 1,
// which in this order is the top byte 0b1110_0001 = 0xE1.

/// The field's one (the polynomial `1`).
const GF_ONE: u128 = 1 << 127;
/// `x^128 mod (x^128 + x^7 + x^2 + x + 1) = x^7 + x^2 + x + 1`, reflected.
const GF_R: u128 = 0xE1 << 120;

fn block(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(bytes.try_into().expect("a 16-byte block"))
}

/// `x * y`, SP 800-38D Algorithm 1: walk `x`'s coefficients from x^0 up while `v` runs
/// through `y * x^i`, adding `v` wherever `x` has a one.
fn gf_mul(x: u128, y: u128) -> u128 {
    let mut z = 0u128;
    let mut v = y;
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        // v = v * x: shift towards x^127; what falls off at x^128 comes back as R.
        v = if v & 1 == 1 { (v >> 1) ^ GF_R } else { v >> 1 };
    }
    z
}

/// `x^-1 = x^(2^128 - 2)` (the multiplicative group has order 2^128 - 1), by square and
/// multiply over the exponent's bits, lowest first. Zero has no inverse.
fn gf_inv(x: u128) -> u128 {
    assert_ne!(x, 0, "zero has no inverse");
    let mut result = GF_ONE;
    let mut power = x; // x^(2^i) at step i
    let mut exponent = u128::MAX - 1; // 2^128 - 2
    while exponent != 0 {
        if exponent & 1 == 1 {
            result = gf_mul(result, power);
        }
        power = gf_mul(power, power);
        exponent >>= 1;
    }
    result
}

/// GHASH_H(A, C) of SP 800-38D §6.4/§7.1: the zero-padded AAD blocks, the zero-padded
/// ciphertext blocks and the lengths block `[len(A)]_64 || [len(C)]_64` (in bits),
/// each added to the running value and multiplied by `H`.
fn ghash(h: u128, aad: &[u8], ciphertext: &[u8]) -> u128 {
    let mut y = 0u128;
    for data in [aad, ciphertext] {
        for chunk in data.chunks(16) {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            y = gf_mul(y ^ block(&b), h);
        }
    }
    let lengths = ((aad.len() as u128 * 8) << 64) | (ciphertext.len() as u128 * 8);
    gf_mul(y ^ lengths, h)
}

/// `E_K(block)` with the AES-256 of the `aes` crate (the library's own dependency).
fn aes256(key: &[u8; 32], input: [u8; 16]) -> [u8; 16] {
    use aes::cipher::{BlockCipherEncrypt, KeyInit as _};
    let cipher = aes::Aes256::new_from_slice(key).unwrap();
    let mut b = aes::cipher::array::Array::from(input);
    cipher.encrypt_block(&mut b);
    b.into()
}

#[test]
fn gf128_arithmetic() {
    let mut r = rng(1);
    for _ in 0..32 {
        let (a, b, c) = (
            random_block(&mut r),
            random_block(&mut r),
            random_block(&mut r),
        );
        assert_eq!(gf_mul(a, GF_ONE), a);
        assert_eq!(gf_mul(a, b), gf_mul(b, a));
        assert_eq!(gf_mul(a, b ^ c), gf_mul(a, b) ^ gf_mul(a, c));
        assert_eq!(gf_mul(gf_mul(a, b), c), gf_mul(a, gf_mul(b, c)));
        assert_eq!(gf_mul(a, gf_inv(a)), GF_ONE);
    }
    assert_eq!(gf_inv(GF_ONE), GF_ONE);
    // x * x^127 = x^128 = x^7 + x^2 + x + 1.
    assert_eq!(gf_mul(GF_ONE >> 1, 1), GF_R);

    // The GCM specification's test case 14 (McGrew and Viega; AES-256, K = 0^32,
    // IV = 0^12, P = 0^16): H, C, GHASH(H, {}, C), E_K(Y0) and the tag of the published
    // vector.
    let key = [0u8; 32];
    let h = block(&aes256(&key, [0; 16]));
    assert_eq!(h, 0xdc95c078a2408989ad48a21492842087);
    let c = 0xcea7403d4d606b6e074ec5d3baf39d18u128;
    let hash = ghash(h, &[], &c.to_be_bytes());
    assert_eq!(hash, 0x83de425c5edc5d498f382c441041ca92);
    let mut j0 = [0u8; 16];
    j0[15] = 1;
    let ek_j0 = block(&aes256(&key, j0));
    assert_eq!(ek_j0, 0x530f8afbc74536b9a963b4f1c4cb738b);
    assert_eq!(hash ^ ek_j0, 0xd0d1c8a799996bf0265b98b5d48ab919);

    // And against the aes-gcm crate on random keys, AAD of several lengths, two blocks.
    for aad_len in [0, 5, 16, 106] {
        let key: [u8; 32] = random_bytes(&mut r);
        let nonce: [u8; 12] = random_bytes(&mut r);
        let aad: Vec<u8> = (0..aad_len).map(|i| i as u8).collect();
        let sealed = gcm(&key)
            .encrypt(
                gcm_nonce(&nonce),
                Payload {
                    msg: &[7u8; 32],
                    aad: &aad,
                },
            )
            .unwrap();
        let (ct, tag) = sealed.split_at(32);
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(&nonce);
        j0[15] = 1;
        let h = block(&aes256(&key, [0; 16]));
        assert_eq!(ghash(h, &aad, ct) ^ block(&aes256(&key, j0)), block(tag));
    }
}

// ---------------------------------------------------------------------------------------
// The attack recipe.

/// What the attacker computes from two one-block bodies `c1 || t1`, `c2 || t2` sealed
/// under the same key, nonce and AAD, knowing the first plaintext block `known1`:
/// `H^2` and the body `c3 || t3` that decrypts to `wanted` under that AAD.
///
/// With one AAD, one ciphertext block `C` and the lengths block `L` fixed by the lengths,
/// `tag = (A-terms) + C * H^2 + L * H + E_K(J0)`: everything but `C * H^2` is common to
/// the two messages, so `t1 + t2 = (c1 + c2) * H^2` (addition is XOR) and
/// `t3 = t1 + (c1 + c3) * H^2` for any `c3`. With a reused keystream,
/// `c3 = c1 + known1 + wanted` decrypts to `wanted`.
fn forge_one_block(
    body1: &[u8],
    body2: &[u8],
    known1: &[u8; 16],
    wanted: &[u8; 16],
) -> (u128, Vec<u8>) {
    assert_eq!(body1.len(), 32, "one block and a tag");
    assert_eq!(body2.len(), 32, "one block and a tag");
    let (c1, t1) = (block(&body1[..16]), block(&body1[16..]));
    let (c2, t2) = (block(&body2[..16]), block(&body2[16..]));
    let h2 = gf_mul(t1 ^ t2, gf_inv(c1 ^ c2));
    let c3 = c1 ^ block(known1) ^ block(wanted);
    let t3 = t1 ^ gf_mul(c1 ^ c3, h2);
    let mut forged = c3.to_be_bytes().to_vec();
    forged.extend_from_slice(&t3.to_be_bytes());
    (h2, forged)
}

/// Profile v1's message cipher: `key || nonce = HKDF(0^32, mk, MESSAGE_INFO, 44)`.
fn v1_message_cipher(mk: &[u8; 32]) -> ([u8; 32], [u8; 12]) {
    let mut okm = [0u8; 44];
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), mk)
        .expand(b"doubleratchet v1 message keys", &mut okm)
        .unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

fn gcm(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key).unwrap()
}

fn gcm_nonce(nonce: &[u8; 12]) -> &Nonce<U12> {
    nonce.into()
}

/// The profile v1 rollback, emulated with aes-gcm: the live session and its restored copy
/// both encrypt with the same `mk` and the same header (so the same AAD). The recipe
/// recovers `H^2` (checked against the real hash key) and forges a message that aes-gcm
/// accepts with the attacker's plaintext. This is the attack v2 must stop; the test would
/// fail if the recipe or the arithmetic were wrong.
#[test]
fn v1_construction_is_forgeable() {
    let mut r = rng(2);
    let mk: [u8; 32] = random_bytes(&mut r);
    // AAD = AD (IK_A || IK_B) || the 42-byte prefix of a normal message: equal for the two
    // copies, which send the same header (DHs, PN, N).
    let mut aad = random_bytes::<64>(&mut r).to_vec();
    aad.extend_from_slice(&[0x01, 0x01]);
    aad.extend_from_slice(&random_bytes::<40>(&mut r));

    let p1: &[u8; 16] = b"transfer 10 EUR.";
    let p2: &[u8; 16] = b"see you at eight";
    let p3: &[u8; 16] = b"transfer 9999 EU";
    let (key, nonce) = v1_message_cipher(&mk);
    let cipher = gcm(&key);
    let seal = |p: &[u8]| {
        cipher
            .encrypt(gcm_nonce(&nonce), Payload { msg: p, aad: &aad })
            .unwrap()
    };
    let (body1, body2) = (seal(p1), seal(p2));

    // The keystream repeats: c1 ^ c2 = p1 ^ p2.
    assert_eq!(xor(&body1[..16], &body2[..16]), xor(p1, p2));

    let (h2, forged) = forge_one_block(&body1, &body2, p1, p3);
    let h = block(&aes256(&key, [0; 16]));
    assert_eq!(h2, gf_mul(h, h), "the recipe recovers H^2");
    let opened = cipher
        .decrypt(
            gcm_nonce(&nonce),
            Payload {
                msg: &forged,
                aad: &aad,
            },
        )
        .expect("aes-gcm accepts the forgery");
    assert_eq!(opened, p3);
    // A forgery for any other plaintext works just as well.
    let (_, forged) = forge_one_block(&body1, &body2, p1, b"\0\0anything else.");
    assert_eq!(
        cipher
            .decrypt(
                gcm_nonce(&nonce),
                Payload {
                    msg: &forged,
                    aad: &aad
                }
            )
            .unwrap(),
        b"\0\0anything else."
    );
}

/// The same recipe against profile v2 sessions (plain headers, `Padding::None`, 15-byte
/// plaintexts: with the end marker exactly one block). The two copies' messages have equal
/// prefixes (same header, same AAD) and one-block bodies, as the recipe needs; the peer
/// rejects the forgery with `DecryptionFailed` and is unchanged, then decrypts the first
/// genuine message and refuses the second. (In header-encrypted mode the recipe does not
/// even apply: each sealed header has a random nonce, so the two bodies' AAD differ.)
#[test]
fn v2_rejects_the_v1_forgery() {
    let p1: &[u8; 15] = b"transfer 10 EUR";
    let p2: &[u8; 15] = b"see you at 8 pm";
    let p3: &[u8; 15] = b"transfer 9999 E";
    for (seed, point, who) in [
        (10, Point::InitialMessages, Who::Initiator),
        (11, Point::InitialMessages, Who::Responder),
        (12, Point::NormalMessages, Who::Initiator),
        (13, Point::NormalMessages, Who::Responder),
    ] {
        let (mut sender, mut receiver, mut r) = sessions(seed, false, point, who, Padding::None);
        let snapshot = stored(&sender);
        let m1 = sender.encrypt(p1, &mut r).unwrap();
        let mut restored = Session::from_bytes(&snapshot, sender.local_identity()).unwrap();
        let m2 = restored.encrypt(p2, &mut rng(seed + 1000)).unwrap();
        let prefix = prefix_length(&m1);
        assert_eq!(m1.len(), prefix + 32, "one block and a tag");
        assert_eq!(m1[..prefix], m2[..prefix], "same header, same AAD");
        let initial = point == Point::InitialMessages && who == Who::Initiator;
        assert_eq!(m1[1], if initial { 0x02 } else { 0x01 }, "message type");
        // The recipe's premise, a shared keystream, does not hold.
        assert_ne!(
            xor(&m1[prefix..prefix + 16], &m2[prefix..prefix + 16]),
            xor(&encoded_block(p1), &encoded_block(p2))
        );

        let (_, forged_body) = forge_one_block(
            &m1[prefix..],
            &m2[prefix..],
            &encoded_block(p1),
            &encoded_block(p3),
        );
        let mut forged = m1[..prefix].to_vec();
        forged.extend_from_slice(&forged_body);
        assert_rejected(&mut receiver, &forged, Error::DecryptionFailed);

        // The genuine messages: the first decrypts, the second repeats its (chain, N).
        assert_eq!(receiver.decrypt(&m1).unwrap(), p1);
        assert_rejected(&mut receiver, &m2, Error::DuplicateOrExpired);
        // The forgery is no better after the genuine message.
        assert_rejected(&mut receiver, &forged, Error::DuplicateOrExpired);
    }
}

// ---------------------------------------------------------------------------------------
// Sessions at a point of their life.

/// Which party sends from two copies of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Initiator,
    Responder,
}

/// Where in the sessions' life the sender's session is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// Alice has not yet decrypted a reply, so she sends initial messages; the sender's
    /// sending chain exists (Alice: her first message is out; Bob: he has sent one reply,
    /// which Alice has not received).
    InitialMessages,
    /// Both sides have received; the sender's sending chain exists and has sent one
    /// message.
    NormalMessages,
    /// The sender's next message completes a deferred DH ratchet step (SPEC.md §4.5):
    /// Bob right after accepting (Alice still sends initial messages), Alice right after
    /// decrypting Bob's reply.
    PendingRatchetStep,
}

/// `(sender, receiver, rng)` at `point`, Alice's session in header-encrypted mode or not,
/// the sender padding as `padding` says.
fn sessions(
    seed: u64,
    header_encryption: bool,
    point: Point,
    who: Who,
    padding: Padding,
) -> (Session, Session, ChaCha20Rng) {
    let mut r = rng(seed);
    let mut parties = Parties::new(&mut r);
    let mut options = SessionOptions::new().padding(padding);
    if header_encryption {
        options = options.header_encryption();
    }
    let mut a = Session::initiate(&parties.alice, &parties.bundle, &options, &mut r).unwrap();
    let first = a.encrypt(b"first", &mut r).unwrap();
    let (mut b, plaintext) = parties.accept(&first, Limits::default()).unwrap();
    assert_eq!(plaintext, b"first");
    assert_eq!(b.is_header_encrypted(), header_encryption);
    b.set_padding(padding);

    let deliver = |from: &mut Session, to: &mut Session, text: &[u8], r: &mut ChaCha20Rng| {
        let m = from.encrypt(text, r).unwrap();
        assert_eq!(to.decrypt(&m).unwrap(), text);
    };
    match (point, who) {
        (Point::InitialMessages, Who::Initiator) | (Point::PendingRatchetStep, Who::Responder) => {}
        (Point::InitialMessages, Who::Responder) => {
            // Lost, or not yet delivered: Alice keeps sending initial messages.
            b.encrypt(b"reply (in flight)", &mut r).unwrap();
        }
        (Point::PendingRatchetStep, Who::Initiator) => deliver(&mut b, &mut a, b"reply", &mut r),
        (Point::NormalMessages, Who::Initiator) => {
            deliver(&mut b, &mut a, b"reply", &mut r);
            deliver(&mut a, &mut b, b"answer", &mut r);
        }
        (Point::NormalMessages, Who::Responder) => {
            deliver(&mut b, &mut a, b"reply", &mut r);
            deliver(&mut a, &mut b, b"answer", &mut r);
            deliver(&mut b, &mut a, b"again", &mut r);
        }
    }
    let initial_messages = matches!(point, Point::InitialMessages)
        || (point, who) == (Point::PendingRatchetStep, Who::Responder);
    assert_eq!(a.awaiting_reply(), initial_messages);
    match who {
        Who::Initiator => (a, b, r),
        Who::Responder => (b, a, r),
    }
}

// ---------------------------------------------------------------------------------------
// Rollback of v2 sessions.

/// Equal-length, different plaintexts for the two copies (under 63 bytes: both encode to
/// Padmé's 64-byte minimum), and a follow-up.
const P1: &[u8] = b"the original session says: meet at noon";
const P2: &[u8] = b"the restored session says: meet at nine";
const FOLLOW_UP: &[u8] = b"the restored copy carries on";

/// What the two copies sent: the live session `P1`, the restored copy `P2` then
/// `FOLLOW_UP`, and a second restored copy `P1` again.
struct Sent {
    original: Vec<u8>,
    restored: Vec<u8>,
    follow_up: Vec<u8>,
    restored_same_plaintext: Vec<u8>,
    /// Whether the copies sent in the same chain with the same N (same message key).
    same_position: bool,
}

/// Copies the sender's session, sends from the live session and from restored copies,
/// and checks the ciphertexts. Each restored copy draws from its own RNG, as on a device
/// restored from a backup (an OS RNG never repeats its output).
fn send_from_copies(sender: &mut Session, r: &mut ChaCha20Rng, seed: u64) -> Sent {
    assert_eq!(P1.len(), P2.len());
    let snapshot = stored(sender);
    let original = sender.encrypt(P1, r).unwrap();
    let mut restored = Session::from_bytes(&snapshot, sender.local_identity()).unwrap();
    assert_eq!(stored(&restored), snapshot);
    let restored_message = restored.encrypt(P2, &mut rng(seed + 1000)).unwrap();
    let mut again = Session::from_bytes(&snapshot, sender.local_identity()).unwrap();
    let restored_same_plaintext = again.encrypt(P1, &mut rng(seed + 2000)).unwrap();

    for m in [&original, &restored_message, &restored_same_plaintext] {
        assert_eq!(m[0], 0x02, "profile v2 wire version");
        assert_eq!(m[0], WIRE_VERSION);
        assert_eq!(m[1], original[1], "same message type");
        let parsed = Message::parse(m).unwrap();
        assert_eq!(parsed.is_header_encrypted(), sender.is_header_encrypted());
        // The default padding: Padmé's 64-byte minimum, then the tag.
        assert_eq!(m.len(), prefix_length(m) + 64 + 16);
        assert_eq!(parsed.ciphertext_len(), 64 + 16);
    }
    let prefix = prefix_length(&original);
    // The (ratchet key, PN, N) each copy used, from its stored state (the only way to see
    // it in header-encrypted mode; in plain mode it is also checked against the wire).
    let header = sent_header(sender, &original);
    let same_position = header == sent_header(&restored, &restored_message);
    assert_eq!(
        same_position,
        header == sent_header(&again, &restored_same_plaintext)
    );

    // No keystream reuse, whether or not the message key repeated: the bodies' XOR is not
    // the encoded plaintexts' XOR, and agrees with it on no more bytes than chance allows
    // (a reused keystream would agree on all 64; independent bytes agree with probability
    // 1/256 each, so 8 or more of 64 has probability below 2^-37).
    let (e1, e2) = (encoded_padme(P1), encoded_padme(P2));
    let (b1, b2) = (body(&original), body(&restored_message));
    assert_eq!((b1.len(), b2.len(), e1.len()), (64, 64, 64));
    assert_ne!(xor(b1, b2), xor(&e1, &e2), "keystream reused");
    let agreeing = xor(b1, b2)
        .iter()
        .zip(xor(&e1, &e2))
        .filter(|(x, y)| **x == *y)
        .count();
    assert!(agreeing < 8, "{agreeing} of 64 bytes follow p1 ^ p2");
    // Nor do the tags repeat.
    assert_ne!(tag(&original), tag(&restored_message));

    // Equal plaintexts: the only leak. With a cleartext header the two copies' messages
    // have equal AAD, so GCM-SIV under the repeated key gives the very same bytes: an
    // observer learns that the same plaintext was sent twice, and nothing else. In
    // header-encrypted mode each header is sealed under a fresh random nonce and the
    // sealed header is part of the body's AAD, so even equal plaintexts give unrelated
    // bodies. A new chain (a deferred DH ratchet step completed with a new random ratchet
    // key) has a new message key: nothing is equal.
    if same_position && !sender.is_header_encrypted() {
        assert_eq!(original[..prefix], restored_message[..prefix]);
        assert_eq!(
            restored_same_plaintext, original,
            "equal plaintexts, equal messages"
        );
    } else {
        assert_ne!(body(&restored_same_plaintext), body(&original));
        assert_ne!(tag(&restored_same_plaintext), tag(&original));
    }
    if sender.is_header_encrypted() {
        // The framing before the sealed header is the same, the sealed headers (random
        // nonce first) are not.
        let framing = prefix - 68;
        assert_eq!(original[..framing], restored_message[..framing]);
        assert_ne!(
            original[framing..framing + 12],
            restored_message[framing..framing + 12]
        );
        assert_ne!(
            original[framing..framing + 12],
            restored_same_plaintext[framing..framing + 12]
        );
    }

    let follow_up = restored.encrypt(FOLLOW_UP, &mut rng(seed + 3000)).unwrap();
    Sent {
        original,
        restored: restored_message,
        follow_up,
        restored_same_plaintext,
        same_position,
    }
}

/// The receiver gets the copies' messages in both orders (from two copies of its session).
/// Same (chain, N): the first decrypts, the other is `DuplicateOrExpired` (its key is
/// gone), and the restored copy's next message, at a fresh N of the same chain, decrypts.
/// New chains: the first decrypts and takes the receiver into its chain; the other copy's
/// ratchet key then starts a DH ratchet step from a root key the other copy never had, so
/// it is `DecryptionFailed` (header-encrypted: its header opens under the current header
/// key, but names another ratchet key: `DecryptionFailed` too).
fn deliver_both_orders(receiver: &Session, sent: &Sent) {
    let second_error = if sent.same_position {
        Error::DuplicateOrExpired
    } else {
        Error::DecryptionFailed
    };

    // The live session's message first.
    let mut r = Session::from_bytes(&stored(receiver), receiver.local_identity()).unwrap();
    assert_eq!(r.decrypt(&sent.original).unwrap(), P1);
    assert_rejected(&mut r, &sent.restored, second_error);
    assert_rejected(&mut r, &sent.restored_same_plaintext, second_error);
    if sent.same_position {
        assert_eq!(r.decrypt(&sent.follow_up).unwrap(), FOLLOW_UP);
    } else {
        assert_rejected(&mut r, &sent.follow_up, Error::DecryptionFailed);
    }

    // The restored copy's messages first.
    let mut r = Session::from_bytes(&stored(receiver), receiver.local_identity()).unwrap();
    assert_eq!(r.decrypt(&sent.restored).unwrap(), P2);
    assert_eq!(r.decrypt(&sent.follow_up).unwrap(), FOLLOW_UP);
    assert_rejected(&mut r, &sent.original, second_error);
    assert_rejected(&mut r, &sent.restored_same_plaintext, second_error);
}

fn rollback(seed: u64, header_encryption: bool, point: Point, who: Who) {
    let (mut sender, receiver, mut r) =
        sessions(seed, header_encryption, point, who, Padding::Padme);
    let initial = who == Who::Initiator && point == Point::InitialMessages;
    let sent = send_from_copies(&mut sender, &mut r, seed);
    let expected_type = match (initial, header_encryption) {
        (false, false) => 0x01,
        (true, false) => 0x02,
        (false, true) => 0x04,
        (true, true) => 0x05,
    };
    assert_eq!(sent.original[1], expected_type);
    // A copy taken before a deferred DH ratchet step completes it with a fresh ratchet
    // key; otherwise both copies continue the same chain at the same N.
    assert_eq!(sent.same_position, point != Point::PendingRatchetStep);
    deliver_both_orders(&receiver, &sent);
}

#[test]
fn rollback_while_sending_initial_messages() {
    for header_encryption in [false, true] {
        rollback(
            20,
            header_encryption,
            Point::InitialMessages,
            Who::Initiator,
        );
        rollback(
            21,
            header_encryption,
            Point::InitialMessages,
            Who::Responder,
        );
    }
}

#[test]
fn rollback_with_normal_messages() {
    for header_encryption in [false, true] {
        rollback(30, header_encryption, Point::NormalMessages, Who::Initiator);
        rollback(31, header_encryption, Point::NormalMessages, Who::Responder);
    }
}

#[test]
fn rollback_before_a_deferred_ratchet_step() {
    for header_encryption in [false, true] {
        rollback(
            40,
            header_encryption,
            Point::PendingRatchetStep,
            Who::Initiator,
        );
        rollback(
            41,
            header_encryption,
            Point::PendingRatchetStep,
            Who::Responder,
        );
    }
}

/// Alice's session restored to before her very first message: both copies send the first
/// initial message (N = 0, the same EK_A). Bob's prekey store accepts whichever arrives
/// first and deletes the one-time prekey, so the other cannot create a second session
/// (`UnknownOneTimePreKey`); routed by session id to the session that exists, it is
/// `DuplicateOrExpired`.
#[test]
fn rollback_before_the_first_message() {
    for (seed, header_encryption) in [(50, false), (51, true)] {
        for restored_first in [false, true] {
            let mut r = rng(seed);
            let mut parties = Parties::new(&mut r);
            let mut options = SessionOptions::new();
            if header_encryption {
                options = options.header_encryption();
            }
            let mut a =
                Session::initiate(&parties.alice, &parties.bundle, &options, &mut r).unwrap();
            let sent = send_from_copies(&mut a, &mut r, seed);
            assert!(sent.same_position);
            assert_eq!(
                sent.original[1],
                if header_encryption { 0x05 } else { 0x02 }
            );

            let (first, first_plaintext, second) = if restored_first {
                (&sent.restored, P2, &sent.original)
            } else {
                (&sent.original, P1, &sent.restored)
            };
            let (mut b, plaintext) = parties.accept(first, Limits::default()).unwrap();
            assert_eq!(plaintext, first_plaintext);
            let opk = parties.bundle.one_time_prekey_id().unwrap();
            let store_before = parties.store.to_bytes().to_vec();
            for m in [second, &sent.restored_same_plaintext] {
                assert_eq!(
                    parties.accept(m, Limits::default()).err(),
                    Some(Error::UnknownOneTimePreKey(opk))
                );
                assert_eq!(parties.store.to_bytes().to_vec(), store_before);
                assert_rejected(&mut b, m, Error::DuplicateOrExpired);
            }
            // The restored copy's next message is at a fresh N of the same chain.
            assert_eq!(b.decrypt(&sent.follow_up).unwrap(), FOLLOW_UP);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// Length of the framing before the ciphertext (SPEC.md §5.2-§5.3; prekey ids are 8 bytes
/// since profile v2 part 2).
fn prefix_length(message: &[u8]) -> usize {
    match message[1] {
        0x01 => 42,
        0x02 => 123,
        0x03 => 1219,
        0x04 => 70,
        0x05 => 151,
        0x06 => 1247,
        other => panic!("not a message type: {other:#04x}"),
    }
}

/// The ciphertext of a message, without framing and tag.
fn body(message: &[u8]) -> &[u8] {
    &message[prefix_length(message)..message.len() - 16]
}

/// The tag of a message.
fn tag(message: &[u8]) -> &[u8] {
    &message[message.len() - 16..]
}

/// `encode(pt)` under `Padding::Padme` for `pt` shorter than 63 bytes (v2 §4.9).
fn encoded_padme(pt: &[u8]) -> Vec<u8> {
    assert!(pt.len() < 63);
    let mut out = pt.to_vec();
    out.push(0x80);
    out.resize(64, 0);
    out
}

/// `encode(pt)` under `Padding::None` for a 15-byte `pt`: one block.
fn encoded_block(pt: &[u8; 15]) -> [u8; 16] {
    let mut out = [0x80; 16];
    out[..15].copy_from_slice(pt);
    out
}

fn xor(x: &[u8], y: &[u8]) -> Vec<u8> {
    assert_eq!(x.len(), y.len());
    x.iter().zip(y).map(|(a, b)| a ^ b).collect()
}

fn random_bytes<const N: usize>(r: &mut ChaCha20Rng) -> [u8; N] {
    let mut out = [0u8; N];
    r.fill_bytes(&mut out);
    out
}

fn random_block(r: &mut ChaCha20Rng) -> u128 {
    u128::from_be_bytes(random_bytes(r))
}

/// `session` rejects `message` with `expected` and its storage encoding is unchanged.
#[track_caller]
fn assert_rejected(session: &mut Session, message: &[u8], expected: Error) {
    let before = stored(session);
    assert_eq!(session.decrypt(message), Err(expected));
    assert!(
        stored(session) == before,
        "a rejected message ({expected:?}) changed the session"
    );
}
