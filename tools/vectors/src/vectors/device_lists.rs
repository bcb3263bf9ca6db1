//! `device_list_v2.json`: signed device lists (SPEC.md §9.4, type `0x16`) of 0, 1, 3 and 16
//! (`MAX_DEVICES`) devices, and one at a full-width counter, each built here from fixed
//! account-key and identity seeds with this module's own byte layout of the SPEC.md table
//! and `ed25519-dalek` signing from the seeds (the list signature by the account seed, each
//! device's link signature by its identity seed; never through the library's encoder), then
//! required to be exactly what the library's `Account` signs from the same seeds
//! (`Account::new` given the first device, a `LocalDevice` of its identity seed, and an RNG
//! whose only bytes are the account seed; then `add_device` with each new device's
//! `LocalDevice::link`, and `remove_device`, in order), to parse with `DeviceList::from_bytes`
//! and to re-encode with `to_bytes` byte for byte. Device links (SPEC.md §9.4, type `0x17`)
//! are built the same way and required to be what `LocalDevice::link` gives, and to parse
//! with `DeviceLink::from_bytes`. The rejection cases (one fault each, in the parse orders of
//! §9.4) are run through this module's own parsers of §9.4 (`model_parse` and
//! `model_parse_link`: §2.1 validation with `curve25519-dalek`, strict verification with
//! `ed25519-dalek`) and through the library, and both must give the listed error before the
//! file is written.

use std::collections::HashMap;

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use doubleratchet::rand_core::TryRng;
use doubleratchet::{
    Account, AccountKey, DeviceId, DeviceLink, DeviceList, Error, IdentityKeyPair, LocalDevice,
};
use doubleratchet_test_support::{device_of, ListedRng};
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
/// `DEVICE_LINK_LABEL` (SPEC.md §1, §9.4).
const LINK_LABEL: &[u8] = b"doubleratchet v2 device link";
/// `DECRYPTION_ERROR_LABEL` (SPEC.md §6.8): a label the list must not verify under.
const OTHER_LABEL: &[u8] = b"doubleratchet v2 decryption error";
/// `BUNDLE_VERSION` (SPEC.md §5.1): device lists and links are of the bundle family.
const VERSION: u8 = 0x02;
const TYPE: u8 = 0x16;
const LINK_TYPE: u8 = 0x17;
/// The stored account (SPEC.md §7.9): storage version and type.
const STORAGE_VERSION: u8 = 0x02;
const TYPE_ACCOUNT: u8 = 0x2C;
/// The stored identity key pair (SPEC.md §7.2): how a `LocalDevice` gets a given seed.
const TYPE_IDENTITY: u8 = 0x21;
const MAX_DEVICES: usize = 16;
/// SPEC.md §9.4: version, type, account key, counter, `n`, signature.
const FIXED_LENGTH: usize = 2 + 32 + 8 + 1 + 64;
/// SPEC.md §9.4: device id, identity key, link signature.
const ENTRY_LENGTH: usize = 4 + 32 + 64;
const MAX_LENGTH: usize = FIXED_LENGTH + ENTRY_LENGTH * MAX_DEVICES;
/// SPEC.md §9.4: version, type, account key, device id, identity key, signature.
const LINK_LENGTH: usize = 2 + 32 + 4 + 32 + 64;
/// Offsets of SPEC.md §9.4 (the list).
const ACCOUNT_AT: usize = 2;
const COUNTER_AT: usize = 34;
const COUNT_AT: usize = 42;
const DEVICES_AT: usize = 43;
/// Offsets within one list entry.
const ENTRY_KEY_AT: usize = 4;
const ENTRY_LINK_AT: usize = 36;
/// Offsets of SPEC.md §9.4 (the device link).
const LINK_ID_AT: usize = 34;
const LINK_KEY_AT: usize = 38;
const LINK_SIGNATURE_AT: usize = 70;
/// Seed of the ChaCha20 stream the account and identity seeds are drawn from.
const SEEDS: u64 = 0x0916;
/// Seed of the ChaCha20 stream the library's devices draw their prekeys from (they play no
/// part in lists or links).
const DEVICE_PREKEYS: u64 = 0x0918;

#[derive(Serialize)]
struct ListFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    constants: Constants,
    lists: Vec<ListJson>,
    rejects: Vec<RejectJson>,
    links: Vec<LinkJson>,
    link_rejects: Vec<RejectJson>,
}

#[derive(Serialize)]
struct Constants {
    device_list_label: &'static str,
    device_link_label: &'static str,
    bundle_version: String,
    device_list_type: String,
    device_link_type: String,
    max_devices: usize,
    device_list_fixed_length: usize,
    device_list_entry_length: usize,
    max_device_list_length: usize,
    device_link_length: usize,
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
    link_message: String,
    link_signature: String,
}

#[derive(Serialize)]
struct StepJson {
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_seed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_account: Option<String>,
}

#[derive(Serialize)]
struct LinkJson {
    name: &'static str,
    description: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    listed_in: Option<&'static str>,
    account_key: String,
    device_id: u32,
    identity_seed: String,
    identity_key: String,
    signed_message: String,
    signature: String,
    bytes: String,
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

impl Built {
    fn account_key(&self) -> [u8; 32] {
        public_key(&self.account_seed)
    }
}

fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// `DEVICE_LINK_LABEL || account key || u32 id`: what a device's link signature covers.
fn link_message(account: &[u8; 32], id: u32) -> Vec<u8> {
    [LINK_LABEL, account, &id.to_be_bytes()].concat()
}

/// The link signature of the device of `seed` as device `id` of `account` (SPEC.md §9.4).
fn link_signature(seed: &[u8; 32], account: &[u8; 32], id: u32) -> [u8; 64] {
    ed25519_sign(seed, &link_message(account, id))
}

/// The device link of SPEC.md §9.4 (type `0x17`): `02 17 || account key || u32 id ||
/// identity key || signature`.
fn link_bytes(seed: &[u8; 32], account: &[u8; 32], id: u32) -> Vec<u8> {
    let mut out = vec![VERSION, LINK_TYPE];
    out.extend_from_slice(account);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&public_key(seed));
    out.extend_from_slice(&link_signature(seed, account, id));
    assert_eq!(out.len(), LINK_LENGTH);
    out
}

