//! `decryption_error_v2.json`: decryption-error requests (SPEC.md §6.8, type `0x07`) made by
//! the library for three failed messages (an initial message, a normal message with a
//! cleartext header, a header-encrypted normal message), each recomputed here from the
//! SPEC.md table with `sha2` and `ed25519-dalek` only and asserted equal before writing.

use doubleratchet::rand_core::TryRng;
use doubleratchet::{IdentityKeyPair, LocalDevice, RecordLimits, SessionOptions, SessionRecord};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{assert_same, ed25519_sign, hex, provenance, to_json, Provenance, DATE};

const FILE: &str = "decryption_error_v2.json";
const LABEL: &[u8] = b"doubleratchet v2 decryption error";
const SESSION_ID_LABEL: &[u8] = b"doubleratchet v2 session id";

#[derive(Serialize)]
struct RequestFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    decryption_error_label: &'static str,
    requester_seed: String,
    requester_identity: String,
    recipient_seed: String,
    recipient_identity: String,
    cases: Vec<Case>,
}

#[derive(Serialize)]
struct Case {
    name: &'static str,
    failed_message: String,
    time: u64,
    session_id: Option<String>,
    ratchet_key: Option<String>,
    signed_part: String,
    request: String,
}

/// An identity key pair from its seed, through its stored form (SPEC.md §7.2).
fn identity(seed: &[u8; 32]) -> IdentityKeyPair {
    let mut stored = vec![0x02, 0x21];
    stored.extend_from_slice(seed);
    IdentityKeyPair::from_bytes(&stored).unwrap()
}

/// The request of SPEC.md §6.8, built from the table: the fields named by the failed message
/// read at the offsets of §5.2-§5.3, the session id of §3.5, the signature over the label
/// and the first 140 bytes.
fn independent(
    requester_seed: &[u8; 32],
    requester: &[u8; 32],
    recipient: &[u8; 32],
    failed: &[u8],
    time: u64,
) -> (Option<[u8; 32]>, Option<[u8; 32]>, Vec<u8>) {
    let (session_id, ratchet_key) = match failed[1] {
        0x01 => (None, Some(failed[2..34].try_into().unwrap())),
        0x04 => (None, None),
        0x02 => {
            // IK_A 2..34, EK_A 34..66; the cleartext header follows the 81-byte fields.
            let id: [u8; 32] = Sha256::new()
                .chain_update(SESSION_ID_LABEL)
                .chain_update(&failed[2..34])
                .chain_update(requester)
                .chain_update(&failed[34..66])
                .finalize()
                .into();
            (Some(id), Some(failed[83..115].try_into().unwrap()))
        }
        t => panic!("no case for message type {t:#04x}"),
    };
    let mut out = vec![0x02, 0x07];
    out.extend_from_slice(requester);
    out.extend_from_slice(recipient);
    for field in [session_id, ratchet_key] {
        match field {
            Some(bytes) => {
                out.push(1);
                out.extend_from_slice(&bytes);
            }
            None => out.extend_from_slice(&[0u8; 33]),
        }
    }
    out.extend_from_slice(&time.to_be_bytes());
    assert_eq!(out.len(), 140);
    let signature = ed25519_sign(requester_seed, &[LABEL, &out[..]].concat());
    out.extend_from_slice(&signature);
    (session_id, ratchet_key, out)
}

