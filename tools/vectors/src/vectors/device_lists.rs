//! `device_list_v2.json`: signed device lists (SPEC.md §9.4, type `0x16`) of 0, 1, 3 and 16
//! (`MAX_DEVICES`) devices, and one at a full-width counter, each built here from fixed
//! account-key and identity seeds with this module's own byte layout of the SPEC.md table
//! and `ed25519-dalek` signing from the seed (never through the library's encoder), then
//! required to be exactly what the library's `Account` signs from the same seeds
//! (`Account::new` fed an RNG whose only bytes are the account seed, then `add_device` /
//! `remove_device` in order), to parse with `DeviceList::from_bytes` and to re-encode with
//! `to_bytes` byte for byte. The rejection cases (one fault each, in the parse order of
//! §9.4) are run through this module's own parser of §9.4 (`model_parse`: §2.1 validation
//! with `curve25519-dalek`, strict verification with `ed25519-dalek`) and through the
//! library, and both must give the listed error before the file is written.

use std::collections::HashMap;

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use doubleratchet::rand_core::TryRng;
use doubleratchet::{Account, DeviceId, DeviceList, Error, IdentityKey};
use doubleratchet_test_support::ListedRng;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use super::{
    assert_same, ed25519_sign, hex, provenance, replace_at, to_json, unhex, xor_at, Provenance,
    DATE, GROUP_ORDER_L,
};

const FILE: &str = "device_list_v2.json";
/// `DEVICE_LIST_LABEL` (SPEC.md §1, §9.4).
const LABEL: &[u8] = b"doubleratchet v2 device list";
/// `DECRYPTION_ERROR_LABEL` (SPEC.md §6.8): a label the list must not verify under.
const OTHER_LABEL: &[u8] = b"doubleratchet v2 decryption error";
/// `BUNDLE_VERSION` (SPEC.md §5.1): device lists are of the bundle family.
const VERSION: u8 = 0x02;
const TYPE: u8 = 0x16;
/// The stored account (SPEC.md §7.9): storage version and type.
const STORAGE_VERSION: u8 = 0x02;
const TYPE_ACCOUNT: u8 = 0x2C;
const MAX_DEVICES: usize = 16;
/// SPEC.md §9.4: version, type, account key, counter, `n`, signature.
const FIXED_LENGTH: usize = 2 + 32 + 8 + 1 + 64;
const ENTRY_LENGTH: usize = 4 + 32;
const MAX_LENGTH: usize = FIXED_LENGTH + ENTRY_LENGTH * MAX_DEVICES;
/// Offsets of SPEC.md §9.4.
const ACCOUNT_AT: usize = 2;
const COUNTER_AT: usize = 34;
const COUNT_AT: usize = 42;
const DEVICES_AT: usize = 43;
/// Seed of the ChaCha20 stream the account and identity seeds are drawn from.
const SEEDS: u64 = 0x0916;

#[derive(Serialize)]
struct ListFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    constants: Constants,
    lists: Vec<ListJson>,
    rejects: Vec<RejectJson>,
}

#[derive(Serialize)]
struct Constants {
    device_list_label: &'static str,
    bundle_version: String,
    device_list_type: String,
    max_devices: usize,
    device_list_fixed_length: usize,
    device_list_entry_length: usize,
    max_device_list_length: usize,
}

#[derive(Serialize)]
struct ListJson {
    name: &'static str,
    description: &'static str,
    account_seed: String,
    account_key: String,
    counter: u64,
    devices: Vec<DeviceJson>,
    signed_part: String,
    signed_message: String,
    signature: String,
    bytes: String,
    library_steps: Vec<StepJson>,
}

#[derive(Serialize)]
struct DeviceJson {
    id: u32,
    identity_seed: String,
    identity_key: String,
}

#[derive(Serialize)]
struct StepJson {
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_account: Option<String>,
}

#[derive(Serialize)]
struct RejectJson {
    name: &'static str,
    description: String,
    from: &'static str,
    input: String,
    expected_error: String,
}

/// How a list is reached through the library's `Account`.
enum Start {
    /// `Account::new` with this device (counter 1).
    New(u32),
    /// `Account::from_bytes` of a stored account (SPEC.md §7.9) built here, whose list has
    /// this counter and these devices.
    Stored(u64, Vec<u32>),
}

enum Op {
    Add(u32),
    Remove(u32),
}

struct ListSpec {
    name: &'static str,
    description: &'static str,
    start: Start,
    ops: Vec<Op>,
}

