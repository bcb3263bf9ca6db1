//! The format registry: every version byte (SPEC.md §5.1), one per format family so that
//! each family can move on its own (profile v2 changed messages, bundles and storage, not
//! safety numbers); every type byte (§5.5); every length, limit (§5.8) and domain label
//! (§1). The other modules take these values from here; the public ones are re-exported
//! under their usual paths (`doubleratchet::BUNDLE_LENGTH`, ...). Unit tests check each of
//! these SPEC.md tables against this file, in both directions.
//!
//! Values of a field inside one object stay beside the type that reads them: a stored
//! session's role and flag bytes (`session::storage`), the key-encoding prefixes `0x05` and
//! `0x0A` (`keys`, `pq`) and the safety number's construction version (`fingerprint`).

/// Version byte of every message on the wire (types `0x01`..`0x06`, SPEC.md §5.2-§5.3) and
/// of decryption-error requests (type `0x07`, §6.8).
pub const WIRE_VERSION: u8 = 0x02;
/// Version byte of prekey bundles and of what a device publishes to build them: the upload
/// set and the prekeys' public parts (types `0x10`..`0x15`, SPEC.md §5.4, §5.9-§5.12).
pub const BUNDLE_VERSION: u8 = 0x02;
/// Version byte of every stored object and sealed blob (types `0x20`..`0x30`, SPEC.md §7).
/// From the 0.2.0 release on, every released storage version stays readable.
pub const STORAGE_VERSION: u8 = 0x02;
/// Version byte of a safety number's byte form (type `0x40`, SPEC.md §9.1).
pub const SAFETY_NUMBER_VERSION: u8 = 0x01;

// ---------------------------------------------------------------------------------------
// Domain labels (SPEC.md §1): HKDF infos and hash labels, as ASCII without a NUL.
// ---------------------------------------------------------------------------------------

/// HKDF info of the X3DH key derivation (SPEC.md §3.3).
pub(crate) const X3DH_INFO: &[u8] = b"doubleratchet v2 X3DH";
/// HKDF info of the PQXDH key derivation (SPEC.md §3.6).
#[cfg_attr(not(feature = "pqxdh"), allow(dead_code))]
pub(crate) const PQXDH_INFO: &[u8] = b"doubleratchet v2 PQXDH";
/// HKDF info of `KDF_RK` (SPEC.md §4.1).
pub(crate) const ROOT_INFO: &[u8] = b"doubleratchet v2 root";
/// Domain label of the session identifier hash (SPEC.md §3.5).
pub(crate) const SESSION_ID_LABEL: &[u8] = b"doubleratchet v2 session id";
/// Domain label prefixed to a sealed blob's associated data (SPEC.md §7.6).
pub(crate) const SEALED_AD_LABEL: &[u8] = b"doubleratchet v2 sealed";
/// HKDF info deriving the two initial header keys from `SK` (SPEC.md §4.8).
pub(crate) const HEADER_KEYS_INFO: &[u8] = b"doubleratchet v2 header keys";
/// HKDF info of `KDF_RK_HE` (SPEC.md §4.8).
pub(crate) const ROOT_HE_INFO: &[u8] = b"doubleratchet v2 root HE";
/// Domain label prefixed to what a decryption-error request's signature covers (SPEC.md
/// §6.8).
pub(crate) const DECRYPTION_ERROR_LABEL: &[u8] = b"doubleratchet v2 decryption error";
/// Domain label of the safety number hash (SPEC.md §9.1), unchanged from profile v1 so
/// that the digits stay the same.
pub(crate) const SAFETY_NUMBER_LABEL: &[u8] = b"doubleratchet v1 safety number";
/// Domain label prefixed to what a device list's signature covers (SPEC.md §9.4).
pub(crate) const DEVICE_LIST_LABEL: &[u8] = b"doubleratchet v2 device list";
/// Domain label prefixed to what a device link's signature covers (SPEC.md §9.4).
pub(crate) const DEVICE_LINK_LABEL: &[u8; 28] = b"doubleratchet v2 device link";
/// Domain label prefixed to what a distribution's sender binding covers (SPEC.md §11.2).
pub(crate) const GROUP_SENDER_LABEL: &[u8; 29] = b"doubleratchet v2 group sender";

// ---------------------------------------------------------------------------------------
// Lengths (SPEC.md §5.8), in bytes.
// ---------------------------------------------------------------------------------------

/// Length of every public key on the wire (Ed25519 compressed point or X25519 u-coordinate).
pub const PUBLIC_KEY_LENGTH: usize = 32;
/// Length of every secret key and symmetric key: an X25519 secret, an Ed25519 seed, a root,
/// chain, message or header key, a storage key, a DH output, `SK`.
pub(crate) const KEY_LENGTH: usize = 32;
/// Length of the associated data `AD = IK_A || IK_B` (SPEC.md §3.3).
pub(crate) const AD_LENGTH: usize = 2 * PUBLIC_KEY_LENGTH;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LENGTH: usize = 64;
/// Length of an ML-KEM-768 encapsulation (public) key.
#[cfg_attr(not(feature = "pqxdh"), allow(unreachable_pub))]
pub const KEM_PUBLIC_KEY_LENGTH: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
#[cfg_attr(not(feature = "pqxdh"), allow(unreachable_pub))]
pub const KEM_CIPHERTEXT_LENGTH: usize = 1088;
/// Length of a stored ML-KEM-768 decapsulation key seed `d || z`.
pub(crate) const KEM_SEED_LENGTH: usize = 64;
/// Length of an AEAD nonce (AES-256-GCM-SIV, SPEC.md §1).
pub(crate) const NONCE_LENGTH: usize = 12;
/// Length of an AEAD tag, never truncated (SPEC.md §1).
pub(crate) const TAG_LENGTH: usize = 16;
/// Length of a cleartext ratchet header `DHs || PN || N` (SPEC.md §5.2).
pub(crate) const HEADER_LENGTH: usize = PUBLIC_KEY_LENGTH + 4 + 4;
/// Length of a sealed header: nonce, encrypted header, tag (SPEC.md §4.8).
pub(crate) const ENCRYPTED_HEADER_LENGTH: usize = NONCE_LENGTH + HEADER_LENGTH + TAG_LENGTH;
/// Length of an initial message's X3DH fields: `IK_A`, `EK_A`, SPK id, OPK flag and id
/// (SPEC.md §5.3).
pub(crate) const X3DH_FIELDS_LENGTH: usize = 2 * PUBLIC_KEY_LENGTH + 8 + 1 + 8;
/// Length of PQXDH's additional fields: `PQPK` id and KEM ciphertext (SPEC.md §5.3).
pub(crate) const PQ_FIELDS_LENGTH: usize = 8 + KEM_CIPHERTEXT_LENGTH;
/// Length of a normal message's framing before the ciphertext (type `0x01`).
pub(crate) const NORMAL_PREFIX_LENGTH: usize = 2 + HEADER_LENGTH;
/// Length of an initial message's framing (type `0x02`).
pub(crate) const INITIAL_PREFIX_LENGTH: usize = 2 + X3DH_FIELDS_LENGTH + HEADER_LENGTH;
/// Length of a PQXDH initial message's framing (type `0x03`).
pub(crate) const PQ_INITIAL_PREFIX_LENGTH: usize =
    2 + X3DH_FIELDS_LENGTH + PQ_FIELDS_LENGTH + HEADER_LENGTH;
/// Length of a header-encrypted normal message's framing (type `0x04`).
pub(crate) const HE_NORMAL_PREFIX_LENGTH: usize = 2 + ENCRYPTED_HEADER_LENGTH;
/// Length of a header-encrypted initial message's framing (type `0x05`).
pub(crate) const HE_INITIAL_PREFIX_LENGTH: usize = 2 + X3DH_FIELDS_LENGTH + ENCRYPTED_HEADER_LENGTH;
/// Length of a header-encrypted PQXDH initial message's framing (type `0x06`).
pub(crate) const HE_PQ_INITIAL_PREFIX_LENGTH: usize =
    2 + X3DH_FIELDS_LENGTH + PQ_FIELDS_LENGTH + ENCRYPTED_HEADER_LENGTH;
/// The longest framing any message has: a header-encrypted PQXDH initial message.
pub(crate) const MAX_PREFIX_LENGTH: usize = HE_PQ_INITIAL_PREFIX_LENGTH;
/// Length of an encoded classical prekey bundle (type `0x10`, SPEC.md §5.4).
pub const BUNDLE_LENGTH: usize =
    2 + PUBLIC_KEY_LENGTH + 8 + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH + 1 + 8 + PUBLIC_KEY_LENGTH;