pub(super) fn generate() -> (String, String) {
    let mut rng = ChaCha20Rng::seed_from_u64(0x0716);
    let seed = |rng: &mut ChaCha20Rng| {
        let mut s = [0u8; 32];
        rng.try_fill_bytes(&mut s).unwrap();
        s
    };
    let alice_seed = seed(&mut rng);
    let bob_seed = seed(&mut rng);
    let now = 1_790_000_000;
    let mut alice = LocalDevice::from_identity(identity(&alice_seed), now, &mut rng).unwrap();
    let mut bob = LocalDevice::from_identity(identity(&bob_seed), now, &mut rng).unwrap();
    let (a_id, b_id) = (*alice.identity_key(), *bob.identity_key());
    let plain = SessionOptions::new();
    let he = SessionOptions::new().header_encryption();

    // Alice -> Bob: an initial message, then (after Bob's reply) a normal one; and a
    // header-encrypted session's normal message.
    let mut failed = Vec::new();
    for (options, name) in [(&plain, "cleartext"), (&he, "header-encrypted")] {
        let mut a = SessionRecord::new(&a_id, &b_id, RecordLimits::default()).unwrap();
        let mut b = SessionRecord::new(&b_id, &a_id, RecordLimits::default()).unwrap();
        a.initiate(&alice, &bob.bundle(None).unwrap(), options, now, &mut rng)
            .unwrap();
        let initial = a.encrypt(b"first", &mut rng).unwrap();
        let got = b.receive(&mut bob, &initial, options, now).unwrap();
        assert_eq!(got.plaintext, b"first");
        let reply = b.encrypt(b"reply", &mut rng).unwrap();
        let got = a.receive(&mut alice, &reply, options, now).unwrap();
        assert_eq!(got.plaintext, b"reply");
        let normal = a.encrypt(b"lost", &mut rng).unwrap();
        if name == "cleartext" {
            failed.push((
                "initial message (type 0x02): session id and ratchet key",
                initial,
            ));
            failed.push(("normal message (type 0x01): ratchet key only", normal));
        } else {
            failed.push((
                "header-encrypted normal message (type 0x04): neither",
                normal,
            ));
        }
    }

    let bob_record = SessionRecord::new(&b_id, &a_id, RecordLimits::default()).unwrap();
    let mut cases = Vec::new();
    for (i, (name, message)) in failed.into_iter().enumerate() {
        let time = now + 60 * i as u64;
        let library = bob_record.decryption_error(&bob, &message, time).unwrap();
        let (session_id, ratchet_key, ours) =
            independent(&bob_seed, b_id.as_bytes(), a_id.as_bytes(), &message, time);
        assert_same(&format!("{FILE}: {name}"), &ours, &library);
        cases.push(Case {
            name,
            failed_message: hex(&message),
            time,
            session_id: session_id.map(|b| hex(&b)),
            ratchet_key: ratchet_key.map(|b| hex(&b)),
            signed_part: hex(&library[..140]),
            request: hex(&library),
        });
    }
    let file = RequestFile {
        comment: vec![
            "Decryption-error requests of SPEC.md 6.8 (type 0x07, 204 bytes): the requester \
             (Bob) could not decrypt failed_message from the recipient (Alice) and signs a request \
             naming its session id (initial messages) and ratchet key (cleartext headers)."
                .into(),
            format!(
                "Part of the vector set dated {DATE}, added to it on 2026-12-03 (issue 16) and \
                 generated with it (cargo run -p doubleratchet-vectors -- --write); each request \
                 was recomputed from the SPEC.md table with sha2 and ed25519-dalek and asserted \
                 equal to the library's before writing."
            ),
            "request = 02 07 || IK_requester || IK_recipient || flag || session id || flag || \
             ratchet key || u64 time || Ed25519-Sign(requester seed, label || signed_part); an \
             absent field is 33 zero bytes. Byte strings are lowercase hex; tests/it/vectors.rs \
             checks this file."
                .into(),
        ],
        kind: "decryption_error",
        provenance: provenance(),
        decryption_error_label: "doubleratchet v2 decryption error",
        requester_seed: hex(&bob_seed),
        requester_identity: hex(b_id.as_bytes()),
        recipient_seed: hex(&alice_seed),
        recipient_identity: hex(a_id.as_bytes()),
        cases,
    };
    eprintln!(
        "{FILE}: {} requests agree with the library",
        file.cases.len()
    );
    (FILE.into(), to_json(&file))
}