/// A link whose first 70 bytes were changed, signed again by `seed` over them (label, then
/// bytes 2..38): only the change can make it fail.
fn relinked(seed: &[u8; 32], link: &[u8]) -> Vec<u8> {
    let signature = ed25519_sign(seed, &[LINK_LABEL, &link[ACCOUNT_AT..LINK_KEY_AT]].concat());
    [&link[..LINK_SIGNATURE_AT], &signature[..]].concat()
}

/// Bytes `0 .. 43 + 100·n` of SPEC.md §9.4: everything the list signature covers after the
/// label; `devices` are `(id, identity seed)`, each entry carrying its link signature.
fn signed_part(account_seed: &[u8; 32], counter: u64, devices: &[(u32, [u8; 32])]) -> Vec<u8> {
    let account = public_key(account_seed);
    let mut out = vec![VERSION, TYPE];
    out.extend_from_slice(&account);
    out.extend_from_slice(&counter.to_be_bytes());
    out.push(u8::try_from(devices.len()).unwrap());
    for (id, seed) in devices {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&public_key(seed));
        out.extend_from_slice(&link_signature(seed, &account, *id));
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
    let signed = signed_part(&account_seed, counter, &devices);
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

/// The library's local device of an identity seed (loaded from its stored form, SPEC.md
/// §7.2, as test-support's `device_of` copies it); its prekeys play no part.
fn local_device(seed: &[u8; 32]) -> LocalDevice {
    let stored = [&[STORAGE_VERSION, TYPE_IDENTITY][..], seed].concat();
    let identity = IdentityKeyPair::from_bytes(&stored).unwrap();
    assert_eq!(identity.public_key().as_bytes(), &public_key(seed));
    let device = device_of(&identity, &mut ChaCha20Rng::seed_from_u64(DEVICE_PREKEYS)).unwrap();
    assert_eq!(device.identity_key().as_bytes(), &public_key(seed));
    device
}

/// The library's link of the device of `seed` as device `id` of `account`, required equal
/// to this module's encoding and to parse back.
fn library_link(seed: &[u8; 32], account: &[u8; 32], id: u32, what: &str) -> DeviceLink {
    let account_key = AccountKey::from_bytes(account).unwrap();
    let link = local_device(seed).link(&account_key, DeviceId::new(id));
    assert_same(
        &format!("{FILE}: {what}: LocalDevice::link"),
        &link_bytes(seed, account, id),
        &link.to_bytes(),
    );
    assert_eq!(DeviceLink::from_bytes(&link.to_bytes()), Ok(link), "{what}");
    link
}

/// SPEC.md §2.1: decompresses, is the canonical encoding of its point, not of small order.
pub(super) fn identity_key_valid(bytes: &[u8]) -> bool {
    let bytes: [u8; 32] = bytes.try_into().unwrap();
    match CompressedEdwardsY(bytes).decompress() {
        Some(point) => point.compress().to_bytes() == bytes && !point.is_small_order(),
        None => false,
    }
}

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

    /// Version (`UnsupportedVersion`), then type (`UnexpectedType`).
    fn version_and_type(&mut self, kind: u8) -> Result<(), String> {
        let version = self.take(1)?[0];
        if version != VERSION {
            return Err(format!("UnsupportedVersion({version})"));
        }
        let got = self.take(1)?[0];
        if got != kind {
            return Err(format!("UnexpectedType({got})"));
        }
        Ok(())
    }

    /// A key with the checks of SPEC.md §2.1 (`InvalidPublicKey`).
    fn key(&mut self) -> Result<&'a [u8], String> {
        let key = self.take(32)?;
        if !identity_key_valid(key) {
            return Err("InvalidPublicKey".into());
        }
        Ok(key)
    }
}

/// Ed25519 strict verification (SPEC.md §2.3) of `signature` by `key` over `message`.
fn verify(key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), String> {
    VerifyingKey::from_bytes(key.try_into().unwrap())
        .unwrap()
        .verify_strict(
            message,
            &Signature::from_bytes(signature.try_into().unwrap()),
        )
        .map_err(|_| "InvalidSignature".to_string())
}

/// `DeviceList::from_bytes` as SPEC.md §9.4 orders its checks, written from the SPEC text:
/// the error's `Debug` form, or `Ok` for a list that parses and verifies.
fn model_parse(input: &[u8]) -> Result<(), String> {
    if input.len() > MAX_LENGTH {
        return Err("TooLarge".into());
    }
    let mut r = Cursor {
        bytes: input,
        at: 0,
    };
    r.version_and_type(TYPE)?;
    let account = r.key()?;
    let counter = u64::from_be_bytes(r.take(8)?.try_into().unwrap());
    if counter == 0 {
        return Err("InvalidEncoding".into());
    }
    let n = r.take(1)?[0];
    if usize::from(n) > MAX_DEVICES {
        return Err("InvalidEncoding".into());
    }
    // (id, identity key, link signature)
    let mut seen: Vec<(u32, &[u8], &[u8])> = Vec::new();
    for _ in 0..n {
        let id = u32::from_be_bytes(r.take(4)?.try_into().unwrap());
        let key = r.key()?;
        if seen.last().is_some_and(|(previous, _, _)| id <= *previous)
            || key == account
            || seen.iter().any(|(_, k, _)| *k == key)
        {
            return Err("InvalidEncoding".into());
        }
        let link = r.take(64)?;
        seen.push((id, key, link));
    }
    let signature = r.take(64)?;
    if r.at != input.len() {
        return Err("TrailingData".into());
    }
    verify(account, &[LABEL, &input[..r.at - 64]].concat(), signature)?;
    let account: [u8; 32] = account.try_into().unwrap();
    for (id, key, link) in seen {
        verify(key, &link_message(&account, id), link)?;
    }
    Ok(())
}