/// Length of an encoded post-quantum prekey bundle (type `0x11`, SPEC.md §5.4).
#[cfg_attr(not(feature = "pqxdh"), allow(unreachable_pub, dead_code))]
pub const PQ_BUNDLE_LENGTH: usize = BUNDLE_LENGTH + 8 + KEM_PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH;
/// Length of a signed prekey's public part (type `0x13`, SPEC.md §5.9): id, key,
/// signature, creation time.
pub(crate) const SIGNED_PREKEY_PUBLIC_LENGTH: usize =
    2 + 8 + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH + 8;
/// Length of a one-time prekey's public part (type `0x14`, SPEC.md §5.10): id, key.
pub(crate) const ONE_TIME_PREKEY_PUBLIC_LENGTH: usize = 2 + 8 + PUBLIC_KEY_LENGTH;
/// Length of a post-quantum prekey's public part (type `0x15`, SPEC.md §5.11): id, kind,
/// encapsulation key, signature, creation time.
pub(crate) const PQ_PREKEY_PUBLIC_LENGTH: usize =
    2 + 8 + 1 + KEM_PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH + 8;
/// Length of an upload set without one-time prekeys of either kind (type `0x12`, SPEC.md
/// §5.12): version, type, identity key, signed prekey part, optional last-resort part, the
/// two counts.
pub(crate) const UPLOAD_SET_FIXED_LENGTH: usize =
    2 + PUBLIC_KEY_LENGTH + SIGNED_PREKEY_PUBLIC_LENGTH + 1 + PQ_PREKEY_PUBLIC_LENGTH + 4 + 4;
/// Length of a stored identity key pair (type `0x21`, SPEC.md §7.2).
pub(crate) const IDENTITY_KEY_PAIR_LENGTH: usize = 2 + KEY_LENGTH;
/// Length of a stored signed prekey (type `0x22`, SPEC.md §7.3).
pub(crate) const SIGNED_PREKEY_LENGTH: usize = 2 + 8 + KEY_LENGTH + SIGNATURE_LENGTH;
/// Length of a stored one-time prekey (type `0x23`, SPEC.md §7.4).
pub(crate) const ONE_TIME_PREKEY_LENGTH: usize = 2 + 8 + KEY_LENGTH;
/// Length of a stored post-quantum prekey (type `0x26`, SPEC.md §7.7).
pub(crate) const PQ_PREKEY_LENGTH: usize = 2 + 8 + 1 + KEM_SEED_LENGTH + SIGNATURE_LENGTH;
/// Length of a stored session (types `0x20`, `0x25`) without chain keys, pending fields or
/// skipped keys (SPEC.md §7.1): version, type, state flags, remote identity key, `EK_A`,
/// limits, padding byte, `RK`, `DHs`, `DHr`, `Ns`, `Nr`, `PN`, `k`.
pub(crate) const SESSION_BASE_LENGTH: usize = 2 + 1 + 32 * 2 + 8 + 1 + 32 * 3 + 12 + 4;
/// The longest stored session (types `0x20`, `0x25`) without skipped keys or PQXDH part
/// (SPEC.md §7.1): [`SESSION_BASE_LENGTH`] with both chain keys and the classical pending
/// fields (signed and one-time prekey ids).
pub(crate) const SESSION_FIXED_LENGTH: usize = SESSION_BASE_LENGTH + 2 * 32 + 8 + 8;
/// Extra length of a PQXDH session awaiting its first reply: `PQPK` id and KEM ciphertext
/// (`p` of SPEC.md §7.1).
pub(crate) const PQ_PENDING_LENGTH: usize = PQ_FIELDS_LENGTH;
/// Length of one stored skipped key: ratchet key, `N`, message key (SPEC.md §7.1).
pub(crate) const SKIPPED_ENTRY_LENGTH: usize = PUBLIC_KEY_LENGTH + 4 + KEY_LENGTH;
/// Extra length of a header-encrypted session (type `0x28`): the flags byte, `HKs` and
/// `HKr` (optional encodings), `NHKs`, `NHKr`, and the count of header-key pairs.
pub(crate) const HE_FIXED_LENGTH: usize = 1 + 33 + 33 + KEY_LENGTH + KEY_LENGTH + 4;
/// Length of one stored header-key pair: header key and ratchet key (SPEC.md §7.1).
pub(crate) const HEADER_KEY_PAIR_LENGTH: usize = KEY_LENGTH + PUBLIC_KEY_LENGTH;
/// Length of a sealed blob's framing: version, type, object type, nonce (SPEC.md §7.6).
pub(crate) const SEALED_HEADER_LENGTH: usize = 3 + NONCE_LENGTH;
/// Length of one replay record inside a local device: an `EK_A` (SPEC.md §7.5).
pub(crate) const STORE_REPLAY_RECORD_LENGTH: usize = PUBLIC_KEY_LENGTH;
/// Length of a journaled replay record: version, type `0x29`, signed prekey id, `EK_A`
/// (SPEC.md §8.4).
pub(crate) const REPLAY_RECORD_LENGTH: usize = 2 + 8 + PUBLIC_KEY_LENGTH;
/// Length of a decryption-error request (type `0x07`, SPEC.md §6.8): version, type, the
/// requester's and the recipient's identity keys, the optional session id and ratchet key,
/// the time, the signature.
pub(crate) const DECRYPTION_ERROR_LENGTH: usize =
    2 + 2 * PUBLIC_KEY_LENGTH + 2 * 33 + 8 + SIGNATURE_LENGTH;
/// Length of a stored session record without sessions (type `0x2B`, SPEC.md §7.8):
/// version, type, the two identities, the limits, the last decrypting session (optional),
/// the last reset (optional), the sending flag and the count of archived sessions.
pub(crate) const RECORD_FIXED_LENGTH: usize =
    2 + 2 * PUBLIC_KEY_LENGTH + (4 + 4 + 4 + 8 + 8) + 33 + 17 + 1 + 4;
/// Length of a stored record entry before its session's encoding: the time it was added,
/// the retired flag and the encoding's length (SPEC.md §7.8).
pub(crate) const RECORD_ENTRY_OVERHEAD: usize = 8 + 1 + 4;
/// Length of a device list without devices (type `0x16`, SPEC.md §9.4): version, type,
/// account key, counter, count, signature.
pub(crate) const DEVICE_LIST_FIXED_LENGTH: usize = 2 + PUBLIC_KEY_LENGTH + 8 + 1 + SIGNATURE_LENGTH;
/// Length of one device in a device list: id (`u32`), identity key and link signature
/// (SPEC.md §9.4).
pub(crate) const DEVICE_LIST_ENTRY_LENGTH: usize = 4 + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH;
/// Length of a device link (type `0x17`, SPEC.md §9.4): version, type, account key, device
/// id, identity key, signature.
pub(crate) const DEVICE_LINK_LENGTH: usize =
    2 + PUBLIC_KEY_LENGTH + 4 + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH;
/// Length of the longest device list: [`MAX_DEVICES`] devices (SPEC.md §9.4).
pub(crate) const MAX_DEVICE_LIST_LENGTH: usize =
    DEVICE_LIST_FIXED_LENGTH + DEVICE_LIST_ENTRY_LENGTH * MAX_DEVICES;
const _: () = assert!(MAX_DEVICE_LIST_LENGTH == 1707, "SPEC.md §9.4");
/// Length of a stored account without its list (type `0x2C`, SPEC.md §7.9): version, type,
/// the account key's seed, the list's length.
pub(crate) const ACCOUNT_FIXED_LENGTH: usize = 2 + KEY_LENGTH + 4;
/// The longest stored account (SPEC.md §7.9).
pub(crate) const MAX_ACCOUNT_SIZE: usize = ACCOUNT_FIXED_LENGTH + MAX_DEVICE_LIST_LENGTH;
/// Length of a stored contact without its list (type `0x2D`, SPEC.md §7.10): version, type,
/// the local identity key, trust, post-quantum flag, the record limits, the list's length.
pub(crate) const CONTACT_FIXED_LENGTH: usize =
    2 + PUBLIC_KEY_LENGTH + 1 + 1 + (4 + 4 + 4 + 8 + 8) + 4;
/// The longest stored contact (SPEC.md §7.10).
pub(crate) const MAX_CONTACT_SIZE: usize = CONTACT_FIXED_LENGTH + MAX_DEVICE_LIST_LENGTH;
/// Randomness drawn per device before a fan-out (SPEC.md §2.5, §9.6): the most one
/// encryption uses, a new ratchet key and a header nonce.
pub(crate) const FAN_OUT_RANDOM_LENGTH: usize = KEY_LENGTH + NONCE_LENGTH;
/// Length of a safety number's byte form: version, type, the two halves (SPEC.md §9.1).
pub const SAFETY_NUMBER_LENGTH: usize = 2 + 32 + 32;
/// Length of a group id: chosen by the app, fixed-width (SPEC.md §11.1).
pub const GROUP_ID_LENGTH: usize = 32;
/// Length of a sender chain's id (a random `u64`, SPEC.md §11.1).
pub(crate) const CHAIN_ID_LENGTH: usize = 8;
/// Length of a group message's framing before the ciphertext (type `0x08`, SPEC.md §11.3):
/// version, type, group id, chain id, iteration, key commitment.
pub(crate) const GROUP_PREFIX_LENGTH: usize =
    2 + GROUP_ID_LENGTH + CHAIN_ID_LENGTH + 4 + KEY_LENGTH;