/// A list as this module builds it (SPEC.md §9.4), with its seeds.
struct Built {
    account_seed: [u8; 32],
    counter: u64,
    /// `(id, identity seed)`, by ascending id.
    devices: Vec<(u32, [u8; 32])>,
    signed_part: Vec<u8>,
    bytes: Vec<u8>,
}

fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// Bytes `0 .. 43 + 36·n` of SPEC.md §9.4: everything the signature covers after the label.
fn signed_part(account: &[u8; 32], counter: u64, devices: &[(u32, [u8; 32])]) -> Vec<u8> {
    let mut out = vec![VERSION, TYPE];
    out.extend_from_slice(account);
    out.extend_from_slice(&counter.to_be_bytes());
    out.push(u8::try_from(devices.len()).unwrap());
    for (id, key) in devices {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(key);
    }
    assert_eq!(out.len(), DEVICES_AT + ENTRY_LENGTH * devices.len());
    out
}

/// `signed || Ed25519-Sign(seed, label || signed)`.
fn signed_with(seed: &[u8; 32], label: &[u8], signed: &[u8]) -> Vec<u8> {
    let signature = ed25519_sign(seed, &[label, signed].concat());
    [signed, &signature[..]].concat()
}

/// A list re-signed by `seed` under the right label after its signed part was changed:
/// only the change can make it fail.
fn resigned(seed: &[u8; 32], list: &[u8]) -> Vec<u8> {
    signed_with(seed, LABEL, &list[..list.len() - 64])
}

fn build(account_seed: [u8; 32], counter: u64, mut devices: Vec<(u32, [u8; 32])>) -> Built {
    devices.sort_by_key(|(id, _)| *id);
    let keys: Vec<(u32, [u8; 32])> = devices
        .iter()
        .map(|(id, seed)| (*id, public_key(seed)))
        .collect();
    let signed = signed_part(&public_key(&account_seed), counter, &keys);
    let bytes = signed_with(&account_seed, LABEL, &signed);
    assert_eq!(bytes.len(), FIXED_LENGTH + ENTRY_LENGTH * devices.len());
    Built {
        account_seed,
        counter,
        devices,
        signed_part: signed,
        bytes,
    }
}

/// The stored account of SPEC.md §7.9: `02 2C || seed || u32(len) || list`.
fn stored_account(list: &Built) -> Vec<u8> {
    let mut out = vec![STORAGE_VERSION, TYPE_ACCOUNT];
    out.extend_from_slice(&list.account_seed);
    out.extend_from_slice(&u32::try_from(list.bytes.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&list.bytes);
    out
}

/// SPEC.md §2.1: decompresses, is the canonical encoding of its point, not of small order.
fn identity_key_valid(bytes: &[u8]) -> bool {
    let bytes: [u8; 32] = bytes.try_into().unwrap();
    match CompressedEdwardsY(bytes).decompress() {
        Some(point) => point.compress().to_bytes() == bytes && !point.is_small_order(),
        None => false,
    }
}

/// `DeviceList::from_bytes` as SPEC.md §9.4 orders its checks, written from the SPEC text:
/// the error's `Debug` form, or `Ok` for a list that parses and verifies.
fn model_parse(input: &[u8]) -> Result<(), String> {
    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.bytes.len() - self.at < n {
                return Err("Truncated".into());
            }
            self.at += n;
            Ok(&self.bytes[self.at - n..self.at])
        }
    }
    if input.len() > MAX_LENGTH {
        return Err("TooLarge".into());
    }
    let mut r = Cursor {
        bytes: input,
        at: 0,
    };
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(format!("UnsupportedVersion({version})"));
    }
    let kind = r.take(1)?[0];
    if kind != TYPE {
        return Err(format!("UnexpectedType({kind})"));
    }
    let account = r.take(32)?;
    if !identity_key_valid(account) {
        return Err("InvalidPublicKey".into());
    }
    let counter = u64::from_be_bytes(r.take(8)?.try_into().unwrap());
    if counter == 0 {
        return Err("InvalidEncoding".into());
    }
    let n = r.take(1)?[0];
    if usize::from(n) > MAX_DEVICES {
        return Err("InvalidEncoding".into());
    }
    let mut seen: Vec<(u32, &[u8])> = Vec::new();
    for _ in 0..n {
        let id = u32::from_be_bytes(r.take(4)?.try_into().unwrap());
        let key = r.take(32)?;
        if !identity_key_valid(key) {
            return Err("InvalidPublicKey".into());
        }
        if seen.last().is_some_and(|(previous, _)| id <= *previous)
            || key == account
            || seen.iter().any(|(_, k)| *k == key)
        {
            return Err("InvalidEncoding".into());
        }
        seen.push((id, key));
    }
    let signature = r.take(64)?;
    if r.at != input.len() {
        return Err("TrailingData".into());
    }
    let key = VerifyingKey::from_bytes(account.try_into().unwrap()).unwrap();
    let message = [LABEL, &input[..r.at - 64]].concat();
    key.verify_strict(
        &message,
        &Signature::from_bytes(signature.try_into().unwrap()),
    )
    .map_err(|_| "InvalidSignature".to_string())
}

