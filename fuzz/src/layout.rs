//! Byte layouts of the wire and storage formats (SPEC.md §5, §7) as the targets read them,
//! and the plaintext encoding (SPEC.md §4.9): the targets check the crate against these
//! independent copies.

use crate::prelude::*;

/// The most operations the `session` target runs for one input.
pub(crate) const MAX_OPS: usize = 64;
/// Length of an AES-256-GCM-SIV tag.
pub(crate) const TAG: usize = 16;
/// The end marker after every plaintext, before its padding (SPEC.md §4.9).
pub(crate) const END_MARKER_LEN: usize = 1;
/// Message layout (SPEC.md §5): `version | type | [initial fields] | header | ciphertext`.
/// An initial message's X3DH fields: `IK_A`, `EK_A`, SPK id, OPK flag and id (every prekey
/// id is 8 bytes, big-endian: profile v2 part 2).
pub(crate) const X3DH_FIELDS: usize = 32 + 32 + 8 + 1 + 8;
/// Where an initial message's X3DH fields sit: `IK_A` 2..34, `EK_A` 34..66, the signed
/// prekey id 66..74, the one-time prekey flag 74 and id 75..83.
pub(crate) const INITIAL_SPK_ID: core::ops::Range<usize> = 66..74;
pub(crate) const INITIAL_OPK_FLAG: usize = 74;
pub(crate) const INITIAL_OPK_ID: core::ops::Range<usize> = 75..83;
/// Where the ratchet header (or PQXDH's fields) of an initial message starts.
pub(crate) const INITIAL_FIELDS_END: usize = 2 + X3DH_FIELDS;
/// PQXDH's additional fields: the post-quantum prekey id and the ML-KEM-768 ciphertext.
pub(crate) const PQ_FIELDS: usize = 8 + 1088;
/// A ratchet header in the clear: `DHs | PN | N`.
pub(crate) const PLAIN_HEADER: usize = 32 + 4 + 4;
/// An encrypted ratchet header: nonce, the sealed plain header, tag.
pub(crate) const SEALED_HEADER: usize = 12 + PLAIN_HEADER + TAG;
/// Framing lengths of the two classical kinds, for the `respond` target's field table.
pub(crate) const INITIAL_PREFIX: usize = 2 + X3DH_FIELDS + PLAIN_HEADER;
/// Where a PQXDH initial message's ratchet header starts (SPEC.md §5.3): after the X3DH
/// fields, the post-quantum prekey id (bytes 83..91) and the KEM ciphertext (91..1179).
pub(crate) const PQ_HEADER_START: usize = 2 + X3DH_FIELDS + PQ_FIELDS;
pub(crate) const PQ_ID: core::ops::Range<usize> = 83..91;
pub(crate) const KEM_CT: core::ops::Range<usize> = 91..PQ_HEADER_START;
/// Type bytes of the message kinds.
pub(crate) const TYPE_NORMAL: u8 = 0x01;
pub(crate) const TYPE_INITIAL: u8 = 0x02;
pub(crate) const TYPE_INITIAL_PQ: u8 = 0x03;
pub(crate) const TYPE_NORMAL_HE: u8 = 0x04;
pub(crate) const TYPE_INITIAL_HE: u8 = 0x05;
pub(crate) const TYPE_INITIAL_PQ_HE: u8 = 0x06;
/// Byte ranges of a prekey bundle's fields (SPEC.md §5.4, 8-byte ids).
pub(crate) const BUNDLE_SPK_ID: core::ops::Range<usize> = 34..42;
pub(crate) const BUNDLE_SPK: core::ops::Range<usize> = 42..74;
pub(crate) const BUNDLE_OPK_FLAG: usize = 138;
pub(crate) const BUNDLE_OPK_ID: core::ops::Range<usize> = 139..147;
pub(crate) const BUNDLE_OPK: core::ops::Range<usize> = 147..179;
/// A PQXDH bundle's (type `0x11`) post-quantum fields: id, ML-KEM-768 key, signature.
#[cfg(feature = "pqxdh")]
pub(crate) const BUNDLE_PQ_ID: core::ops::Range<usize> = 179..187;
#[cfg(feature = "pqxdh")]
pub(crate) const BUNDLE_PQ_KEY: core::ops::Range<usize> = 187..1371;
#[cfg(feature = "pqxdh")]
pub(crate) const BUNDLE_PQ_SIGNATURE: core::ops::Range<usize> = 1371..1435;
pub(crate) const TYPE_BUNDLE: u8 = 0x10;
pub(crate) const TYPE_BUNDLE_PQ: u8 = 0x11;
/// Stored session types (SPEC.md §7.1) and the post-quantum flag of type `0x28`.
pub(crate) const TYPE_SESSION: u8 = 0x20;
pub(crate) const TYPE_SESSION_PQ: u8 = 0x25;
pub(crate) const TYPE_SESSION_HE: u8 = 0x28;
/// A stored session (SPEC.md §7.1): `version | type | state flags | [flags, type 0x28] |
/// IK_remote (32) | EK_A (32) | [pending fields] | limits (2 x u32) | padding | RK | DHs
/// secret | DHr | [CKs] | [CKr] | Ns | Nr | PN | k | skipped keys | [header keys, 0x28]`.
/// The local identity is not stored (the loading device passes its own). The state flags
/// byte says which optional fields are stored: the pending fields (an initiator awaiting its
/// first reply: the signed prekey id, the one-time prekey id if it names one, and for PQXDH
/// the post-quantum prekey id and KEM ciphertext) and each chain key.
pub(crate) const SESSION_STATE: usize = 2;
/// State flags: the responder's session.
pub(crate) const STATE_RESPONDER: u8 = 0x01;
/// State flags: awaiting the first reply (the pending fields are stored).
pub(crate) const STATE_AWAITING_REPLY: u8 = 0x02;
/// State flags: the pending fields hold a one-time prekey id.
pub(crate) const STATE_ONE_TIME_PREKEY: u8 = 0x04;
/// State flags: `CKs` is stored.
pub(crate) const STATE_SENDING_CHAIN: u8 = 0x08;
/// State flags: `CKr` is stored.
pub(crate) const STATE_RECEIVING_CHAIN: u8 = 0x10;
/// Where a stored session's remote identity key starts, after the state flags (type
/// `0x28` has its flags byte before it).
pub(crate) const SESSION_REMOTE: usize = 3;
/// The safety number's byte form type (SPEC.md §9.1).
pub(crate) const TYPE_SAFETY_NUMBER: u8 = 0x40;
/// The stored local device (type `0x2A`, SPEC.md §7.5): header `version | 0x2A`, the
/// stored identity key pair (`version | 0x21 | seed (32)`), `replay capacity (u32) |
/// one-time prekey cap (u32) | next sequence (u64) | current id (u64) | s (u32)`, then the
/// signed prekeys with their times and records; a stored signed prekey (`0x22`), one-time
/// prekey (`0x23`) and post-quantum prekey (`0x26`) are `version | type | id (8) | ...`.
pub(crate) const TYPE_LOCAL_DEVICE: u8 = 0x2A;
/// The retired prekey store type (never released): nothing loads it any more.
pub(crate) const TYPE_RETIRED_PREKEY_STORE: u8 = 0x24;
pub(crate) const STORED_IDENTITY: usize = 2 + 32;
/// Where the device's stored identity key pair sits.
pub(crate) const DEVICE_IDENTITY: core::ops::Range<usize> = 2..2 + STORED_IDENTITY;
/// Where the replay capacity and the one-time prekey cap sit (both u32, big-endian).
pub(crate) const DEVICE_REPLAY_CAPACITY: core::ops::Range<usize> = 36..40;
pub(crate) const DEVICE_ONE_TIME_CAP: core::ops::Range<usize> = 40..44;
/// Where the first signed prekey starts: after the header, identity, capacities, next
/// sequence, current id and `s`.
pub(crate) const STORE_SIGNED: usize = 2 + STORED_IDENTITY + 4 + 4 + 8 + 8 + 4;
pub(crate) const STORED_SPK: usize = 2 + 8 + 32 + 64;
pub(crate) const STORED_OPK: usize = 2 + 8 + 32;
pub(crate) const STORED_PQ_PREKEY: usize = 2 + 8 + 1 + 64 + 64;
/// An optional time: a flag byte and a u64 (all zero when absent).
pub(crate) const OPTIONAL_TIME: usize = 1 + 8;
/// The standby slot: a flag, then the stored signed prekey and its creation time (all zero
/// when absent).
pub(crate) const STANDBY_SLOT: usize = 1 + STORED_SPK + 8;
/// The application contexts the `load` target opens sealed input with (its seeds are
/// sealed with one or the other).
pub(crate) const LOAD_CONTEXTS: [&[u8]; 2] = [b"fuzz: load", b""];
/// The context each side's session is sealed with in the `session` target's `Reload`.
pub(crate) const SESSION_CONTEXTS: [&[u8]; 2] = [b"fuzz: alice's session", b"fuzz: bob's session"];