/// Bytes a group message adds to its encoded plaintext: the framing, the tag and the
/// signature (SPEC.md §11.3).
pub(crate) const GROUP_MESSAGE_OVERHEAD: usize =
    GROUP_PREFIX_LENGTH + TAG_LENGTH + SIGNATURE_LENGTH;
/// Length of a sender-key distribution (type `0x09`, SPEC.md §11.2): version, type, group
/// id, chain id, iteration, chain key, signing key, sender binding.
pub(crate) const DISTRIBUTION_LENGTH: usize =
    2 + GROUP_ID_LENGTH + CHAIN_ID_LENGTH + 4 + KEY_LENGTH + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH;
/// Length of a stored group without members (type `0x2E`, SPEC.md §7.11): version, type,
/// group id, the local identity key, padding, the sending chain (id, iteration, chain key,
/// signing seed), the member count.
pub(crate) const GROUP_FIXED_LENGTH: usize = 2
    + GROUP_ID_LENGTH
    + PUBLIC_KEY_LENGTH
    + 1
    + (CHAIN_ID_LENGTH + 4 + KEY_LENGTH + KEY_LENGTH)
    + 4;
/// Length of a stored member's chains without chains (type `0x2F`, SPEC.md §7.12): version,
/// type, group id, the member's identity key, the retired count and the chain count.
pub(crate) const MEMBER_CHAINS_FIXED_LENGTH: usize =
    2 + GROUP_ID_LENGTH + PUBLIC_KEY_LENGTH + 1 + 1;
/// Length of one stored receiving chain without skipped keys (SPEC.md §7.12): chain id,
/// signing key, next iteration, chain key, skipped count.
pub(crate) const MEMBER_CHAIN_FIXED_LENGTH: usize =
    CHAIN_ID_LENGTH + PUBLIC_KEY_LENGTH + 4 + KEY_LENGTH + 4;
/// Length of one stored skipped group key: iteration, message key, commitment (SPEC.md
/// §7.12).
pub(crate) const GROUP_SKIPPED_ENTRY_LENGTH: usize = 4 + KEY_LENGTH + KEY_LENGTH;

// ---------------------------------------------------------------------------------------
// Limits (SPEC.md §5.8).
// ---------------------------------------------------------------------------------------

/// The largest message this crate writes or parses, in bytes (SPEC.md §5.6).
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;
/// The largest encoded (padded) plaintext (SPEC.md §4.9): the largest body that fits in a
/// [`MAX_MESSAGE_SIZE`] message with the longest framing (a header-encrypted PQXDH initial
/// message), so that every session can send it.
pub(crate) const MAX_ENCODED_PLAINTEXT: usize = MAX_MESSAGE_SIZE - MAX_PREFIX_LENGTH - TAG_LENGTH;
/// The largest plaintext [`Session::encrypt`](crate::Session::encrypt) accepts, in every
/// session and build: one byte below the largest encoded plaintext, for the end marker.
pub const MAX_PLAINTEXT_SIZE: usize = MAX_ENCODED_PLAINTEXT - 1;
/// Every encoded plaintext under [`Padding::Padme`](crate::Padding::Padme) is at least
/// this long: all plaintexts of up to 63 bytes look alike on the wire (SPEC.md §4.9).
pub const PADME_MINIMUM: usize = 64;
/// Default `MAX_SKIP`: how far ahead of the next expected message a message may be, in its
/// own chain or (through `PN`) in the chain it ends (SPEC.md §4.4).
pub const DEFAULT_MAX_SKIP: u32 = 1000;
/// The largest `max_skip` a session accepts: it bounds the chain steps one message can cost
/// (SPEC.md §4.4).
pub const MAX_SKIP_CAP: u32 = 100_000;
/// Default bound on the number of stored skipped message keys per session (SPEC.md §4.4).
pub const DEFAULT_MAX_STORED_SKIPPED: u32 = 2000;
/// The largest `max_stored_skipped` a session accepts: it bounds a session's memory
/// (SPEC.md §4.4).
pub const MAX_STORED_SKIPPED_CAP: u32 = 100_000;
/// In header-encrypted mode, the most header keys of earlier receiving chains a session
/// keeps for its stored skipped keys. It bounds the trial decryptions of one message at
/// `MAX_SKIPPED_HEADER_KEYS + 2` (SPEC.md §4.8).
pub const MAX_SKIPPED_HEADER_KEYS: usize = 32;
/// The largest stored object (SPEC.md §7): a header-encrypted PQXDH session awaiting its
/// first reply, holding [`MAX_STORED_SKIPPED_CAP`] skipped keys and
/// [`MAX_SKIPPED_HEADER_KEYS`] header-key pairs.
pub const MAX_STORED_SIZE: usize = SESSION_FIXED_LENGTH
    + PQ_PENDING_LENGTH
    + SKIPPED_ENTRY_LENGTH * MAX_STORED_SKIPPED_CAP as usize
    + HE_FIXED_LENGTH
    + HEADER_KEY_PAIR_LENGTH * MAX_SKIPPED_HEADER_KEYS;
/// The most one-time prekeys one upload set carries (SPEC.md §5.12): as many as a device
/// holds at most, so that one set can publish all of them.
pub const MAX_UPLOAD_ONE_TIME_PREKEYS: usize = 16_384;
/// The most one-time post-quantum prekeys one upload set carries (SPEC.md §5.12), chosen so
/// that the largest set fits in [`MAX_MESSAGE_SIZE`]; a device holding more publishes them
/// in several sets.
#[cfg_attr(not(feature = "pqxdh"), allow(unreachable_pub))]
pub const MAX_UPLOAD_PQ_PREKEYS: usize = 256;
/// The largest upload set (SPEC.md §5.12): [`MAX_UPLOAD_ONE_TIME_PREKEYS`] one-time
/// prekeys and [`MAX_UPLOAD_PQ_PREKEYS`] post-quantum ones.
pub(crate) const MAX_UPLOAD_SET_LENGTH: usize = UPLOAD_SET_FIXED_LENGTH
    + ONE_TIME_PREKEY_PUBLIC_LENGTH * MAX_UPLOAD_ONE_TIME_PREKEYS
    + PQ_PREKEY_PUBLIC_LENGTH * MAX_UPLOAD_PQ_PREKEYS;
const _: () = assert!(MAX_UPLOAD_SET_LENGTH <= MAX_MESSAGE_SIZE);
/// Default bound on a record's archived sessions (SPEC.md §6.7).
pub const DEFAULT_MAX_ARCHIVED: u32 = 40;
/// Hard cap on a record's archived sessions (SPEC.md §6.7).
pub const MAX_ARCHIVED_CAP: u32 = 64;
/// Default bound on how many sessions of a record derive keys for one message (SPEC.md
/// §6.6).
pub const DEFAULT_MAX_TRIALS: u32 = 3;
/// Default bound on the skipped keys stored by all the sessions of a record together
/// (SPEC.md §6.7).
pub const DEFAULT_RECORD_STORED_SKIPPED: u32 = 4000;
/// Hard cap on the skipped keys stored by all the sessions of a record together.
pub const MAX_RECORD_STORED_SKIPPED_CAP: u32 = 65_536;
/// The longest stored session record (SPEC.md §7.8): [`MAX_ARCHIVED_CAP`] archived sessions
/// and a sending one, each header-encrypted and awaiting its first PQXDH reply with
/// [`MAX_SKIPPED_HEADER_KEYS`] header-key pairs, and [`MAX_RECORD_STORED_SKIPPED_CAP`]
/// skipped keys among them.
pub const MAX_RECORD_SIZE: usize = RECORD_FIXED_LENGTH
    + (MAX_ARCHIVED_CAP as usize + 1)
        * (RECORD_ENTRY_OVERHEAD
            + SESSION_FIXED_LENGTH
            + HE_FIXED_LENGTH
            + PQ_PENDING_LENGTH
            + HEADER_KEY_PAIR_LENGTH * MAX_SKIPPED_HEADER_KEYS)
    + SKIPPED_ENTRY_LENGTH * MAX_RECORD_STORED_SKIPPED_CAP as usize;