fn identity(key: &[u8; 32]) -> IdentityKey {
    IdentityKey::from_bytes(key).unwrap()
}

/// The full-width ids of the sixteen-device list: ascending, every byte position used.
fn sixteen_ids() -> Vec<u32> {
    (1..=16u32).map(|k| k * 0x0F0E_0D0C).collect()
}

fn specs() -> Vec<ListSpec> {
    let ids = sixteen_ids();
    // Added in an order that is not the list's, so that the library must sort.
    let order = [7usize, 0, 15, 3, 12, 1, 9, 14, 2, 6, 11, 4, 13, 8, 5, 10];
    vec![
        ListSpec {
            name: "no_devices",
            description: "an account whose only device was removed: n = 0 (counter 2: \
                          Account::new signs counter 1, remove_device counter 2)",
            start: Start::New(0x00C0_FFEE),
            ops: vec![Op::Remove(0x00C0_FFEE)],
        },
        ListSpec {
            name: "one_device",
            description: "a new account's first list: one device, counter 1 (Account::new)",
            start: Start::New(0x7F00_0001),
            ops: vec![],
        },
        ListSpec {
            name: "three_devices",
            description: "three devices with the extreme ids 0, 0x80000000 and 0xffffffff, \
                          added in the order 0x80000000, 0xffffffff, 0 and listed by \
                          ascending id; counter 3 (each add_device signs the next counter)",
            start: Start::New(0x8000_0000),
            ops: vec![Op::Add(0xFFFF_FFFF), Op::Add(0x0000_0000)],
        },
        ListSpec {
            name: "sixteen_devices",
            description: "MAX_DEVICES = 16 devices (683 bytes, MAX_DEVICE_LIST_LENGTH), \
                          added in a scrambled order; counter 16",
            start: Start::New(ids[order[0]]),
            ops: order[1..].iter().map(|&i| Op::Add(ids[i])).collect(),
        },
        ListSpec {
            name: "full_width_counter",
            description: "a stored account (SPEC.md 7.9, built independently) whose list has \
                          counter 0x0123456789abcdee and devices 0x01020304, 0x05060708, \
                          loaded with Account::from_bytes; then add_device(0x0a0b0c0d) and \
                          remove_device(0x01020304): counter 0x0123456789abcdf0",
            start: Start::Stored(0x0123_4567_89AB_CDEE, vec![0x0102_0304, 0x0506_0708]),
            ops: vec![Op::Add(0x0A0B_0C0D), Op::Remove(0x0102_0304)],
        },
    ]
}

/// The 32 bytes of the next seed from the stream.
fn draw(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rng.try_fill_bytes(&mut seed).unwrap();
    seed
}