/// The context the `record` target's sealed reloads use.
pub(crate) const RECORD_CONTEXT: &[u8] = b"fuzz: record";

/// A stored session record (type `0x2B`, SPEC.md §7.8): `version | 0x2B | IK_local (32) |
/// IK_remote (32) | max_archived (u32) | max_trials (u32) | max_stored_skipped (u32) |
/// unacknowledged_after (u64) | reset_interval (u64) | last decrypting session: flag | id
/// (32) | last reset: flag | request time (u64) | time (u64) | has_sending (flag) |
/// archived count (u32)`, absent fields all zero; then the entries, the sending session
/// first: `created (u64) | retired (flag) | length (u32) | session (§7.1)`.
pub(crate) const TYPE_SESSION_RECORD: u8 = 0x2B;
pub(crate) const RECORD_LOCAL: core::ops::Range<usize> = 2..34;
pub(crate) const RECORD_REMOTE: core::ops::Range<usize> = 34..66;
pub(crate) const RECORD_MAX_ARCHIVED: usize = 66;
pub(crate) const RECORD_MAX_TRIALS: usize = 70;
pub(crate) const RECORD_MAX_STORED_SKIPPED: usize = 74;
pub(crate) const RECORD_UNACKNOWLEDGED_AFTER: usize = 78;
pub(crate) const RECORD_RESET_INTERVAL: usize = 86;
pub(crate) const RECORD_LAST_DECRYPTED: usize = 94;
pub(crate) const RECORD_LAST_RESET: usize = 127;
pub(crate) const RECORD_HAS_SENDING: usize = 144;
pub(crate) const RECORD_ARCHIVED_COUNT: usize = 145;
/// Where the entries start: also the length of a record without sessions.
pub(crate) const RECORD_ENTRIES: usize = 149;
/// An entry's fields before its session's encoding.
pub(crate) const RECORD_ENTRY_OVERHEAD: usize = 8 + 1 + 4;