const _: () = assert!(MAX_RECORD_SIZE <= MAX_STORED_SIZE);
const _: () = assert!(MAX_RECORD_SIZE == 4_687_997, "SPEC.md §7.8");
/// The longest application context [`StorageKey::seal`](crate::StorageKey::seal) and
/// [`StorageKey::open`](crate::StorageKey::open) take (SPEC.md §7.6).
pub const MAX_SEAL_CONTEXT_LENGTH: usize = 1024;
/// The most signed prekeys a local device keeps: the current one, those not yet retired,
/// and the standby (SPEC.md §8).
pub const MAX_SIGNED_PREKEYS: usize = 16;
/// The most unused one-time prekeys a local device keeps (SPEC.md §8).
pub const MAX_ONE_TIME_PREKEYS: usize = 16_384;
/// The most unused one-time post-quantum prekeys a local device keeps (each holds an
/// expanded ML-KEM-768 key in memory).
pub const MAX_PQ_ONE_TIME_PREKEYS: usize = 1_024;
/// The most last-resort post-quantum prekeys a local device keeps (the current one and
/// those not yet retired).
pub const MAX_PQ_LAST_RESORT_PREKEYS: usize = 16;
/// The most replay records one signed prekey carries (and the default
/// [`LocalDevice::replay_capacity`](crate::LocalDevice::replay_capacity)): one per session
/// accepted with it without consuming a one-time prekey of either kind (SPEC.md §8.3).
pub const MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY: u32 = 1_024;
/// How many unused one-time prekeys of each kind a new local device keeps before
/// generating more evicts the oldest (SPEC.md §8.1, §8.5): twice a batch of 100, so that
/// keys a server still holds are not evicted by the next batch.
pub const DEFAULT_ONE_TIME_PREKEY_CAP: u32 = 200;
/// Length of a stored local device (type `0x2A`, SPEC.md §7.5) without its entries: version
/// and type; the identity key pair (type `0x21`); replay capacity, one-time cap, next
/// sequence number, current signed prekey id and the count `s`; the standby (flag, signed
/// prekey, creation time); the count `t`; the optional current last-resort id; the count `q`.
pub(crate) const LOCAL_DEVICE_FIXED_LENGTH: usize = 2
    + IDENTITY_KEY_PAIR_LENGTH
    + 4
    + 4
    + 8
    + 8
    + 4
    + (1 + SIGNED_PREKEY_LENGTH + 8)
    + 4
    + (1 + 8)
    + 4;
/// Length of one accepted signed prekey in a local device, without its replay records
/// (SPEC.md §7.5): the signed prekey (type `0x22`), its creation time, the optional time it
/// was replaced, the record count.
pub(crate) const DEVICE_SIGNED_ENTRY_LENGTH: usize = SIGNED_PREKEY_LENGTH + 8 + (1 + 8) + 4;
/// Length of one one-time prekey in a local device (SPEC.md §7.5): sequence number,
/// published flag, the one-time prekey (type `0x23`).
pub(crate) const DEVICE_ONE_TIME_ENTRY_LENGTH: usize = 8 + 1 + ONE_TIME_PREKEY_LENGTH;
/// Length of one post-quantum prekey in a local device (SPEC.md §7.5): sequence number,
/// published flag, the post-quantum prekey (type `0x26`), creation time, the optional time it
/// was replaced.
pub(crate) const DEVICE_PQ_ENTRY_LENGTH: usize = 8 + 1 + PQ_PREKEY_LENGTH + 8 + (1 + 8);
/// The largest stored local device (type `0x2A`, SPEC.md §7.5): the largest counts its loader
/// accepts, every cap reached. A device of `s` accepted signed prekeys carrying `R` replay
/// records in all, `t` one-time and `q` post-quantum prekeys is
///
/// ```text
/// LOCAL_DEVICE_FIXED_LENGTH + s · DEVICE_SIGNED_ENTRY_LENGTH + R · STORE_REPLAY_RECORD_LENGTH
///     + t · DEVICE_ONE_TIME_ENTRY_LENGTH + q · DEVICE_PQ_ENTRY_LENGTH
///   = 196 + 127·s + 32·R + 51·t + 165·q bytes,
/// ```
///
/// largest with `s` = [`MAX_SIGNED_PREKEYS`] (16, hence no standby, whose bytes are there all
/// the same), `R` = 16 · [`MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`] (1 024 each), `t` =
/// [`MAX_ONE_TIME_PREKEYS`] (16 384, whatever the stored cap) and `q` =
/// [`MAX_PQ_ONE_TIME_PREKEYS`] + [`MAX_PQ_LAST_RESORT_PREKEYS`] (1 040):
/// `196 + 16 · (127 + 32 · 1 024) + 16 384 · 51 + 1 040 · 165` = 1 533 700 bytes. (A build
/// without `pqxdh` loads only `q` = 0: at most 1 362 100.)
pub(crate) const MAX_LOCAL_DEVICE_SIZE: usize = LOCAL_DEVICE_FIXED_LENGTH
    + MAX_SIGNED_PREKEYS
        * (DEVICE_SIGNED_ENTRY_LENGTH
            + STORE_REPLAY_RECORD_LENGTH * MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY as usize)
    + MAX_ONE_TIME_PREKEYS * DEVICE_ONE_TIME_ENTRY_LENGTH
    + (MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS) * DEVICE_PQ_ENTRY_LENGTH;
const _: () = assert!(MAX_LOCAL_DEVICE_SIZE <= MAX_STORED_SIZE);
const _: () = assert!(MAX_LOCAL_DEVICE_SIZE == 1_533_700, "SPEC.md §7.5");
const _: () = assert!(LOCAL_DEVICE_FIXED_LENGTH == 196, "SPEC.md §7.5");
/// How many times a fresh prekey id is drawn before the RNG is declared broken: a working
/// RNG repeats a held 64-bit id with probability below 2^-49 per draw (SPEC.md §2.5, §8.1).
pub(crate) const ID_DRAWS: usize = 16;
/// The most devices one account lists (SPEC.md §9.4).
pub const MAX_DEVICES: usize = 16;
/// How far ahead of a chain's next iteration a group message may be: the chain steps one
/// group message can cost (SPEC.md §11.4).
pub const MAX_GROUP_JUMP: u32 = 25_000;
/// The most skipped message keys one receiving sender chain stores; beyond it the oldest
/// are evicted (SPEC.md §11.4).
pub const MAX_GROUP_SKIPPED: usize = 2_000;
/// The most sender chains kept per group member: the newest, and older ones for late
/// messages (SPEC.md §11.4).
pub const MAX_MEMBER_CHAINS: usize = 5;
/// The most retired chain ids remembered per group member, so that a distribution of an
/// evicted chain is not taken again (SPEC.md §11.4).
pub const MAX_RETIRED_CHAINS: usize = 16;
/// The most member devices a group holds (SPEC.md §11.1).
pub const MAX_GROUP_MEMBERS: usize = 4_096;
/// The longest stored group: [`MAX_GROUP_MEMBERS`] members (SPEC.md §7.11).
pub(crate) const MAX_GROUP_SIZE: usize = GROUP_FIXED_LENGTH + PUBLIC_KEY_LENGTH * MAX_GROUP_MEMBERS;
/// The longest stored member's chains: [`MAX_RETIRED_CHAINS`] retired ids and
/// [`MAX_MEMBER_CHAINS`] chains holding [`MAX_GROUP_SKIPPED`] keys each (SPEC.md §7.12).
pub(crate) const MAX_MEMBER_CHAINS_SIZE: usize = MEMBER_CHAINS_FIXED_LENGTH
    + CHAIN_ID_LENGTH * MAX_RETIRED_CHAINS
    + MAX_MEMBER_CHAINS
        * (MEMBER_CHAIN_FIXED_LENGTH + GROUP_SKIPPED_ENTRY_LENGTH * MAX_GROUP_SKIPPED);
const _: () = assert!(MAX_MEMBER_CHAINS_SIZE <= MAX_STORED_SIZE);
const _: () = assert!(MAX_MEMBER_CHAINS_SIZE == 680_596, "SPEC.md §7.12");
const _: () = assert!(MAX_GROUP_SIZE == 131_219, "SPEC.md §7.11");
const _: () = assert!(GROUP_MESSAGE_OVERHEAD == 158, "SPEC.md §11.3");
// Every plaintext a session may send also fits one group message.
const _: () = assert!(GROUP_MESSAGE_OVERHEAD + MAX_ENCODED_PLAINTEXT <= MAX_MESSAGE_SIZE);
const _: () = assert!(DISTRIBUTION_LENGTH == 174, "SPEC.md §11.2");
const _: () = assert!(MAX_GROUP_SIZE <= MAX_STORED_SIZE);
/// Number of SHA-512 iterations per half of a safety number (SPEC.md §9.1).
pub const SAFETY_NUMBER_ITERATIONS: u32 = 5200;

const _: () = assert!(MAX_STORED_SIZE == 6_803_547, "SPEC.md §7");
const _: () = assert!(SESSION_BASE_LENGTH == 188, "SPEC.md §7.1");
const _: () = assert!(SESSION_FIXED_LENGTH == 268, "SPEC.md §7.1");