/// Builds one list independently, replays it through the library and compares.
fn make_list(spec: &ListSpec, rng: &mut ChaCha20Rng) -> (ListJson, Built) {
    let account_seed = draw(rng);
    // Every device id of the list gets its identity seed when the list first names it.
    let mut seeds: HashMap<u32, [u8; 32]> = HashMap::new();
    let mut named = |id: u32, rng: &mut ChaCha20Rng| *seeds.entry(id).or_insert_with(|| draw(rng));

    // The model: counter and devices after each step (SPEC.md §9.3: a new list has a higher
    // counter; the library's is one higher, and Account::new's is 1).
    let (mut counter, mut devices, stored) = match &spec.start {
        Start::New(id) => (1u64, vec![(*id, named(*id, rng))], None),
        Start::Stored(counter, ids) => {
            let devices: Vec<(u32, [u8; 32])> =
                ids.iter().map(|id| (*id, named(*id, rng))).collect();
            let stored = stored_account(&build(account_seed, *counter, devices.clone()));
            (*counter, devices, Some(stored))
        }
    };
    let mut steps = vec![match &spec.start {
        Start::New(id) => StepJson {
            op: "Account::new",
            device_id: Some(*id),
            identity_key: Some(hex(&public_key(&named(*id, rng)))),
            stored_account: None,
        },
        Start::Stored(..) => StepJson {
            op: "Account::from_bytes",
            device_id: None,
            identity_key: None,
            stored_account: stored.as_deref().map(hex),
        },
    }];
    for op in &spec.ops {
        counter += 1;
        steps.push(match op {
            Op::Add(id) => {
                let seed = named(*id, rng);
                devices.push((*id, seed));
                StepJson {
                    op: "Account::add_device",
                    device_id: Some(*id),
                    identity_key: Some(hex(&public_key(&seed))),
                    stored_account: None,
                }
            }
            Op::Remove(id) => {
                devices.retain(|(d, _)| d != id);
                StepJson {
                    op: "Account::remove_device",
                    device_id: Some(*id),
                    identity_key: None,
                    stored_account: None,
                }
            }
        });
    }
    let key_of = |id: &u32| identity(&public_key(&seeds[id]));
    let built = build(account_seed, counter, devices);

    // The library, driven through its public API from the same seeds.
    let mut account = match (&spec.start, &stored) {
        (Start::New(id), _) => {
            let mut rng = ListedRng::new(&account_seed);
            let account = Account::new(DeviceId::new(*id), &key_of(id), &mut rng).unwrap();
            assert_eq!(
                rng.calls,
                [32],
                "{FILE}: {}: Account::new draws the 32-byte seed in one call (SPEC.md 2.5)",
                spec.name
            );
            account
        }
        (Start::Stored(..), Some(stored)) => {
            let account = Account::from_bytes(stored).unwrap();
            assert_same(
                &format!("{FILE}: {}: stored account re-encoded", spec.name),
                stored,
                &account.to_bytes(),
            );
            account
        }
        _ => unreachable!(),
    };
    assert_eq!(
        account.account_key().as_bytes(),
        &public_key(&account_seed),
        "{FILE}: {}: account key",
        spec.name
    );
    for op in &spec.ops {
        match op {
            Op::Add(id) => {
                account.add_device(DeviceId::new(*id), &key_of(id)).unwrap();
            }
            Op::Remove(id) => {
                account.remove_device(DeviceId::new(*id)).unwrap();
            }
        }
    }
    let library = account.device_list().to_bytes();
    assert_same(
        &format!(
            "{FILE}: {}: the list the library's Account signed",
            spec.name
        ),
        &built.bytes,
        &library,
    );
    let parsed = DeviceList::from_bytes(&built.bytes).unwrap();
    assert_same(
        &format!("{FILE}: {}: DeviceList::to_bytes", spec.name),
        &built.bytes,
        &parsed.to_bytes(),
    );
    assert_eq!(parsed.counter(), built.counter);
    assert_eq!(parsed.account_key().as_bytes(), &public_key(&account_seed));
    let listed: Vec<(u32, [u8; 32])> = parsed
        .devices()
        .map(|(id, key)| (id.get(), *key.as_bytes()))
        .collect();
    let expected: Vec<(u32, [u8; 32])> = built
        .devices
        .iter()
        .map(|(id, seed)| (*id, public_key(seed)))
        .collect();
    assert_eq!(listed, expected, "{FILE}: {}: devices", spec.name);
    assert_eq!(model_parse(&built.bytes), Ok(()));

    let json = ListJson {
        name: spec.name,
        description: spec.description,
        account_seed: hex(&account_seed),
        account_key: hex(&public_key(&account_seed)),
        counter: built.counter,
        devices: built
            .devices
            .iter()
            .map(|(id, seed)| DeviceJson {
                id: *id,
                identity_seed: hex(seed),
                identity_key: hex(&public_key(seed)),
            })
            .collect(),
        signed_part: hex(&built.signed_part),
        signed_message: hex(&[LABEL, &built.signed_part[..]].concat()),
        signature: hex(&built.bytes[built.signed_part.len()..]),
        bytes: hex(&built.bytes),
        library_steps: steps,
    };
    (json, built)
}