/// A decryption-error request (type `0x07`, SPEC.md §6.8), 204 bytes: `version | 0x07 |
/// IK_requester (32) | IK_recipient (32) | flag | session id (32) | flag | ratchet key (32)
/// | time (u64) | signature (64)`, absent fields all zero.
pub(crate) const TYPE_DECRYPTION_ERROR: u8 = 0x07;
pub(crate) const REQUEST_LENGTH: usize = 204;
pub(crate) const REQUEST_REQUESTER: core::ops::Range<usize> = 2..34;
pub(crate) const REQUEST_RECIPIENT: core::ops::Range<usize> = 34..66;
pub(crate) const REQUEST_SESSION_ID: usize = 66;
pub(crate) const REQUEST_RATCHET_KEY: usize = 99;
pub(crate) const REQUEST_TIME: core::ops::Range<usize> = 132..140;

/// The big-endian `u32` at `at`.
pub(crate) fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// The big-endian `u64` at `at`.
pub(crate) fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// An optional 32-byte field at `at` (SPEC.md §7.8, §6.8): a flag byte, `0x00` with 32 zero
/// bytes or `0x01` with the value. Panics on anything else: only valid encodings are read.
pub(crate) fn optional_32(bytes: &[u8], at: usize) -> Option<[u8; 32]> {
    let value: [u8; 32] = bytes[at + 1..at + 33].try_into().unwrap();
    match bytes[at] {
        0 => {
            assert_eq!(value, [0; 32], "an absent field is not zero");
            None
        }
        1 => Some(value),
        flag => panic!("flag {flag:#04x} at {at}"),
    }
}

/// The publishing formats (SPEC.md §5.9-§5.12), all of the bundle family (version
/// `BUNDLE_VERSION`): type bytes and lengths.
pub(crate) const TYPE_UPLOAD_SET: u8 = 0x12;
pub(crate) const TYPE_SIGNED_PREKEY_PUBLIC: u8 = 0x13;
pub(crate) const TYPE_ONE_TIME_PREKEY_PUBLIC: u8 = 0x14;
pub(crate) const TYPE_PQ_PREKEY_PUBLIC: u8 = 0x15;
/// A signed prekey's public part: `version | type | id (8) | SPK (32) | signature (64) |
/// created (8)`.
pub(crate) const SIGNED_PREKEY_PUBLIC: usize = 2 + 8 + 32 + 64 + 8;
/// A one-time prekey's public part: `version | type | id (8) | OPK (32)`.
pub(crate) const ONE_TIME_PREKEY_PUBLIC: usize = 2 + 8 + 32;
/// A post-quantum prekey's public part: `version | type | id (8) | kind | ek (1184) |
/// signature (64) | created (8; zero for a one-time key)`.
pub(crate) const PQ_PREKEY_PUBLIC: usize = 2 + 8 + 1 + 1184 + 64 + 8;
/// Where a post-quantum public part's kind, key, signature and time sit.
pub(crate) const PQ_PART_KIND: usize = 10;
pub(crate) const PQ_PART_KEY: core::ops::Range<usize> = 11..1195;
pub(crate) const PQ_PART_SIGNATURE: core::ops::Range<usize> = 1195..1259;
pub(crate) const PQ_PART_CREATED: core::ops::Range<usize> = 1259..PQ_PREKEY_PUBLIC;
/// An upload set (SPEC.md §5.12): `version | type | IK (32) | signed part | last-resort flag
/// | last-resort part or zeros | n (u32) | n one-time parts | m (u32) | m post-quantum
/// one-time parts`, `1424 + 42·n + 1267·m` bytes.
pub(crate) const SET_IK: core::ops::Range<usize> = 2..34;
pub(crate) const SET_SIGNED: core::ops::Range<usize> = 34..34 + SIGNED_PREKEY_PUBLIC;
pub(crate) const SET_LAST_RESORT_FLAG: usize = SET_SIGNED.end;
pub(crate) const SET_LAST_RESORT: core::ops::Range<usize> =
    SET_LAST_RESORT_FLAG + 1..SET_LAST_RESORT_FLAG + 1 + PQ_PREKEY_PUBLIC;