/// Type byte of a normal message (SPEC.md §5.2).
pub(crate) const TYPE_NORMAL: u8 = 0x01;
/// Type byte of an initial (prekey) message (SPEC.md §5.3).
pub(crate) const TYPE_INITIAL: u8 = 0x02;
/// Type byte of a post-quantum (PQXDH) initial message (SPEC.md §5.3).
pub(crate) const TYPE_INITIAL_PQ: u8 = 0x03;
/// Type byte of a normal message with an encrypted header (SPEC.md §5.3, §4.8).
pub(crate) const TYPE_NORMAL_HE: u8 = 0x04;
/// Type byte of an initial message of a header-encrypted session.
pub(crate) const TYPE_INITIAL_HE: u8 = 0x05;
/// Type byte of a PQXDH initial message of a header-encrypted session.
pub(crate) const TYPE_INITIAL_PQ_HE: u8 = 0x06;
/// Type byte of a decryption-error request (SPEC.md §6.8).
pub(crate) const TYPE_DECRYPTION_ERROR: u8 = 0x07;
/// Type byte of a group message (SPEC.md §11.3).
pub(crate) const TYPE_GROUP_MESSAGE: u8 = 0x08;
/// Type byte of a sender-key distribution (SPEC.md §11.2).
pub(crate) const TYPE_DISTRIBUTION: u8 = 0x09;
/// Type byte of a prekey bundle (SPEC.md §5.4).
pub(crate) const TYPE_BUNDLE: u8 = 0x10;
/// Type byte of a post-quantum (PQXDH) prekey bundle (SPEC.md §5.4).
#[cfg_attr(not(feature = "pqxdh"), allow(dead_code))]
pub(crate) const TYPE_BUNDLE_PQ: u8 = 0x11;
/// Type byte of an upload set (SPEC.md §5.12).
pub(crate) const TYPE_UPLOAD_SET: u8 = 0x12;
/// Type byte of a signed prekey's public part (SPEC.md §5.9).
pub(crate) const TYPE_SIGNED_PREKEY_PUBLIC: u8 = 0x13;
/// Type byte of a one-time prekey's public part (SPEC.md §5.10).
pub(crate) const TYPE_ONE_TIME_PREKEY_PUBLIC: u8 = 0x14;
/// Type byte of a post-quantum prekey's public part (SPEC.md §5.11).
#[cfg_attr(not(feature = "pqxdh"), allow(dead_code))]
pub(crate) const TYPE_PQ_PREKEY_PUBLIC: u8 = 0x15;
/// Type byte of a signed device list (SPEC.md §9.4).
pub(crate) const TYPE_DEVICE_LIST: u8 = 0x16;
/// Type byte of a device link (SPEC.md §9.4).
pub(crate) const TYPE_DEVICE_LINK: u8 = 0x17;
/// Object type byte of a stored account: account key and device list (SPEC.md §7.9).
pub(crate) const TYPE_ACCOUNT: u8 = 0x2C;
/// Object type byte of a stored contact's own state (SPEC.md §7.10).
pub(crate) const TYPE_CONTACT: u8 = 0x2D;
/// Object type byte of a stored session (SPEC.md §7.1).
pub(crate) const TYPE_SESSION: u8 = 0x20;
/// Object type byte of a stored identity key pair (SPEC.md §7.2).
pub(crate) const TYPE_IDENTITY: u8 = 0x21;
/// Object type byte of a stored signed prekey (SPEC.md §7.3).
pub(crate) const TYPE_SIGNED_PREKEY: u8 = 0x22;
/// Object type byte of a stored one-time prekey (SPEC.md §7.4).
pub(crate) const TYPE_ONE_TIME_PREKEY: u8 = 0x23;
/// Object type byte of a local device: identity key pair and prekeys (SPEC.md §7.5).
pub(crate) const TYPE_LOCAL_DEVICE: u8 = 0x2A;
/// Object type byte of a stored session agreed with PQXDH (SPEC.md §7.1).
pub(crate) const TYPE_SESSION_PQ: u8 = 0x25;
/// Object type byte of a stored post-quantum prekey (SPEC.md §7.7).
#[cfg_attr(not(feature = "pqxdh"), allow(dead_code))]
pub(crate) const TYPE_PQ_PREKEY: u8 = 0x26;
/// Object type byte of a stored header-encrypted session, classical or PQXDH (SPEC.md §7.1).
pub(crate) const TYPE_SESSION_HE: u8 = 0x28;
/// Object type byte of one journaled replay record (SPEC.md §8.4).
pub(crate) const TYPE_REPLAY_RECORD: u8 = 0x29;
/// Object type byte of a stored session record (SPEC.md §7.8).
pub(crate) const TYPE_SESSION_RECORD: u8 = 0x2B;
/// Object type byte of a stored group: the local device's sending chain and the members
/// (SPEC.md §7.11).
pub(crate) const TYPE_GROUP: u8 = 0x2E;
/// Object type byte of a stored member's receiving chains in one group (SPEC.md §7.12).
pub(crate) const TYPE_MEMBER_CHAINS: u8 = 0x2F;
/// Type byte of a sealed blob (SPEC.md §7.6).
pub(crate) const TYPE_SEALED: u8 = 0x30;
/// Type byte of a safety number's byte form (SPEC.md §9.1).
pub(crate) const TYPE_SAFETY_NUMBER: u8 = 0x40;
/// Retired type values: never written, never read, never reused (SPEC.md §5.5).
#[cfg(test)]
const RETIRED_TYPES: &[u8] = &[0x24, 0x27];

/// The format families of SPEC.md §5.1, each with its own version byte.
#[cfg(test)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Wire,
    Bundle,
    Storage,
    SafetyNumber,
}

/// Every type byte in use, with its family.
#[cfg(test)]
const TYPES: &[(u8, Family)] = &[
    (TYPE_NORMAL, Family::Wire),
    (TYPE_INITIAL, Family::Wire),
    (TYPE_INITIAL_PQ, Family::Wire),
    (TYPE_NORMAL_HE, Family::Wire),
    (TYPE_INITIAL_HE, Family::Wire),
    (TYPE_INITIAL_PQ_HE, Family::Wire),
    (TYPE_DECRYPTION_ERROR, Family::Wire),
    (TYPE_GROUP_MESSAGE, Family::Wire),
    (TYPE_DISTRIBUTION, Family::Wire),
    (TYPE_BUNDLE, Family::Bundle),
    (TYPE_BUNDLE_PQ, Family::Bundle),
    (TYPE_UPLOAD_SET, Family::Bundle),
    (TYPE_SIGNED_PREKEY_PUBLIC, Family::Bundle),
    (TYPE_ONE_TIME_PREKEY_PUBLIC, Family::Bundle),
    (TYPE_PQ_PREKEY_PUBLIC, Family::Bundle),
    (TYPE_DEVICE_LIST, Family::Bundle),
    (TYPE_DEVICE_LINK, Family::Bundle),
    (TYPE_SESSION, Family::Storage),
    (TYPE_IDENTITY, Family::Storage),
    (TYPE_SIGNED_PREKEY, Family::Storage),
    (TYPE_ONE_TIME_PREKEY, Family::Storage),
    (TYPE_SESSION_PQ, Family::Storage),
    (TYPE_PQ_PREKEY, Family::Storage),
    (TYPE_SESSION_HE, Family::Storage),
    (TYPE_REPLAY_RECORD, Family::Storage),
    (TYPE_LOCAL_DEVICE, Family::Storage),
    (TYPE_SESSION_RECORD, Family::Storage),
    (TYPE_ACCOUNT, Family::Storage),
    (TYPE_CONTACT, Family::Storage),
    (TYPE_GROUP, Family::Storage),
    (TYPE_MEMBER_CHAINS, Family::Storage),
    (TYPE_SEALED, Family::Storage),
    (TYPE_SAFETY_NUMBER, Family::SafetyNumber),
];

/// Every domain label, by its SPEC.md §1 name.
#[cfg(test)]
const LABELS: &[(&str, &[u8])] = &[
    ("X3DH_INFO", X3DH_INFO),
    ("PQXDH_INFO", PQXDH_INFO),
    ("ROOT_INFO", ROOT_INFO),
    ("SESSION_ID_LABEL", SESSION_ID_LABEL),
    ("SEALED_AD_LABEL", SEALED_AD_LABEL),
    ("HEADER_KEYS_INFO", HEADER_KEYS_INFO),
    ("ROOT_HE_INFO", ROOT_HE_INFO),
    ("SAFETY_NUMBER_LABEL", SAFETY_NUMBER_LABEL),
    ("DECRYPTION_ERROR_LABEL", DECRYPTION_ERROR_LABEL),
    ("DEVICE_LIST_LABEL", DEVICE_LIST_LABEL),
    ("DEVICE_LINK_LABEL", DEVICE_LINK_LABEL),
    ("GROUP_SENDER_LABEL", GROUP_SENDER_LABEL),
];