/// `S + L` for the signature's `S` (bytes 32..64, little-endian): the same scalar modulo
/// `L`, not reduced.
fn s_plus_l(signature: &[u8]) -> [u8; 32] {
    let s: [u8; 32] = signature[32..64].try_into().unwrap();
    let l: [u8; 32] = unhex(GROUP_ORDER_L);
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(l[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    assert_eq!(
        Scalar::from_bytes_mod_order(out),
        Scalar::from_bytes_mod_order(s)
    );
    out
}

/// A non-canonical encoding of a point that is not of small order: `y + p` for the
/// smallest `y` (2 ..= 18, so that `y + p < 2^255`) giving such a point.
fn non_canonical_key() -> [u8; 32] {
    for y in 2u8..=18 {
        let mut bytes = [0xFFu8; 32];
        bytes[0] = 0xED + y;
        bytes[31] = 0x7F;
        if let Some(point) = CompressedEdwardsY(bytes).decompress() {
            if !point.is_small_order() {
                assert_ne!(point.compress().to_bytes(), bytes);
                return bytes;
            }
        }
    }
    panic!("no non-canonical key found")
}

/// The smallest `y` whose 32-byte encoding is no curve point.
fn off_curve_key() -> [u8; 32] {
    for y in 2u8..=255 {
        let mut bytes = [0u8; 32];
        bytes[0] = y;
        if CompressedEdwardsY(bytes).decompress().is_none() {
            return bytes;
        }
    }
    panic!("no off-curve key found")
}

fn rejects(lists: &[Built]) -> Vec<RejectJson> {
    let by = |name: usize| &lists[name];
    let (none, one, three, sixteen, _) = (by(0), by(1), by(2), by(3), by(4));
    let (one_b, three_b, sixteen_b) = (&one.bytes, &three.bytes, &sixteen.bytes);
    let entry = |i: usize| DEVICES_AT + ENTRY_LENGTH * i;
    let small_order = {
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        identity_point
    };
    let other_seed = {
        let mut rng = ChaCha20Rng::seed_from_u64(SEEDS + 1);
        draw(&mut rng)
    };
    let one_signed = &one_b[..one_b.len() - 64];
    let three_sig = &three_b[three_b.len() - 64..];
    let mut cases: Vec<(&'static str, String, &'static str, Vec<u8>, &'static str)> = vec![
        (
            "too_large",
            format!("sixteen_devices with one byte appended: {} bytes, above MAX_DEVICE_LIST_LENGTH ({MAX_LENGTH})", MAX_LENGTH + 1),
            "sixteen_devices",
            [&sixteen_b[..], &[0]].concat(),
            "TooLarge",
        ),
        (
            "too_large_before_version",
            "the same 684 bytes with the version byte 0x01: the length is checked first".into(),
            "sixteen_devices",
            xor_at(&[&sixteen_b[..], &[0]].concat(), 0, 0x03),
            "TooLarge",
        ),
        ("empty", "no byte at all".into(), "one_device", Vec::new(), "Truncated"),
        (
            "version_v1",
            "version byte 0x01 (profile v1)".into(),
            "one_device",
            replace_at(one_b, 0, &[0x01]),
            "UnsupportedVersion(1)",
        ),
        (
            "version_only",
            "the version byte alone".into(),
            "one_device",
            one_b[..1].to_vec(),
            "Truncated",
        ),
        (
            "type_bundle",
            "type byte 0x10 (a prekey bundle)".into(),
            "one_device",
            replace_at(one_b, 1, &[0x10]),
            "UnexpectedType(16)",
        ),
        (
            "type_stored_account",
            "type byte 0x2c (the stored account's type, at the bundle version)".into(),
            "one_device",
            replace_at(one_b, 1, &[TYPE_ACCOUNT]),
            "UnexpectedType(44)",
        ),
        (
            "account_key_small_order",
            "the account key replaced by the neutral point (y = 1, order 1), re-signed by the \
             account's seed"
                .into(),
            "one_device",
            resigned(&one.account_seed, &replace_at(one_b, ACCOUNT_AT, &small_order)),
            "InvalidPublicKey",
        ),
        (
            "account_key_not_canonical",
            "the account key replaced by a non-canonical encoding (y + p) of a point of large \
             order"
                .into(),
            "one_device",
            replace_at(one_b, ACCOUNT_AT, &non_canonical_key()),
            "InvalidPublicKey",
        ),
        (
            "account_key_off_curve",
            "the account key replaced by a y-coordinate that is no curve point".into(),
            "one_device",
            replace_at(one_b, ACCOUNT_AT, &off_curve_key()),
            "InvalidPublicKey",
        ),
        (
            "account_key_truncated",
            "the list cut inside the account key (20 bytes)".into(),
            "one_device",
            one_b[..20].to_vec(),
            "Truncated",
        ),
        (
            "counter_zero",
            "counter 0, re-signed by the account's seed (only the counter is wrong)".into(),
            "one_device",
            resigned(&one.account_seed, &replace_at(one_b, COUNTER_AT, &[0; 8])),
            "InvalidEncoding",
        ),
        (
            "counter_zero_then_truncated",
            "counter 0 and the input cut right after it: the counter is checked as it is read"
                .into(),
            "one_device",
            replace_at(one_b, COUNTER_AT, &[0; 8])[..COUNT_AT].to_vec(),
            "InvalidEncoding",
        ),
        (
            "count_17",
            format!(
                "sixteen_devices with n = 17 (byte {COUNT_AT}): 683 bytes, not TooLarge; n is checked \
                 as it is read, before any device"
            ),
            "sixteen_devices",
            replace_at(sixteen_b, COUNT_AT, &[17]),
            "InvalidEncoding",
        ),
        (
            "count_255",
            "no_devices with n = 255".into(),
            "no_devices",
            replace_at(&none.bytes, COUNT_AT, &[255]),
            "InvalidEncoding",
        ),
        (
            "count_missing",
            "the list cut after the counter (42 bytes)".into(),
            "one_device",
            one_b[..COUNT_AT].to_vec(),
            "Truncated",
        ),
        (
            "ids_descending",
            "three_devices with its first two devices swapped (ids 0x80000000 then 0), \
             re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &[
                    &three_b[..entry(0)],
                    &three_b[entry(1)..entry(2)],
                    &three_b[entry(0)..entry(1)],
                    &three_b[entry(2)..],
                ]
                .concat(),
            ),
            "InvalidEncoding",
        ),
        (
            "ids_equal",
            "three_devices with the second device's id set to the first's (0), re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(three_b, entry(1), &three_b[entry(0)..entry(0) + 4]),
            ),
            "InvalidEncoding",
        ),
        (
            "ids_descending_then_truncated",
            "ids_descending cut inside its signature: the order is checked before the \
             signature is read"
                .into(),
            "three_devices",
            {
                let swapped = [
                    &three_b[..entry(0)],
                    &three_b[entry(1)..entry(2)],
                    &three_b[entry(0)..entry(1)],
                    &three_b[entry(2)..],
                ]
                .concat();
                swapped[..swapped.len() - 10].to_vec()
            },
            "InvalidEncoding",
        ),
        (
            "duplicate_identity_key",
            "three_devices with the third device's identity key set to the first's, re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(three_b, entry(2) + 4, &three_b[entry(0) + 4..entry(1)]),
            ),
            "InvalidEncoding",
        ),
        (
            "identity_key_is_account_key",
            "three_devices with the second device's identity key set to the account key, \
             re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(three_b, entry(1) + 4, &three_b[ACCOUNT_AT..COUNTER_AT]),
            ),
            "InvalidEncoding",
        ),
        (
            "identity_key_small_order",
            "three_devices with the second device's identity key replaced by the neutral \
             point, re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(three_b, entry(1) + 4, &small_order),
            ),
            "InvalidPublicKey",
        ),
        (
            "identity_key_small_order_and_id_descending",
            "the second device has id 0 (not above the first's, 0) and a small-order key: the \
             key is validated as it is read, before the order is checked"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(
                    &replace_at(three_b, entry(1) + 4, &small_order),
                    entry(1),
                    &[0; 4],
                ),
            ),
            "InvalidPublicKey",
        ),
        (
            "truncated_in_devices",
            "three_devices cut after two devices".into(),
            "three_devices",
            three_b[..entry(2)].to_vec(),
            "Truncated",
        ),
        (
            "truncated_in_identity_key",
            "three_devices cut inside the third device's identity key".into(),
            "three_devices",
            three_b[..entry(2) + 20].to_vec(),
            "Truncated",
        ),
        (
            "signature_missing",
            "one_device without its signature".into(),
            "one_device",
            one_signed.to_vec(),
            "Truncated",
        ),
        (
            "signature_truncated",
            "one_device without the signature's last byte".into(),
            "one_device",
            one_b[..one_b.len() - 1].to_vec(),
            "Truncated",
        ),
        (
            "trailing_byte",
            "one_device with one byte appended".into(),
            "one_device",
            [&one_b[..], &[0]].concat(),
            "TrailingData",
        ),
        (
            "trailing_byte_bad_signature",
            "one_device with a signature bit flipped and one byte appended: trailing data is \
             found before the signature is verified"
                .into(),
            "one_device",
            [&xor_at(one_b, one_b.len() - 1, 0x01)[..], &[0]].concat(),
            "TrailingData",
        ),
        (
            "n_one_less",
            "three_devices with n = 2: its third device is read as the signature and the rest \
             is trailing data"
                .into(),
            "three_devices",
            replace_at(three_b, COUNT_AT, &[2]),
            "TrailingData",
        ),
        (
            "counter_changed",
            "one_device with the counter's last byte changed (counter 3), original signature"
                .into(),
            "one_device",
            xor_at(one_b, COUNT_AT - 1, 0x02),
            "InvalidSignature",
        ),
        (
            "device_id_changed",
            "three_devices with the last device's id lowered to 0xfffffffe (still ascending), \
             original signature"
                .into(),
            "three_devices",
            xor_at(three_b, entry(2) + 3, 0x01),
            "InvalidSignature",
        ),
        (
            "identity_key_swapped",
            "one_device with its identity key replaced by another valid key (the account key of \
             three_devices), original signature"
                .into(),
            "one_device",
            replace_at(one_b, DEVICES_AT + 4, &three_b[ACCOUNT_AT..COUNTER_AT]),
            "InvalidSignature",
        ),
        (
            "signature_r_flipped",
            "one_device with a bit of the signature's R flipped".into(),
            "one_device",
            xor_at(one_b, one_signed.len(), 0x01),
            "InvalidSignature",
        ),
        (
            "signature_s_not_reduced",
            "three_devices with the signature's S replaced by S + L (equal modulo L, not \
             reduced): strict verification refuses it"
                .into(),
            "three_devices",
            replace_at(three_b, three_b.len() - 32, &s_plus_l(three_sig)),
            "InvalidSignature",
        ),
        (
            "signed_without_label",
            "one_device signed by its account seed over bytes 0..79 alone, without \
             DEVICE_LIST_LABEL"
                .into(),
            "one_device",
            signed_with(&one.account_seed, b"", one_signed),
            "InvalidSignature",
        ),
        (
            "signed_under_decryption_error_label",
            "one_device signed by its account seed over DECRYPTION_ERROR_LABEL \
             (\"doubleratchet v2 decryption error\") || bytes 0..79"
                .into(),
            "one_device",
            signed_with(&one.account_seed, OTHER_LABEL, one_signed),
            "InvalidSignature",
        ),
        (
            "signed_under_v1_label",
            "one_device signed by its account seed over \"doubleratchet v1 device list\" || \
             bytes 0..79"
                .into(),
            "one_device",
            signed_with(&one.account_seed, b"doubleratchet v1 device list", one_signed),
            "InvalidSignature",
        ),
        (
            "signed_by_another_key",
            "one_device signed over the right message by another seed (not the listed \
             account key's)"
                .into(),
            "one_device",
            signed_with(&other_seed, LABEL, one_signed),
            "InvalidSignature",
        ),
        (
            "account_key_of_signer_elsewhere",
            "sixteen_devices with the account key replaced by one_device's account key (a \
             valid key), original signature"
                .into(),
            "sixteen_devices",
            replace_at(sixteen_b, ACCOUNT_AT, &one_b[ACCOUNT_AT..COUNTER_AT]),
            "InvalidSignature",
        ),
    ];
    // The 16-device list with its first byte changed is still 683 bytes: not TooLarge.
    cases.push((
        "largest_list_version_v1",
        "sixteen_devices (683 bytes, the longest list) with version byte 0x01".into(),
        "sixteen_devices",
        replace_at(sixteen_b, 0, &[0x01]),
        "UnsupportedVersion(1)",
    ));
    let mut out = Vec::new();
    for (name, description, from, input, expected) in cases {
        let model = model_parse(&input).err();
        let library = DeviceList::from_bytes(&input)
            .err()
            .map(|e: Error| format!("{e:?}"));
        assert_eq!(
            model.as_deref(),
            Some(expected),
            "{FILE}: {name}: the model of SPEC.md 9.4 gives {model:?}"
        );
        assert_eq!(
            library.as_deref(),
            Some(expected),
            "{FILE}: {name}: DeviceList::from_bytes gives {library:?}"
        );
        out.push(RejectJson {
            name,
            description,
            from,
            input: hex(&input),
            expected_error: expected.into(),
        });
    }
    let mut names: Vec<&str> = out.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), out.len(), "{FILE}: reject names are unique");
    out
}