pub(crate) const SET_ONE_TIME_COUNT: core::ops::Range<usize> =
    SET_LAST_RESORT.end..SET_LAST_RESORT.end + 4;
pub(crate) const UPLOAD_SET_FIXED: usize = SET_ONE_TIME_COUNT.end + 4;

/// The length of a `len`-byte plaintext encoded under `padding` (SPEC.md §4.9): the
/// plaintext and the end marker (`L = len + 1`); with Padmé, zero bytes up to
/// `padme(max(L, 64))`, at most `MAX_ENCODED_PLAINTEXT = MAX_PLAINTEXT_SIZE + 1`.
pub(crate) fn encoded_length(padding: Padding, len: usize) -> usize {
    let l = len + END_MARKER_LEN;
    match padding {
        Padding::None => l,
        Padding::Padme => padme(l.max(PADME_MINIMUM)).min(MAX_PLAINTEXT_SIZE + END_MARKER_LEN),
        other => panic!("no encoding known for {other:?}"),
    }
}

/// Padmé (SPEC.md §4.9), `l >= 2`: `E = floor(log2 l)`, `S = floor(log2 E) + 1`; `l`
/// rounded up to a multiple of `2^(E - S)`.
pub(crate) fn padme(l: usize) -> usize {
    let e = l.ilog2();
    let s = e.ilog2() + 1;
    let mask = (1usize << (e - s)) - 1;
    (l + mask) & !mask
}

/// The stored byte of a padding policy (SPEC.md §7.1).
pub(crate) fn padding_byte(padding: Padding) -> u8 {
    match padding {
        Padding::None => 0x00,
        Padding::Padme => 0x01,
        other => panic!("no stored byte known for {other:?}"),
    }
}

/// The other policy.
pub(crate) fn other_padding(padding: Padding) -> Padding {
    match padding {
        Padding::None => Padding::Padme,
        _ => Padding::None,
    }
}

/// Whether a stored session's type (and for `0x28` its flags byte) says header encryption
/// and PQXDH: `(flags bytes, post_quantum)`, the count of type flags bytes (0 or 1) being
/// where the fields after the state flags move.
fn session_kind(encoding: &[u8]) -> (usize, bool) {
    match encoding[1] {
        TYPE_SESSION => (0, false),
        TYPE_SESSION_PQ => (0, true),
        TYPE_SESSION_HE => (1, encoding[3] == 0x03),
        t => panic!("not a stored session: type {t:#04x}"),
    }
}

/// Where a stored session's remote identity key sits.
pub(crate) fn session_remote_range(encoding: &[u8]) -> core::ops::Range<usize> {
    let (flags, _) = session_kind(encoding);
    let start = SESSION_REMOTE + flags;
    start..start + 32
}

/// Where a loaded session's encoding keeps its padding byte: after the remote identity,
/// `EK_A`, the pending fields its state flags name, and the limits.
pub(crate) fn session_padding_offset(encoding: &[u8]) -> usize {
    let (flags, post_quantum) = session_kind(encoding);
    let state = encoding[SESSION_STATE];
    let pending = if state & STATE_AWAITING_REPLY != 0 {
        let one_time = if state & STATE_ONE_TIME_PREKEY != 0 {
            8
        } else {
            0
        };
        let pq = if post_quantum { PQ_FIELDS } else { 0 };
        8 + one_time + pq
    } else {
        0
    };
    SESSION_REMOTE + flags + 2 * 32 + pending + 8
}

/// The classical one-time prekey an initial message names.
pub(crate) fn one_time_prekey_of(message: &[u8]) -> Option<OneTimePreKeyId> {
    match Message::parse(message) {
        Ok(Message::Initial(m)) => m.one_time_prekey_id(),
        _ => None,
    }
}