/// Every length and limit, by its SPEC.md §5.8 name.
#[cfg(test)]
const NUMBERS: &[(&str, usize)] = &[
    ("PUBLIC_KEY_LENGTH", PUBLIC_KEY_LENGTH),
    ("KEY_LENGTH", KEY_LENGTH),
    ("AD_LENGTH", AD_LENGTH),
    ("SIGNATURE_LENGTH", SIGNATURE_LENGTH),
    ("KEM_PUBLIC_KEY_LENGTH", KEM_PUBLIC_KEY_LENGTH),
    ("KEM_CIPHERTEXT_LENGTH", KEM_CIPHERTEXT_LENGTH),
    ("KEM_SEED_LENGTH", KEM_SEED_LENGTH),
    ("NONCE_LENGTH", NONCE_LENGTH),
    ("TAG_LENGTH", TAG_LENGTH),
    ("HEADER_LENGTH", HEADER_LENGTH),
    ("ENCRYPTED_HEADER_LENGTH", ENCRYPTED_HEADER_LENGTH),
    ("X3DH_FIELDS_LENGTH", X3DH_FIELDS_LENGTH),
    ("PQ_FIELDS_LENGTH", PQ_FIELDS_LENGTH),
    ("NORMAL_PREFIX_LENGTH", NORMAL_PREFIX_LENGTH),
    ("INITIAL_PREFIX_LENGTH", INITIAL_PREFIX_LENGTH),
    ("PQ_INITIAL_PREFIX_LENGTH", PQ_INITIAL_PREFIX_LENGTH),
    ("HE_NORMAL_PREFIX_LENGTH", HE_NORMAL_PREFIX_LENGTH),
    ("HE_INITIAL_PREFIX_LENGTH", HE_INITIAL_PREFIX_LENGTH),
    ("HE_PQ_INITIAL_PREFIX_LENGTH", HE_PQ_INITIAL_PREFIX_LENGTH),
    ("MAX_PREFIX_LENGTH", MAX_PREFIX_LENGTH),
    ("BUNDLE_LENGTH", BUNDLE_LENGTH),
    ("PQ_BUNDLE_LENGTH", PQ_BUNDLE_LENGTH),
    ("SIGNED_PREKEY_PUBLIC_LENGTH", SIGNED_PREKEY_PUBLIC_LENGTH),
    (
        "ONE_TIME_PREKEY_PUBLIC_LENGTH",
        ONE_TIME_PREKEY_PUBLIC_LENGTH,
    ),
    ("PQ_PREKEY_PUBLIC_LENGTH", PQ_PREKEY_PUBLIC_LENGTH),
    ("UPLOAD_SET_FIXED_LENGTH", UPLOAD_SET_FIXED_LENGTH),
    ("IDENTITY_KEY_PAIR_LENGTH", IDENTITY_KEY_PAIR_LENGTH),
    ("SIGNED_PREKEY_LENGTH", SIGNED_PREKEY_LENGTH),
    ("ONE_TIME_PREKEY_LENGTH", ONE_TIME_PREKEY_LENGTH),
    ("PQ_PREKEY_LENGTH", PQ_PREKEY_LENGTH),
    ("SESSION_BASE_LENGTH", SESSION_BASE_LENGTH),
    ("SESSION_FIXED_LENGTH", SESSION_FIXED_LENGTH),
    ("PQ_PENDING_LENGTH", PQ_PENDING_LENGTH),
    ("SKIPPED_ENTRY_LENGTH", SKIPPED_ENTRY_LENGTH),
    ("HE_FIXED_LENGTH", HE_FIXED_LENGTH),
    ("HEADER_KEY_PAIR_LENGTH", HEADER_KEY_PAIR_LENGTH),
    ("SEALED_HEADER_LENGTH", SEALED_HEADER_LENGTH),
    ("STORE_REPLAY_RECORD_LENGTH", STORE_REPLAY_RECORD_LENGTH),
    ("REPLAY_RECORD_LENGTH", REPLAY_RECORD_LENGTH),
    ("SAFETY_NUMBER_LENGTH", SAFETY_NUMBER_LENGTH),
    ("MAX_MESSAGE_SIZE", MAX_MESSAGE_SIZE),
    ("MAX_ENCODED_PLAINTEXT", MAX_ENCODED_PLAINTEXT),
    ("MAX_PLAINTEXT_SIZE", MAX_PLAINTEXT_SIZE),
    ("PADME_MINIMUM", PADME_MINIMUM),
    ("DEFAULT_MAX_SKIP", DEFAULT_MAX_SKIP as usize),
    ("MAX_SKIP_CAP", MAX_SKIP_CAP as usize),
    (
        "DEFAULT_MAX_STORED_SKIPPED",
        DEFAULT_MAX_STORED_SKIPPED as usize,
    ),
    ("MAX_STORED_SKIPPED_CAP", MAX_STORED_SKIPPED_CAP as usize),
    ("MAX_SKIPPED_HEADER_KEYS", MAX_SKIPPED_HEADER_KEYS),
    ("MAX_STORED_SIZE", MAX_STORED_SIZE),
    ("LOCAL_DEVICE_FIXED_LENGTH", LOCAL_DEVICE_FIXED_LENGTH),
    ("DEVICE_SIGNED_ENTRY_LENGTH", DEVICE_SIGNED_ENTRY_LENGTH),
    ("DEVICE_ONE_TIME_ENTRY_LENGTH", DEVICE_ONE_TIME_ENTRY_LENGTH),
    ("DEVICE_PQ_ENTRY_LENGTH", DEVICE_PQ_ENTRY_LENGTH),
    ("MAX_LOCAL_DEVICE_SIZE", MAX_LOCAL_DEVICE_SIZE),
    ("DECRYPTION_ERROR_LENGTH", DECRYPTION_ERROR_LENGTH),
    ("RECORD_FIXED_LENGTH", RECORD_FIXED_LENGTH),
    ("RECORD_ENTRY_OVERHEAD", RECORD_ENTRY_OVERHEAD),
    ("DEFAULT_MAX_ARCHIVED", DEFAULT_MAX_ARCHIVED as usize),
    ("MAX_ARCHIVED_CAP", MAX_ARCHIVED_CAP as usize),
    ("DEFAULT_MAX_TRIALS", DEFAULT_MAX_TRIALS as usize),
    (
        "DEFAULT_RECORD_STORED_SKIPPED",
        DEFAULT_RECORD_STORED_SKIPPED as usize,
    ),
    (
        "MAX_RECORD_STORED_SKIPPED_CAP",
        MAX_RECORD_STORED_SKIPPED_CAP as usize,
    ),
    ("MAX_RECORD_SIZE", MAX_RECORD_SIZE),
    ("DEVICE_LIST_FIXED_LENGTH", DEVICE_LIST_FIXED_LENGTH),
    ("DEVICE_LIST_ENTRY_LENGTH", DEVICE_LIST_ENTRY_LENGTH),
    ("DEVICE_LINK_LENGTH", DEVICE_LINK_LENGTH),
    ("MAX_DEVICES", MAX_DEVICES),
    ("MAX_DEVICE_LIST_LENGTH", MAX_DEVICE_LIST_LENGTH),
    ("ACCOUNT_FIXED_LENGTH", ACCOUNT_FIXED_LENGTH),
    ("MAX_ACCOUNT_SIZE", MAX_ACCOUNT_SIZE),
    ("CONTACT_FIXED_LENGTH", CONTACT_FIXED_LENGTH),
    ("MAX_CONTACT_SIZE", MAX_CONTACT_SIZE),
    ("FAN_OUT_RANDOM_LENGTH", FAN_OUT_RANDOM_LENGTH),
    ("MAX_SEAL_CONTEXT_LENGTH", MAX_SEAL_CONTEXT_LENGTH),
    ("GROUP_ID_LENGTH", GROUP_ID_LENGTH),
    ("CHAIN_ID_LENGTH", CHAIN_ID_LENGTH),
    ("GROUP_PREFIX_LENGTH", GROUP_PREFIX_LENGTH),
    ("GROUP_MESSAGE_OVERHEAD", GROUP_MESSAGE_OVERHEAD),
    ("DISTRIBUTION_LENGTH", DISTRIBUTION_LENGTH),
    ("MAX_GROUP_MEMBERS", MAX_GROUP_MEMBERS),
    ("MAX_GROUP_JUMP", MAX_GROUP_JUMP as usize),
    ("MAX_GROUP_SKIPPED", MAX_GROUP_SKIPPED),
    ("MAX_MEMBER_CHAINS", MAX_MEMBER_CHAINS),
    ("MAX_RETIRED_CHAINS", MAX_RETIRED_CHAINS),
    ("GROUP_FIXED_LENGTH", GROUP_FIXED_LENGTH),
    ("MAX_GROUP_SIZE", MAX_GROUP_SIZE),
    ("MEMBER_CHAINS_FIXED_LENGTH", MEMBER_CHAINS_FIXED_LENGTH),
    ("MEMBER_CHAIN_FIXED_LENGTH", MEMBER_CHAIN_FIXED_LENGTH),
    ("GROUP_SKIPPED_ENTRY_LENGTH", GROUP_SKIPPED_ENTRY_LENGTH),
    ("MAX_MEMBER_CHAINS_SIZE", MAX_MEMBER_CHAINS_SIZE),
    ("MAX_UPLOAD_ONE_TIME_PREKEYS", MAX_UPLOAD_ONE_TIME_PREKEYS),
    ("MAX_UPLOAD_PQ_PREKEYS", MAX_UPLOAD_PQ_PREKEYS),
    ("MAX_UPLOAD_SET_LENGTH", MAX_UPLOAD_SET_LENGTH),
    ("MAX_SIGNED_PREKEYS", MAX_SIGNED_PREKEYS),
    ("MAX_ONE_TIME_PREKEYS", MAX_ONE_TIME_PREKEYS),
    ("MAX_PQ_ONE_TIME_PREKEYS", MAX_PQ_ONE_TIME_PREKEYS),
    ("MAX_PQ_LAST_RESORT_PREKEYS", MAX_PQ_LAST_RESORT_PREKEYS),
    (
        "DEFAULT_ONE_TIME_PREKEY_CAP",
        DEFAULT_ONE_TIME_PREKEY_CAP as usize,
    ),
    (
        "MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY",
        MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY as usize,
    ),
    ("ID_DRAWS", ID_DRAWS),
    (
        "SAFETY_NUMBER_ITERATIONS",
        SAFETY_NUMBER_ITERATIONS as usize,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    const SPEC: &str = include_str!("../SPEC.md");

    /// The rows of the Markdown table that follows the line starting with `heading`, as
    /// cells.
    fn table_after(heading: &str) -> Vec<Vec<&'static str>> {
        let mut lines = SPEC.lines().skip_while(|l| !l.starts_with(heading));
        lines.next();
        lines
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect()
    }

    /// The byte a cell starts with, written `` `0xNN` ``.
    fn hex_byte(cell: &str) -> Option<u8> {
        let hex = cell.strip_prefix("`0x")?.get(..2)?;
        u8::from_str_radix(hex, 16).ok()
    }

    /// The types a §5.1 family cell lists before any parenthesis: single values
    /// `` `0xNN` `` and ranges `` `0xAA` .. `0xBB` ``.
    fn listed_types(cell: &str) -> Vec<u8> {
        let listed = cell.split(" (").next().unwrap_or(cell);
        let mut types = Vec::new();
        for item in listed.split(", ") {
            let mut ends = item.split(" .. ").map(hex_byte);
            match (ends.next().flatten(), ends.next().flatten()) {
                (Some(lo), Some(hi)) => types.extend(lo..=hi),
                (Some(one), None) => types.push(one),
                _ => panic!("unreadable family cell {cell:?}"),
            }
        }
        types
    }

    /// SPEC.md §5.5's type registry lists exactly the types in use here, plus the retired.
    #[test]
    fn type_registry_matches_spec() {
        let rows = table_after("### 5.5 ");
        let mut spec: Vec<u8> = rows.iter().filter_map(|r| hex_byte(r[0])).collect();
        assert_eq!(spec.len(), rows.len(), "every row names one type byte");
        spec.sort_unstable();
        let mut ours: Vec<u8> = TYPES.iter().map(|(t, _)| *t).collect();
        ours.extend_from_slice(RETIRED_TYPES);
        ours.sort_unstable();
        assert_eq!(spec, ours);
        for retired in RETIRED_TYPES {
            let row = rows.iter().find(|r| hex_byte(r[0]) == Some(*retired));
            assert!(row.is_some_and(|r| r[1].starts_with("retired")));
        }
    }

    /// SPEC.md §5.1's version table gives each family's constant its value here, and lists
    /// exactly the types of that family (retired ones excepted).
    #[test]
    fn version_table_matches_spec() {
        let rows = table_after("Each format family has its own version byte");
        let families = [
            ("`WIRE_VERSION`", WIRE_VERSION, Family::Wire),
            ("`BUNDLE_VERSION`", BUNDLE_VERSION, Family::Bundle),
            ("`STORAGE_VERSION`", STORAGE_VERSION, Family::Storage),
            (
                "`SAFETY_NUMBER_VERSION`",
                SAFETY_NUMBER_VERSION,
                Family::SafetyNumber,
            ),
        ];
        assert_eq!(rows.len(), families.len());
        for (name, value, family) in families {
            let row = rows.iter().find(|r| r[3] == name);
            let row = row.unwrap_or_else(|| panic!("{name} has no row"));
            assert_eq!(hex_byte(row[2]), Some(value), "{name}");
            let mut listed = listed_types(row[1]);
            listed.retain(|t| !RETIRED_TYPES.contains(t));
            let ours: Vec<u8> = TYPES
                .iter()
                .filter(|(_, f)| *f == family)
                .map(|(t, _)| *t)
                .collect();
            assert_eq!(listed, ours, "{name}");
        }
    }

    /// The text between the first pair of backticks of a cell.
    fn quoted(cell: &str) -> Option<&str> {
        cell.split('`').nth(1)
    }

    /// Each name of `ours` appears in `spec` exactly once, with the same value, and `spec`
    /// names nothing else.
    fn same_entries<V: PartialEq + core::fmt::Debug>(spec: &[(&str, V)], ours: &[(&str, V)]) {
        assert_eq!(spec.len(), ours.len(), "as many entries in SPEC.md as here");
        for (name, value) in ours {
            let rows: Vec<_> = spec.iter().filter(|(n, _)| n == name).collect();
            assert_eq!(rows.len(), 1, "{name}: one SPEC.md row");
            assert_eq!(&rows[0].1, value, "{name}");
        }
    }

    /// SPEC.md §1's table of constants lists exactly the registry's labels, byte for byte.
    #[test]
    fn label_table_matches_spec() {
        let spec: Vec<(&str, &str)> = table_after("Constants:")
            .iter()
            .map(|r| {
                let name = quoted(r[0]).unwrap_or_else(|| panic!("row {r:?}"));
                (name, quoted(r[1]).unwrap_or(""))
            })
            .collect();
        let ours: Vec<(&str, &str)> = LABELS
            .iter()
            .map(|(name, label)| (*name, core::str::from_utf8(label).unwrap_or("not ASCII")))
            .collect();
        same_entries(&spec, &ours);
    }

    /// SPEC.md §5.8's table lists exactly the registry's lengths and limits, with the same
    /// values (digits grouped with spaces there).
    #[test]
    fn length_and_limit_table_matches_spec() {
        let spec: Vec<(&str, usize)> = table_after("### 5.8 ")
            .iter()
            .map(|r| {
                let name = quoted(r[0]).unwrap_or_else(|| panic!("row {r:?}"));
                let digits: String = r[1].chars().filter(|c| *c != ' ').collect();
                let value = digits
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: {:?}", r[1]));
                (name, value)
            })
            .collect();
        same_entries(&spec, NUMBERS);
    }

    /// Every SPEC.md line that states an object's size as "(type `0xNN`), N bytes" agrees
    /// with the registry's length of that type.
    #[test]
    fn stated_object_sizes_match() {
        let by_type = [
            (TYPE_BUNDLE, BUNDLE_LENGTH),
            (TYPE_BUNDLE_PQ, PQ_BUNDLE_LENGTH),
            (TYPE_SIGNED_PREKEY_PUBLIC, SIGNED_PREKEY_PUBLIC_LENGTH),
            (TYPE_ONE_TIME_PREKEY_PUBLIC, ONE_TIME_PREKEY_PUBLIC_LENGTH),
            (TYPE_PQ_PREKEY_PUBLIC, PQ_PREKEY_PUBLIC_LENGTH),
            (TYPE_IDENTITY, IDENTITY_KEY_PAIR_LENGTH),
            (TYPE_SIGNED_PREKEY, SIGNED_PREKEY_LENGTH),
            (TYPE_ONE_TIME_PREKEY, ONE_TIME_PREKEY_LENGTH),
            (TYPE_PQ_PREKEY, PQ_PREKEY_LENGTH),
            (TYPE_DECRYPTION_ERROR, DECRYPTION_ERROR_LENGTH),
            (TYPE_DEVICE_LINK, DEVICE_LINK_LENGTH),
            (TYPE_DISTRIBUTION, DISTRIBUTION_LENGTH),
        ];
        let mut seen = Vec::new();
        for line in SPEC.lines() {
            let Some((head, tail)) = line.split_once("`), ") else {
                continue;
            };
            let Some(size) = tail.split(" bytes").next() else {
                continue;
            };
            let (Some(t), Ok(size)) = (
                head.rsplit("(type ").next().and_then(hex_byte_raw),
                size.parse::<usize>(),
            ) else {
                continue;
            };
            let known = by_type.iter().find(|(ty, _)| *ty == t);
            let (_, ours) = known.unwrap_or_else(|| panic!("no registry length for {line:?}"));
            assert_eq!(size, *ours, "{line}");
            seen.push(t);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len(),
            by_type.len(),
            "every listed size is stated in SPEC.md"
        );
    }

    /// `` `0xNN `` at the start of `s` (the closing backtick already split off).
    fn hex_byte_raw(s: &str) -> Option<u8> {
        u8::from_str_radix(s.strip_prefix("`0x")?.get(..2)?, 16).ok()
    }

    /// The size of a local device's encoding (SPEC.md §7.5) with `s` accepted signed
    /// prekeys carrying `records` replay records in all, `t` one-time and `q` post-quantum
    /// prekeys.
    fn device_size(s: usize, records: usize, t: usize, q: usize) -> usize {
        LOCAL_DEVICE_FIXED_LENGTH
            + s * DEVICE_SIGNED_ENTRY_LENGTH
            + records * STORE_REPLAY_RECORD_LENGTH
            + t * DEVICE_ONE_TIME_ENTRY_LENGTH
            + q * DEVICE_PQ_ENTRY_LENGTH
    }

    /// The size formula of SPEC.md §7.5 gives the length of real encodings.
    #[test]
    fn local_device_sizes_follow_the_formula() {
        use crate::{LocalDevice, ReplayRecord};
        use rand_chacha::rand_core::SeedableRng;
        use rand_chacha::ChaCha20Rng;

        let mut rng = ChaCha20Rng::seed_from_u64(0x2A);
        let mut device = LocalDevice::new(1_700_000_000, &mut rng).unwrap();
        assert_eq!(device.to_bytes().len(), device_size(1, 0, 0, 0));
        assert_eq!(device_size(1, 0, 0, 0), 323, "SPEC.md §7.5: a new device");
        let created = device
            .generate_one_time_prekeys(3, &mut rng)
            .unwrap()
            .created;
        device
            .rotate_signed_prekey(1_700_000_100, &mut rng)
            .unwrap();
        let current = device.current_signed_prekey().id().to_u64();
        // Two records under the current signed prekey; any valid X25519 keys will do.
        let records: Vec<ReplayRecord> = created[..2]
            .iter()
            .map(|id| {
                let key = device.one_time_prekey(*id).unwrap().public_key();
                let mut bytes = Vec::from([STORAGE_VERSION, TYPE_REPLAY_RECORD]);
                bytes.extend_from_slice(&current.to_be_bytes());
                bytes.extend_from_slice(key.as_bytes());
                ReplayRecord::from_bytes(&bytes).unwrap()
            })
            .collect();
        device.apply_replay_records(&records).unwrap();
        #[cfg(feature = "pqxdh")]
        let q = {
            device.generate_pq_one_time_prekeys(2, &mut rng).unwrap();
            device
                .rotate_pq_last_resort_prekey(1_700_000_200, &mut rng)
                .unwrap();
            3
        };
        #[cfg(not(feature = "pqxdh"))]
        let q = 0;
        let bytes = device.to_bytes();
        assert_eq!(bytes.len(), device_size(2, 2, 3, q));
        let reloaded = LocalDevice::from_bytes(&bytes).unwrap();
        assert_eq!(*reloaded.to_bytes(), *bytes);
    }

    /// Appends `v` as a big-endian u32.
    #[cfg(feature = "pqxdh")]
    fn put32(out: &mut Vec<u8>, v: usize) {
        out.extend_from_slice(&u32::try_from(v).unwrap().to_be_bytes());
    }
    /// Appends `v` as a big-endian u64.
    #[cfg(feature = "pqxdh")]
    fn put64(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// A device at every bound its loader accepts, laid out field by field as the table of
    /// SPEC.md §7.5 says: it loads, is `MAX_LOCAL_DEVICE_SIZE` bytes, and encodes back to the
    /// same bytes; one more of anything is refused.
    #[cfg(feature = "pqxdh")]
    #[test]
    fn largest_local_device_is_max_local_device_size() {
        use crate::{Error, LocalDevice};

        let records = MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY as usize;
        let t = MAX_ONE_TIME_PREKEYS;
        let q = MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS;
        let mut b = Vec::with_capacity(MAX_LOCAL_DEVICE_SIZE);
        b.extend_from_slice(&[STORAGE_VERSION, TYPE_LOCAL_DEVICE]);
        b.extend_from_slice(&[STORAGE_VERSION, TYPE_IDENTITY]);
        b.extend_from_slice(&[7; 32]);
        put32(&mut b, records); // replay capacity
        put32(&mut b, 200); // the one-time cap bounds generation only, not t
        put64(&mut b, (t + q) as u64); // next sequence number
        put64(&mut b, 1); // current signed prekey id
        assert_eq!(b.len(), 60);
        put32(&mut b, MAX_SIGNED_PREKEYS);
        for i in 0..MAX_SIGNED_PREKEYS {
            assert_eq!(
                b.len(),
                64 + i * (DEVICE_SIGNED_ENTRY_LENGTH + 32 * records)
            );
            b.extend_from_slice(&[STORAGE_VERSION, TYPE_SIGNED_PREKEY]);
            put64(&mut b, i as u64 + 1);
            b.extend_from_slice(&[i as u8 + 1; 32]);
            b.extend_from_slice(&[0; 64]);
            put64(&mut b, 1_000 + i as u64); // created
            match i {
                0 => b.extend_from_slice(&[0; 9]), // the current one: not replaced
                _ => {
                    b.push(1);
                    put64(&mut b, 2_000 + i as u64);
                }
            }
            put32(&mut b, records);
            for j in 0..records {
                let mut key = [0u8; 32];
                key[..2].copy_from_slice(&u16::try_from(j).unwrap().to_be_bytes());
                key[2] = 1;
                b.extend_from_slice(&key);
            }
        }
        let a = b.len();
        assert_eq!(
            a,
            64 + 127 * MAX_SIGNED_PREKEYS + 32 * MAX_SIGNED_PREKEYS * records
        );
        b.extend_from_slice(&[0; 1 + SIGNED_PREKEY_LENGTH + 8]); // no standby
        put32(&mut b, t);
        for i in 0..t {
            assert_eq!(b.len(), a + 119 + 51 * i);
            put64(&mut b, i as u64); // sequence
            b.push(u8::from(i % 2 == 0)); // published
            b.extend_from_slice(&[STORAGE_VERSION, TYPE_ONE_TIME_PREKEY]);
            put64(&mut b, i as u64 + 1);
            let mut secret = [9u8; 32];
            secret[..2].copy_from_slice(&u16::try_from(i).unwrap().to_be_bytes());
            b.extend_from_slice(&secret);
        }
        let b0 = b.len();
        assert_eq!(b0, a + 119 + 51 * t);
        let last_resort = q as u64; // the last id: the current last-resort key
        b.push(1);
        put64(&mut b, last_resort);
        put32(&mut b, q);
        for k in 0..q {
            assert_eq!(b.len(), b0 + 13 + 165 * k);
            let one_time = k < MAX_PQ_ONE_TIME_PREKEYS;
            put64(&mut b, (t + k) as u64);
            b.push(0);
            b.extend_from_slice(&[STORAGE_VERSION, TYPE_PQ_PREKEY]);
            put64(&mut b, k as u64 + 1);
            b.push(if one_time { 0x01 } else { 0x02 });
            let mut seed = [5u8; 64];
            seed[..2].copy_from_slice(&u16::try_from(k).unwrap().to_be_bytes());
            b.extend_from_slice(&seed);
            b.extend_from_slice(&[0; 64]);
            match (one_time, k as u64 + 1 == last_resort) {
                (true, _) => b.extend_from_slice(&[0; 8 + 9]),
                (false, true) => {
                    put64(&mut b, 3_000);
                    b.extend_from_slice(&[0; 9]);
                }
                (false, false) => {
                    put64(&mut b, 3_000 + k as u64);
                    b.push(1);
                    put64(&mut b, 4_000 + k as u64);
                }
            }
        }
        assert_eq!(b.len(), MAX_LOCAL_DEVICE_SIZE);
        assert_eq!(
            b.len(),
            device_size(MAX_SIGNED_PREKEYS, MAX_SIGNED_PREKEYS * records, t, q)
        );
        let device = LocalDevice::from_bytes(&b).unwrap();
        assert_eq!(*device.to_bytes(), b[..]);

        // One more of anything: each count is checked before what it counts is read.
        let signed_records = 64 + 123;
        for (offset, count) in [
            (60, MAX_SIGNED_PREKEYS + 1),
            (signed_records, records + 1),
            (a + 115, t + 1),
            (b0 + 9, q + 1),
        ] {
            let mut more = b.clone();
            more[offset..offset + 4].copy_from_slice(&u32::try_from(count).unwrap().to_be_bytes());
            assert_eq!(
                LocalDevice::from_bytes(&more).err(),
                Some(Error::InvalidEncoding),
                "count at {offset}"
            );
        }
    }
}