/// `DeviceLink::from_bytes` as SPEC.md §9.4 orders its checks, written from the SPEC text.
fn model_parse_link(input: &[u8]) -> Result<(), String> {
    if input.len() > LINK_LENGTH {
        return Err("TooLarge".into());
    }
    let mut r = Cursor {
        bytes: input,
        at: 0,
    };
    r.version_and_type(LINK_TYPE)?;
    let account = r.key()?;
    let id = u32::from_be_bytes(r.take(4)?.try_into().unwrap());
    let key = r.key()?;
    let signature = r.take(64)?;
    if r.at != input.len() {
        return Err("TrailingData".into());
    }
    if key == account {
        return Err("InvalidEncoding".into());
    }
    verify(
        key,
        &link_message(account.try_into().unwrap(), id),
        signature,
    )
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
            description: "MAX_DEVICES = 16 devices (1707 bytes, MAX_DEVICE_LIST_LENGTH), \
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
    let account_key = public_key(&account_seed);
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
        Start::New(id) => {
            let seed = named(*id, rng);
            StepJson {
                op: "Account::new",
                device_id: Some(*id),
                identity_seed: Some(hex(&seed)),
                identity_key: Some(hex(&public_key(&seed))),
                link: None,
                stored_account: None,
            }
        }
        Start::Stored(..) => StepJson {
            op: "Account::from_bytes",
            device_id: None,
            identity_seed: None,
            identity_key: None,
            link: None,
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
                    identity_seed: Some(hex(&seed)),
                    identity_key: Some(hex(&public_key(&seed))),
                    link: Some(hex(&link_bytes(&seed, &account_key, *id))),
                    stored_account: None,
                }
            }
            Op::Remove(id) => {
                devices.retain(|(d, _)| d != id);
                StepJson {
                    op: "Account::remove_device",
                    device_id: Some(*id),
                    identity_seed: None,
                    identity_key: None,
                    link: None,
                    stored_account: None,
                }
            }
        });
    }
    let built = build(account_seed, counter, devices);

    // The library, driven through its public API from the same seeds.
    let mut account = match (&spec.start, &stored) {
        (Start::New(id), _) => {
            let mut rng = ListedRng::new(&account_seed);
            let device = local_device(&seeds[id]);
            let account = Account::new(&device, DeviceId::new(*id), &mut rng).unwrap();
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
        &account_key,
        "{FILE}: {}: account key",
        spec.name
    );
    for op in &spec.ops {
        match op {
            Op::Add(id) => {
                let what = format!("{}: device {id:#x}", spec.name);
                let link = library_link(&seeds[id], &account_key, *id, &what);
                account.add_device(&link).unwrap();
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
    assert_eq!(parsed.account_key().as_bytes(), &account_key);
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
    // Each listed link is the device's own link, as a standalone object too.
    assert_eq!(parsed.links().len(), built.devices.len());
    for (link, (id, seed)) in parsed.links().iter().zip(&built.devices) {
        assert_same(
            &format!("{FILE}: {}: DeviceList::links, device {id:#x}", spec.name),
            &link_bytes(seed, &account_key, *id),
            &link.to_bytes(),
        );
    }
    assert_eq!(model_parse(&built.bytes), Ok(()));

    let json = ListJson {
        name: spec.name,
        description: spec.description,
        account_seed: hex(&account_seed),
        account_key: hex(&account_key),
        counter: built.counter,
        devices: built
            .devices
            .iter()
            .map(|(id, seed)| DeviceJson {
                id: *id,
                identity_seed: hex(seed),
                identity_key: hex(&public_key(seed)),
                link_message: hex(&link_message(&account_key, *id)),
                link_signature: hex(&link_signature(seed, &account_key, *id)),
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
pub(super) fn s_plus_l(signature: &[u8]) -> [u8; 32] {
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
pub(super) fn non_canonical_key() -> [u8; 32] {
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
pub(super) fn off_curve_key() -> [u8; 32] {
    for y in 2u8..=255 {
        let mut bytes = [0u8; 32];
        bytes[0] = y;
        if CompressedEdwardsY(bytes).decompress().is_none() {
            return bytes;
        }
    }
    panic!("no off-curve key found")
}

/// The neutral point (y = 1, order 1).
pub(super) fn small_order_key() -> [u8; 32] {
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    identity_point
}

/// A seed that is no list's: the first draw of the stream after `SEEDS`.
fn other_seed() -> [u8; 32] {
    let mut rng = ChaCha20Rng::seed_from_u64(SEEDS + 1);
    draw(&mut rng)
}

type Case = (&'static str, String, &'static str, Vec<u8>, &'static str);

/// Runs every case through `model` and `library`, which must both give the listed error.
fn checked(
    cases: Vec<Case>,
    what: &str,
    model: fn(&[u8]) -> Result<(), String>,
    library: fn(&[u8]) -> Option<Error>,
) -> Vec<RejectJson> {
    let mut out = Vec::new();
    for (name, description, from, input, expected) in cases {
        let model = model(&input).err();
        let library = library(&input).map(|e| format!("{e:?}"));
        assert_eq!(
            model.as_deref(),
            Some(expected),
            "{FILE}: {name}: the model of SPEC.md 9.4 gives {model:?}"
        );
        assert_eq!(
            library.as_deref(),
            Some(expected),
            "{FILE}: {name}: {what} gives {library:?}"
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
    assert_eq!(
        names.len(),
        out.len(),
        "{FILE}: {what}: reject names are unique"
    );
    out
}

fn rejects(lists: &[Built]) -> Vec<RejectJson> {
    let by = |name: usize| &lists[name];
    let (none, one, three, sixteen, _) = (by(0), by(1), by(2), by(3), by(4));
    let (one_b, three_b, sixteen_b) = (&one.bytes, &three.bytes, &sixteen.bytes);
    let entry = |i: usize| DEVICES_AT + ENTRY_LENGTH * i;
    // The link signature of device `i`.
    let link_at = |i: usize| entry(i) + ENTRY_LINK_AT;
    let small_order = small_order_key();
    let other_seed = other_seed();
    let one_signed = &one_b[..one_b.len() - 64];
    let one_signed_len = one_signed.len();
    let three_sig = &three_b[three_b.len() - 64..];
    // three_devices' second device (id 0x80000000) and its seed.
    let (second_id, second_seed) = three.devices[1];
    let three_key = three.account_key();
    // three_devices with its first two devices swapped (ids 0x80000000 then 0).
    let swapped = [
        &three_b[..entry(0)],
        &three_b[entry(1)..entry(2)],
        &three_b[entry(0)..entry(1)],
        &three_b[entry(2)..],
    ]
    .concat();
    // three_devices with the second device's link signature replaced, re-signed.
    let with_second_link = |signature: &[u8]| {
        resigned(
            &three.account_seed,
            &replace_at(three_b, link_at(1), signature),
        )
    };
    let second_link_flipped =
        with_second_link(&xor_at(three_b, link_at(1), 0x01)[link_at(1)..link_at(1) + 64]);
    let mut cases: Vec<Case> = vec![
        (
            "too_large",
            format!("sixteen_devices with one byte appended: {} bytes, above MAX_DEVICE_LIST_LENGTH ({MAX_LENGTH})", MAX_LENGTH + 1),
            "sixteen_devices",
            [&sixteen_b[..], &[0]].concat(),
            "TooLarge",
        ),
        (
            "too_large_before_version",
            format!("the same {} bytes with the version byte 0x01: the length is checked first", MAX_LENGTH + 1),
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
            "type_device_link",
            "type byte 0x17 (a device link)".into(),
            "one_device",
            replace_at(one_b, 1, &[LINK_TYPE]),
            "UnexpectedType(23)",
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
                "sixteen_devices with n = 17 (byte {COUNT_AT}): {MAX_LENGTH} bytes, not TooLarge; \
                 n is checked as it is read, before any device"
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
            "three_devices with its first two devices (each with its link signature) swapped \
             (ids 0x80000000 then 0), re-signed"
                .into(),
            "three_devices",
            resigned(&three.account_seed, &swapped),
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
            swapped[..swapped.len() - 10].to_vec(),
            "InvalidEncoding",
        ),
        (
            "ids_descending_then_link_truncated",
            "ids_descending cut inside the second device's link signature: the order is \
             checked before the link signature is read"
                .into(),
            "three_devices",
            swapped[..link_at(1) + 10].to_vec(),
            "InvalidEncoding",
        ),
        (
            "duplicate_identity_key",
            "three_devices with the third device's identity key set to the first's, re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(
                    three_b,
                    entry(2) + ENTRY_KEY_AT,
                    &three_b[entry(0) + ENTRY_KEY_AT..link_at(0)],
                ),
            ),
            "InvalidEncoding",
        ),
        (
            "duplicate_device",
            "three_devices with the third device's identity key and link signature set to the \
             first's, re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(
                    three_b,
                    entry(2) + ENTRY_KEY_AT,
                    &three_b[entry(0) + ENTRY_KEY_AT..entry(1)],
                ),
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
                &replace_at(three_b, entry(1) + ENTRY_KEY_AT, &three_b[ACCOUNT_AT..COUNTER_AT]),
            ),
            "InvalidEncoding",
        ),
        (
            "identity_key_is_account_key_linked",
            "three_devices with the second device's identity key set to the account key and \
             its link signature made by the account seed (a valid link of that key), re-signed: \
             still InvalidEncoding"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(
                    &replace_at(three_b, entry(1) + ENTRY_KEY_AT, &three_key),
                    link_at(1),
                    &link_signature(&three.account_seed, &three_key, second_id),
                ),
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
                &replace_at(three_b, entry(1) + ENTRY_KEY_AT, &small_order),
            ),
            "InvalidPublicKey",
        ),
        (
            "identity_key_off_curve",
            "three_devices with the third device's identity key replaced by a y-coordinate that \
             is no curve point, re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(three_b, entry(2) + ENTRY_KEY_AT, &off_curve_key()),
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
                    &replace_at(three_b, entry(1) + ENTRY_KEY_AT, &small_order),
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
            "truncated_in_link_signature",
            "three_devices cut inside the second device's link signature".into(),
            "three_devices",
            three_b[..link_at(1) + 30].to_vec(),
            "Truncated",
        ),
        (
            "truncated_before_link_signature",
            "one_device cut right after its device's identity key".into(),
            "one_device",
            one_b[..link_at(0)].to_vec(),
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
            "three_devices with n = 2: the first 64 bytes of its third device are read as the \
             signature and the rest is trailing data"
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
            replace_at(one_b, DEVICES_AT + ENTRY_KEY_AT, &three_key),
            "InvalidSignature",
        ),
        (
            "signature_r_flipped",
            "one_device with a bit of the signature's R flipped".into(),
            "one_device",
            xor_at(one_b, one_signed_len, 0x01),
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
            format!(
                "one_device signed by its account seed over bytes 0..{one_signed_len} alone, \
                 without DEVICE_LIST_LABEL"
            ),
            "one_device",
            signed_with(&one.account_seed, b"", one_signed),
            "InvalidSignature",
        ),
        (
            "signed_under_decryption_error_label",
            format!(
                "one_device signed by its account seed over DECRYPTION_ERROR_LABEL \
                 (\"doubleratchet v2 decryption error\") || bytes 0..{one_signed_len}"
            ),
            "one_device",
            signed_with(&one.account_seed, OTHER_LABEL, one_signed),
            "InvalidSignature",
        ),
        (
            "signed_under_link_label",
            format!(
                "one_device signed by its account seed over DEVICE_LINK_LABEL || bytes \
                 0..{one_signed_len}"
            ),
            "one_device",
            signed_with(&one.account_seed, LINK_LABEL, one_signed),
            "InvalidSignature",
        ),
        (
            "signed_under_v1_label",
            format!(
                "one_device signed by its account seed over \"doubleratchet v1 device list\" || \
                 bytes 0..{one_signed_len}"
            ),
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
        // The link signatures (SPEC.md §9.4): each list below carries a valid list
        // signature, so that only the link can fail.
        (
            "link_signature_r_flipped",
            "three_devices with a bit of the second device's link signature (R) flipped, \
             re-signed by the account seed"
                .into(),
            "three_devices",
            second_link_flipped.clone(),
            "InvalidSignature",
        ),
        (
            "link_signature_s_not_reduced",
            "three_devices with the second device's link signature's S replaced by S + L, \
             re-signed: strict verification refuses it"
                .into(),
            "three_devices",
            with_second_link(
                &[
                    &three_b[link_at(1)..link_at(1) + 32],
                    &s_plus_l(&three_b[link_at(1)..link_at(1) + 64])[..],
                ]
                .concat(),
            ),
            "InvalidSignature",
        ),
        (
            "link_for_another_account",
            "three_devices whose second device's link signature is that device's valid link \
             for another account key (one_device's), same id, re-signed"
                .into(),
            "three_devices",
            with_second_link(&link_signature(&second_seed, &one.account_key(), second_id)),
            "InvalidSignature",
        ),
        (
            "link_for_another_id",
            "three_devices whose second device's (id 0x80000000) link signature is that \
             device's valid link for id 0x80000001 of the same account, re-signed"
                .into(),
            "three_devices",
            with_second_link(&link_signature(&second_seed, &three_key, second_id + 1)),
            "InvalidSignature",
        ),
        (
            "device_id_changed_resigned",
            "three_devices with the last device's id lowered to 0xfffffffe (still ascending) \
             and re-signed by the account seed: the device's link is for 0xffffffff"
                .into(),
            "three_devices",
            resigned(&three.account_seed, &xor_at(three_b, entry(2) + 3, 0x01)),
            "InvalidSignature",
        ),
        (
            "identity_key_swapped_resigned",
            "one_device with its identity key replaced by another device's (three_devices' \
             first) and re-signed by the account seed: the link is by the original key"
                .into(),
            "one_device",
            resigned(
                &one.account_seed,
                &replace_at(
                    one_b,
                    DEVICES_AT + ENTRY_KEY_AT,
                    &public_key(&three.devices[0].1),
                ),
            ),
            "InvalidSignature",
        ),
        (
            "link_signatures_swapped",
            "three_devices with the link signatures of its first two devices exchanged, \
             re-signed"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(
                    &replace_at(three_b, link_at(0), &three_b[link_at(1)..entry(2)]),
                    link_at(1),
                    &three_b[link_at(0)..entry(1)],
                ),
            ),
            "InvalidSignature",
        ),
        (
            "link_signed_by_account_key",
            "three_devices whose second device's link signature is made by the account seed \
             over the right message, re-signed"
                .into(),
            "three_devices",
            with_second_link(&link_signature(&three.account_seed, &three_key, second_id)),
            "InvalidSignature",
        ),
        (
            "link_signed_without_label",
            "three_devices whose second device's link signature covers account key || id \
             without DEVICE_LINK_LABEL, re-signed"
                .into(),
            "three_devices",
            with_second_link(&ed25519_sign(
                &second_seed,
                &[&three_key[..], &second_id.to_be_bytes()].concat(),
            )),
            "InvalidSignature",
        ),
        (
            "link_signed_under_list_label",
            "three_devices whose second device's link signature covers DEVICE_LIST_LABEL || \
             account key || id, re-signed"
                .into(),
            "three_devices",
            with_second_link(&ed25519_sign(
                &second_seed,
                &[LABEL, &three_key[..], &second_id.to_be_bytes()].concat(),
            )),
            "InvalidSignature",
        ),
        (
            "link_signed_id_little_endian",
            "three_devices whose second device's link signature covers the id little-endian, \
             re-signed"
                .into(),
            "three_devices",
            with_second_link(&ed25519_sign(
                &second_seed,
                &[LINK_LABEL, &three_key[..], &second_id.to_le_bytes()].concat(),
            )),
            "InvalidSignature",
        ),
        (
            "last_link_bad",
            "sixteen_devices with a bit of its last device's link signature flipped, \
             re-signed: every link is verified"
                .into(),
            "sixteen_devices",
            resigned(
                &sixteen.account_seed,
                &xor_at(sixteen_b, link_at(15) + 63, 0x40),
            ),
            "InvalidSignature",
        ),
        (
            "claimed_by_another_account",
            "one_device's device, with its link, listed under three_devices' account key and \
             signed by that account's seed: a valid list signature, but the device consented to \
             one_device's account only"
                .into(),
            "one_device",
            resigned(&three.account_seed, &replace_at(one_b, ACCOUNT_AT, &three_key)),
            "InvalidSignature",
        ),
        (
            "link_and_list_signature_bad",
            "three_devices with the second device's link signature flipped and the list \
             signature left as it was (both fail)"
                .into(),
            "three_devices",
            xor_at(three_b, link_at(1), 0x01),
            "InvalidSignature",
        ),
        (
            "link_bad_then_trailing",
            "link_signature_r_flipped with one byte appended: trailing data is found before \
             any signature is verified"
                .into(),
            "three_devices",
            [&second_link_flipped[..], &[0]].concat(),
            "TrailingData",
        ),
        (
            "link_bad_then_truncated",
            "link_signature_r_flipped without its last byte".into(),
            "three_devices",
            second_link_flipped[..second_link_flipped.len() - 1].to_vec(),
            "Truncated",
        ),
        (
            "link_bad_then_duplicate_identity_key",
            "three_devices with the first device's link signature flipped and the third \
             device's identity key set to the first's, re-signed: the structure is checked \
             before any signature"
                .into(),
            "three_devices",
            resigned(
                &three.account_seed,
                &replace_at(
                    &xor_at(three_b, link_at(0), 0x01),
                    entry(2) + ENTRY_KEY_AT,
                    &three_b[entry(0) + ENTRY_KEY_AT..link_at(0)],
                ),
            ),
            "InvalidEncoding",
        ),
    ];
    // The 16-device list with its first byte changed is still the longest length: not
    // TooLarge.
    cases.push((
        "largest_list_version_v1",
        format!("sixteen_devices ({MAX_LENGTH} bytes, the longest list) with version byte 0x01"),
        "sixteen_devices",
        replace_at(sixteen_b, 0, &[0x01]),
        "UnsupportedVersion(1)",
    ));
    checked(cases, "DeviceList::from_bytes", model_parse, |input| {
        DeviceList::from_bytes(input).err()
    })
}

/// A valid device link of SPEC.md §9.4.
struct LinkSpec {
    name: &'static str,
    description: &'static str,
    listed_in: Option<&'static str>,
    account: [u8; 32],
    id: u32,
    seed: [u8; 32],
}

fn link_specs(lists: &[Built]) -> Vec<LinkSpec> {
    let (one, three) = (&lists[1], &lists[2]);
    vec![
        LinkSpec {
            name: "one_device_link",
            description: "the link of one_device's device (id 0x7f000001), carried in that list",
            listed_in: Some("one_device"),
            account: one.account_key(),
            id: one.devices[0].0,
            seed: one.devices[0].1,
        },
        LinkSpec {
            name: "id_zero",
            description: "the link of three_devices' device 0, carried in that list",
            listed_in: Some("three_devices"),
            account: three.account_key(),
            id: three.devices[0].0,
            seed: three.devices[0].1,
        },
        LinkSpec {
            name: "id_max",
            description: "the link of three_devices' device 0xffffffff, carried in that list",
            listed_in: Some("three_devices"),
            account: three.account_key(),
            id: three.devices[2].0,
            seed: three.devices[2].1,
        },
        LinkSpec {
            name: "same_device_other_account",
            description: "one_device's device consenting to be device 7 of three_devices' \
                          account: another signature by the same identity key, listed nowhere",
            listed_in: None,
            account: three.account_key(),
            id: 7,
            seed: one.devices[0].1,
        },
    ]
}

fn make_links(lists: &[Built]) -> (Vec<LinkJson>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut encoded = Vec::new();
    for spec in link_specs(lists) {
        let bytes = link_bytes(&spec.seed, &spec.account, spec.id);
        let link = library_link(&spec.seed, &spec.account, spec.id, spec.name);
        assert_eq!(link.account_key().as_bytes(), &spec.account);
        assert_eq!(link.device_id(), DeviceId::new(spec.id));
        assert_eq!(link.identity_key().as_bytes(), &public_key(&spec.seed));
        assert_eq!(model_parse_link(&bytes), Ok(()), "{}", spec.name);
        if let Some(list) = spec.listed_in {
            let parsed = DeviceList::from_bytes(&build_of(lists, list).bytes).unwrap();
            assert!(
                parsed.links().contains(&link),
                "{}: listed in {list}",
                spec.name
            );
        }
        let signature = link_signature(&spec.seed, &spec.account, spec.id);
        out.push(LinkJson {
            name: spec.name,
            description: spec.description,
            listed_in: spec.listed_in,
            account_key: hex(&spec.account),
            device_id: spec.id,
            identity_seed: hex(&spec.seed),
            identity_key: hex(&public_key(&spec.seed)),
            signed_message: hex(&link_message(&spec.account, spec.id)),
            signature: hex(&signature),
            bytes: hex(&bytes),
        });
        encoded.push(bytes);
    }
    (out, encoded)
}

/// The built list of that name (the order of `specs`).
fn build_of<'a>(lists: &'a [Built], name: &str) -> &'a Built {
    let at = specs().iter().position(|s| s.name == name).unwrap();
    &lists[at]
}

fn link_rejects(lists: &[Built], links: &[Vec<u8>]) -> Vec<RejectJson> {
    let one = &lists[1];
    let three = &lists[2];
    let base = &links[0];
    let seed = one.devices[0].1;
    let account = one.account_key();
    let small_order = small_order_key();
    // The link with its identity key set to the account key, signed by the account seed.
    let self_linked = relinked(&one.account_seed, &replace_at(base, LINK_KEY_AT, &account));
    let signed_by = |signer: &[u8; 32], message: &[u8]| {
        [
            &base[..LINK_SIGNATURE_AT],
            &ed25519_sign(signer, message)[..],
        ]
        .concat()
    };
    let id = one.devices[0].0;
    let cases: Vec<Case> = vec![
        (
            "too_large",
            format!("one_device_link with one byte appended: {} bytes, above DEVICE_LINK_LENGTH ({LINK_LENGTH})", LINK_LENGTH + 1),
            "one_device_link",
            [&base[..], &[0]].concat(),
            "TooLarge",
        ),
        (
            "too_large_before_version",
            format!("the same {} bytes with the version byte 0x01: the length is checked first", LINK_LENGTH + 1),
            "one_device_link",
            xor_at(&[&base[..], &[0]].concat(), 0, 0x03),
            "TooLarge",
        ),
        ("empty", "no byte at all".into(), "one_device_link", Vec::new(), "Truncated"),
        (
            "version_v1",
            "version byte 0x01 (profile v1)".into(),
            "one_device_link",
            replace_at(base, 0, &[0x01]),
            "UnsupportedVersion(1)",
        ),
        (
            "version_only",
            "the version byte alone".into(),
            "one_device_link",
            base[..1].to_vec(),
            "Truncated",
        ),
        (
            "type_device_list",
            "type byte 0x16 (a device list)".into(),
            "one_device_link",
            replace_at(base, 1, &[TYPE]),
            "UnexpectedType(22)",
        ),
        (
            "type_bundle",
            "type byte 0x10 (a prekey bundle)".into(),
            "one_device_link",
            replace_at(base, 1, &[0x10]),
            "UnexpectedType(16)",
        ),
        (
            "account_key_small_order",
            "the account key replaced by the neutral point, re-signed by the device".into(),
            "one_device_link",
            relinked(&seed, &replace_at(base, ACCOUNT_AT, &small_order)),
            "InvalidPublicKey",
        ),
        (
            "account_key_not_canonical",
            "the account key replaced by a non-canonical encoding (y + p) of a point of large \
             order"
                .into(),
            "one_device_link",
            replace_at(base, ACCOUNT_AT, &non_canonical_key()),
            "InvalidPublicKey",
        ),
        (
            "account_key_off_curve",
            "the account key replaced by a y-coordinate that is no curve point".into(),
            "one_device_link",
            replace_at(base, ACCOUNT_AT, &off_curve_key()),
            "InvalidPublicKey",
        ),
        (
            "account_key_small_order_then_truncated",
            "the account key replaced by the neutral point and the input cut right after it: \
             the key is checked as it is read"
                .into(),
            "one_device_link",
            replace_at(base, ACCOUNT_AT, &small_order)[..LINK_ID_AT].to_vec(),
            "InvalidPublicKey",
        ),
        (
            "account_key_truncated",
            "the link cut inside the account key (20 bytes)".into(),
            "one_device_link",
            base[..20].to_vec(),
            "Truncated",
        ),
        (
            "id_truncated",
            "the link cut inside the device id (36 bytes)".into(),
            "one_device_link",
            base[..LINK_ID_AT + 2].to_vec(),
            "Truncated",
        ),
        (
            "identity_key_small_order",
            "the identity key replaced by the neutral point".into(),
            "one_device_link",
            replace_at(base, LINK_KEY_AT, &small_order),
            "InvalidPublicKey",
        ),
        (
            "identity_key_not_canonical",
            "the identity key replaced by a non-canonical encoding (y + p) of a point of large \
             order"
                .into(),
            "one_device_link",
            replace_at(base, LINK_KEY_AT, &non_canonical_key()),
            "InvalidPublicKey",
        ),
        (
            "identity_key_off_curve",
            "the identity key replaced by a y-coordinate that is no curve point".into(),
            "one_device_link",
            replace_at(base, LINK_KEY_AT, &off_curve_key()),
            "InvalidPublicKey",
        ),
        (
            "identity_key_small_order_then_truncated",
            "the identity key replaced by the neutral point and the input cut inside the \
             signature: the key is checked before the signature is read"
                .into(),
            "one_device_link",
            replace_at(base, LINK_KEY_AT, &small_order)[..LINK_SIGNATURE_AT + 10].to_vec(),
            "InvalidPublicKey",
        ),
        (
            "identity_key_truncated",
            "the link cut inside the identity key (50 bytes)".into(),
            "one_device_link",
            base[..LINK_KEY_AT + 12].to_vec(),
            "Truncated",
        ),
        (
            "signature_missing",
            "the link without its signature (70 bytes)".into(),
            "one_device_link",
            base[..LINK_SIGNATURE_AT].to_vec(),
            "Truncated",
        ),
        (
            "signature_truncated",
            "the link without the signature's last byte".into(),
            "one_device_link",
            base[..LINK_LENGTH - 1].to_vec(),
            "Truncated",
        ),
        (
            "identity_key_is_account_key",
            "the identity key set to the account key, signed by the account seed (a valid \
             signature by that key over the right message)"
                .into(),
            "one_device_link",
            self_linked.clone(),
            "InvalidEncoding",
        ),
        (
            "identity_key_is_account_key_bad_signature",
            "identity_key_is_account_key with a signature bit flipped: the keys are compared \
             before the signature is verified"
                .into(),
            "one_device_link",
            xor_at(&self_linked, LINK_SIGNATURE_AT, 0x01),
            "InvalidEncoding",
        ),
        (
            "identity_key_is_account_key_truncated",
            "identity_key_is_account_key without its last byte: Truncated comes before the \
             keys are compared"
                .into(),
            "one_device_link",
            self_linked[..LINK_LENGTH - 1].to_vec(),
            "Truncated",
        ),
        (
            "signature_r_flipped",
            "a bit of the signature's R flipped".into(),
            "one_device_link",
            xor_at(base, LINK_SIGNATURE_AT, 0x01),
            "InvalidSignature",
        ),
        (
            "signature_s_not_reduced",
            "the signature's S replaced by S + L (equal modulo L, not reduced)".into(),
            "one_device_link",
            replace_at(base, LINK_SIGNATURE_AT + 32, &s_plus_l(&base[LINK_SIGNATURE_AT..])),
            "InvalidSignature",
        ),
        (
            "another_account",
            "the account key replaced by three_devices' account key (valid), original \
             signature"
                .into(),
            "one_device_link",
            replace_at(base, ACCOUNT_AT, &three.account_key()),
            "InvalidSignature",
        ),
        (
            "another_id",
            "the device id's last byte changed (0x7f000000), original signature".into(),
            "one_device_link",
            xor_at(base, LINK_KEY_AT - 1, 0x01),
            "InvalidSignature",
        ),
        (
            "another_identity_key",
            "the identity key replaced by another device's (three_devices' first), original \
             signature"
                .into(),
            "one_device_link",
            replace_at(base, LINK_KEY_AT, &public_key(&three.devices[0].1)),
            "InvalidSignature",
        ),
        (
            "signed_by_account_key",
            "signed over the right message by the account seed, not the device's".into(),
            "one_device_link",
            signed_by(&one.account_seed, &link_message(&account, id)),
            "InvalidSignature",
        ),
        (
            "signed_without_label",
            "signed by the device over account key || id, without DEVICE_LINK_LABEL".into(),
            "one_device_link",
            signed_by(&seed, &[&account[..], &id.to_be_bytes()].concat()),
            "InvalidSignature",
        ),
        (
            "signed_under_list_label",
            "signed by the device over DEVICE_LIST_LABEL || account key || id".into(),
            "one_device_link",
            signed_by(&seed, &[LABEL, &account[..], &id.to_be_bytes()].concat()),
            "InvalidSignature",
        ),
        (
            "signed_over_encoding",
            "signed by the device over DEVICE_LINK_LABEL || bytes 0..70 of the link (the \
             version, type and identity key too)"
                .into(),
            "one_device_link",
            signed_by(&seed, &[LINK_LABEL, &base[..LINK_SIGNATURE_AT]].concat()),
            "InvalidSignature",
        ),
        (
            "signed_id_little_endian",
            "signed by the device over DEVICE_LINK_LABEL || account key || id little-endian"
                .into(),
            "one_device_link",
            signed_by(&seed, &[LINK_LABEL, &account[..], &id.to_le_bytes()].concat()),
            "InvalidSignature",
        ),
    ];
    checked(cases, "DeviceLink::from_bytes", model_parse_link, |input| {
        DeviceLink::from_bytes(input).err()
    })
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
    // The library's limits around the lists (not in the file): a link for another account
    // is WrongRecord (before the count), a 17th device TooManyDevices, a listed id or key or
    // the account key DuplicateDevice, an unlisted removal UnknownDevice.
    {
        let fresh = [0x17; 32];
        let sixteen = &built[3];
        let three = &built[2];
        let mut account = Account::from_bytes(&stored_account(sixteen)).unwrap();
        let link = library_link(&fresh, &sixteen.account_key(), 1, "a 17th device");
        assert_eq!(account.add_device(&link).err(), Some(Error::TooManyDevices));
        let elsewhere = library_link(&fresh, &built[1].account_key(), 1, "another account's");
        assert_eq!(
            account.add_device(&elsewhere).err(),
            Some(Error::WrongRecord)
        );
        assert_eq!(account.device_list().to_bytes(), sixteen.bytes);

        let mut account = Account::from_bytes(&stored_account(three)).unwrap();
        let key = three.account_key();
        let listed = library_link(&three.devices[0].1, &key, 1, "a listed key");
        assert_eq!(
            account.add_device(&listed).err(),
            Some(Error::DuplicateDevice)
        );
        let listed_id = library_link(&fresh, &key, 0, "a listed id");
        assert_eq!(
            account.add_device(&listed_id).err(),
            Some(Error::DuplicateDevice)
        );
        // A device whose identity key is the account key: its link does not parse
        // (InvalidEncoding), but LocalDevice::link makes it.
        let account_itself =
            local_device(&three.account_seed).link(account.account_key(), DeviceId::new(1));
        assert_eq!(
            DeviceLink::from_bytes(&account_itself.to_bytes()).err(),
            Some(Error::InvalidEncoding)
        );
        assert_eq!(
            account.add_device(&account_itself).err(),
            Some(Error::DuplicateDevice)
        );
        assert_eq!(
            account.add_device(&elsewhere).err(),
            Some(Error::WrongRecord)
        );
        assert_eq!(
            account.remove_device(DeviceId::new(1)).err(),
            Some(Error::UnknownDevice(DeviceId::new(1)))
        );
        assert_eq!(account.device_list().to_bytes(), three.bytes);
        // The account's own list adopted changes nothing (SPEC.md §9.3).
        let own = account.device_list().clone();
        assert_eq!(account.adopt(&own), Ok(false));
    }
    let rejects = rejects(&built);
    let (links, link_bytes) = make_links(&built);
    let link_rejects = link_rejects(&built, &link_bytes);
    let file = ListFile {
        comment: vec![
            "Signed device lists of SPEC.md 9.4 (type 0x16, bundle version 0x02): 02 16 || \
             account key || u64 counter || n || n x (u32 device id || identity key || link \
             signature) || Ed25519-Sign(account seed, DEVICE_LIST_LABEL || signed_part), where \
             signed_part is every byte before the signature; devices by strictly ascending id. \
             A device's link signature is Ed25519-Sign(identity seed, DEVICE_LINK_LABEL || \
             account key || u32 device id) (link_message, link_signature)."
                .into(),
            "Device links of SPEC.md 9.4 (type 0x17, 134 bytes): 02 17 || account key || u32 \
             device id || identity key || Ed25519-Sign(identity seed, DEVICE_LINK_LABEL || \
             account key || u32 device id); links lists valid ones, link_rejects one fault \
             each in the parse order of DeviceLink::from_bytes."
                .into(),
            format!(
                "Part of the vector set dated {DATE}, added to it with the accounts of SPEC.md \
                 9.3-9.6 and generated with it (cargo run -p doubleratchet-vectors -- --write): \
                 each list and link was built from its seeds by the generator's own encoding of \
                 the SPEC.md tables and ed25519-dalek, and asserted equal, byte for byte, to \
                 what the library's Account signs from the same seeds (library_steps) and \
                 LocalDevice::link gives, to what DeviceList::from_bytes and \
                 DeviceLink::from_bytes accept and to_bytes gives back; each reject was run \
                 through the generator's own parsers of SPEC.md 9.4 and the library, which \
                 both gave expected_error."
            ),
            "library_steps: Account::new(device, device_id, rng), device being a LocalDevice \
             of identity_seed (its prekeys play no part), with an RNG whose only bytes are \
             account_seed (one 32-byte draw, SPEC.md 2.5), signs counter 1; each add_device \
             (given link, the new device's LocalDevice::link(account key, device_id)) / \
             remove_device signs the next counter; Account::from_bytes loads the listed stored \
             account (SPEC.md 7.9: 02 2c || seed || u32 len || list). Keys come from their \
             seeds as in SPEC.md 2.1. Byte strings are lowercase hex; tests/it/vectors.rs \
             checks this file."
                .into(),
        ],
        kind: "device_list",
        provenance: Provenance {
            spec: "SPEC.md, protocol profile v2 (device lists and device links: sections 2.1, \
                   2.3, 2.5, 9.3, 9.4; the stored identity of 7.2 and account of 7.9)",
            rng: "account and identity seeds: 32-byte draws from rand_chacha 0.10 \
                  ChaCha20Rng::seed_from_u64(0x916), in the order the lists first name them; \
                  Account::new is given an RNG holding the account seed only; the library's \
                  devices draw their prekeys (part of no list or link) from \
                  ChaCha20Rng::seed_from_u64(0x918)",
            method: "each list and link built independently from the SPEC.md 9.4 tables with \
                     ed25519-dalek (keys from seeds, deterministic RFC 8032 signatures) and \
                     asserted equal to the library's Account and LocalDevice::link output and \
                     to the DeviceList and DeviceLink round trips; each reject checked against \
                     independent parsers of SPEC.md 9.4 (curve25519-dalek for the 2.1 key \
                     checks, ed25519-dalek verify_strict) and the library",
            method_crates: "ed25519-dalek (public keys from seeds, RFC 8032 signing, \
                            verify_strict), curve25519-dalek (the SPEC.md 2.1 checks of every \
                            key: decompression, canonical encoding, small order; S + L)",
            ..provenance()
        },
        constants: Constants {
            device_list_label: "doubleratchet v2 device list",
            device_link_label: "doubleratchet v2 device link",
            bundle_version: hex(&[VERSION]),
            device_list_type: hex(&[TYPE]),
            device_link_type: hex(&[LINK_TYPE]),
            max_devices: MAX_DEVICES,
            device_list_fixed_length: FIXED_LENGTH,
            device_list_entry_length: ENTRY_LENGTH,
            max_device_list_length: MAX_LENGTH,
            device_link_length: LINK_LENGTH,
        },
        lists,
        rejects,
        links,
        link_rejects,
    };
    eprintln!(
        "{FILE}: {} lists, {} rejects, {} links and {} link rejects agree with the library",
        file.lists.len(),
        file.rejects.len(),
        file.links.len(),
        file.link_rejects.len()
    );
    (FILE.into(), to_json(&file))
}