pub(super) fn generate() -> (String, String) {
    let mut rng = ChaCha20Rng::seed_from_u64(SEEDS);
    let specs = specs();
    let mut lists = Vec::new();
    let mut built = Vec::new();
    for spec in &specs {
        let (json, b) = make_list(spec, &mut rng);
        lists.push(json);
        built.push(b);
    }
    assert_eq!(
        built.iter().map(|b| b.devices.len()).collect::<Vec<_>>(),
        [0, 1, 3, MAX_DEVICES, 2]
    );
    assert_eq!(built[3].bytes.len(), MAX_LENGTH);
    // The library's limits around the lists (not in the file): a 17th device is
    // TooManyDevices, a listed id or key DuplicateDevice, an unlisted removal UnknownDevice.
    {
        let sixteen = &built[3];
        let stored = stored_account(sixteen);
        let mut account = Account::from_bytes(&stored).unwrap();
        let fresh = public_key(&[0x17; 32]);
        assert_eq!(
            account
                .add_device(DeviceId::new(1), &identity(&fresh))
                .err(),
            Some(Error::TooManyDevices)
        );
        let three = &built[2];
        let mut account = Account::from_bytes(&stored_account(three)).unwrap();
        let listed = public_key(&three.devices[0].1);
        assert_eq!(
            account
                .add_device(DeviceId::new(1), &identity(&listed))
                .err(),
            Some(Error::DuplicateDevice)
        );
        assert_eq!(
            account
                .add_device(DeviceId::new(0), &identity(&fresh))
                .err(),
            Some(Error::DuplicateDevice)
        );
        assert_eq!(
            account.remove_device(DeviceId::new(1)).err(),
            Some(Error::UnknownDevice(DeviceId::new(1)))
        );
        assert_eq!(account.device_list().to_bytes(), three.bytes);
    }
    let rejects = rejects(&built);
    let file = ListFile {
        comment: vec![
            "Signed device lists of SPEC.md 9.4 (type 0x16, bundle version 0x02): 02 16 || \
             account key || u64 counter || n || n x (u32 device id || identity key) || \
             Ed25519-Sign(account seed, DEVICE_LIST_LABEL || signed_part), where signed_part is \
             every byte before the signature; devices by strictly ascending id."
                .into(),
            format!(
                "Part of the vector set dated {DATE}, added to it with the accounts of SPEC.md \
                 9.3-9.6 and generated with it (cargo run -p doubleratchet-vectors -- --write): \
                 each list was built from its seeds by the generator's own encoding of the SPEC.md \
                 table and ed25519-dalek, and asserted equal, byte for byte, to the list the \
                 library's Account signs from the same seeds (library_steps), to what \
                 DeviceList::from_bytes accepts and to_bytes gives back; each reject was run \
                 through the generator's own parser of SPEC.md 9.4 and the library, which both \
                 gave expected_error."
            ),
            "library_steps: Account::new(device_id, identity_key, rng) with an RNG whose only \
             bytes are account_seed (one 32-byte draw, SPEC.md 2.5) signs counter 1; each \
             add_device / remove_device signs the next counter; Account::from_bytes loads the \
             listed stored account (SPEC.md 7.9: 02 2c || seed || u32 len || list). Keys come \
             from their seeds as in SPEC.md 2.1. Byte strings are lowercase hex; \
             tests/it/vectors.rs checks this file."
                .into(),
        ],
        kind: "device_list",
        provenance: Provenance {
            spec: "SPEC.md, protocol profile v2 (device lists: sections 2.1, 2.3, 2.5, 9.3, \
                   9.4; the stored account of 7.9)",
            rng: "account and identity seeds: 32-byte draws from rand_chacha 0.10 \
                  ChaCha20Rng::seed_from_u64(0x916), in the order the lists first name them; \
                  Account::new is given an RNG holding the account seed only",
            method: "each list built independently from the SPEC.md 9.4 table with \
                     ed25519-dalek (keys from seeds, deterministic RFC 8032 signatures) and \
                     asserted equal to the library's Account output and DeviceList round trip; \
                     each reject checked against an independent parser of SPEC.md 9.4 \
                     (curve25519-dalek for the 2.1 key checks, ed25519-dalek verify_strict) and \
                     the library",
            method_crates: "ed25519-dalek (public keys from seeds, RFC 8032 signing, \
                            verify_strict), curve25519-dalek (the SPEC.md 2.1 checks of every \
                            key: decompression, canonical encoding, small order; S + L)",
            ..provenance()
        },
        constants: Constants {
            device_list_label: "doubleratchet v2 device list",
            bundle_version: hex(&[VERSION]),
            device_list_type: hex(&[TYPE]),
            max_devices: MAX_DEVICES,
            device_list_fixed_length: FIXED_LENGTH,
            device_list_entry_length: ENTRY_LENGTH,
            max_device_list_length: MAX_LENGTH,
        },
        lists,
        rejects,
    };
    eprintln!(
        "{FILE}: {} lists and {} rejects agree with the library",
        file.lists.len(),
        file.rejects.len()
    );
    (FILE.into(), to_json(&file))
}
