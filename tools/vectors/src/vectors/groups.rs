//! `group_v2.json`: group messaging with sender keys (SPEC.md §11), computed by this
//! module's own model of the SPEC.md text and tables, never through the library's group
//! code, then required to be exactly what the library does:
//!
//! * the chain step `KDF_GCK` (§11.1: `mk = HMAC(ck, 0x03)`, `cm = HMAC(ck, 0x04)`,
//!   `ck' = HMAC(ck, 0x05)`, HMAC-SHA-256 with the `hmac` and `sha2` crates);
//! * the distribution (§11.2, type `0x09`, 174 bytes) with its sender binding (an Ed25519
//!   signature by the chain's signing key over `GROUP_SENDER_LABEL ‖ group id ‖ chain id ‖
//!   signing key ‖ sender identity`);
//! * the group message (§11.3, type `0x08`): the plaintext encoding of §4.9 (`padme` or
//!   `none`), AES-256-GCM-SIV under `mk` with the zero nonce and AAD = bytes 0..78, and an
//!   Ed25519 signature (`ed25519-dalek`, deterministic) over everything before it;
//! * the stored group (§7.11, type `0x2E`) and member chains (§7.12, type `0x2F`);
//! * receiving (§11.4 distributions: added, known, advanced (checked by stepping, or too far
//!   to check), conflicting; §11.5 decryption: the checks in their order, the 2 000 kept
//!   skipped keys, the 25 000-step jump, the eviction of chains and keys), and the load
//!   orders of §10.1 (each rule checked as its field is read).
//!
//! The library is driven only through its public API and only from bytes this module
//! wrote: a `Group` loaded with `Group::from_bytes` from the model's stored group must
//! encrypt byte for byte the model's message and store the model's next state;
//! `Group::new`, `rotate`, `remove_member`, `add_member` and `after_restore` given the
//! model's random bytes (a `ListedRng`) must store the model's group; a `MemberChains` must
//! go through every receiving step with the model's outcome, plaintext or error and store
//! the model's state; and every reject input must fail in the model and in the library
//! with the error SPEC.md names. Nothing is written unless all of it agrees.

use std::collections::BTreeMap;

use doubleratchet::rand_core::TryRng;
use doubleratchet::{
    Distribution, DistributionOutcome, Group, GroupId, GroupMessage, IdentityKey, MemberChains,
};
use doubleratchet_test_support::ListedRng;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::device_lists::{
    identity_key_valid, non_canonical_key, off_curve_key, s_plus_l, small_order_key,
};
use super::{
    assert_same, decode, ed25519_sign, encode, hex, hmac, message_open, message_seal, provenance,
    replace_at, to_json, xor_at, Pad, Provenance, DATE, MAX_MESSAGE_SIZE, MAX_PLAINTEXT_SIZE,
    TAG_LENGTH,
};

const FILE: &str = "group_v2.json";
/// Seed of the ChaCha20 stream every fixed key of the file is drawn from.
const SEEDS: u64 = 0x0920;

/// SPEC.md §5.1: the wire and storage versions.
const WIRE_VERSION: u8 = 0x02;
const STORAGE_VERSION: u8 = 0x02;
/// SPEC.md §5.5: the types of §11.2, §11.3, §7.11, §7.12.
const TYPE_GROUP_MESSAGE: u8 = 0x08;
const TYPE_DISTRIBUTION: u8 = 0x09;
const TYPE_GROUP: u8 = 0x2E;
const TYPE_MEMBER_CHAINS: u8 = 0x2F;
/// SPEC.md §11.1: the HMAC inputs of `KDF_GCK`.
const MESSAGE_KEY_INPUT: u8 = 0x03;
const COMMITMENT_INPUT: u8 = 0x04;
const CHAIN_KEY_INPUT: u8 = 0x05;
/// SPEC.md §11.3.
const PREFIX_LENGTH: usize = 78;
const SIGNATURE_LENGTH: usize = 64;
const OVERHEAD: usize = PREFIX_LENGTH + TAG_LENGTH + SIGNATURE_LENGTH;
/// SPEC.md §11.2: the distribution, and `GROUP_SENDER_LABEL` (SPEC.md §1), which its sender
/// binding signs first.
const DISTRIBUTION_LENGTH: usize = 174;
const GROUP_SENDER_LABEL: &[u8] = b"doubleratchet v2 group sender";
/// SPEC.md §7.11.
const GROUP_FIXED_LENGTH: usize = 147;
const MAX_GROUP_MEMBERS: usize = 4096;
const MAX_GROUP_SIZE: usize = GROUP_FIXED_LENGTH + 32 * MAX_GROUP_MEMBERS;
/// SPEC.md §7.12 and §11.4.
const CHAINS_FIXED_LENGTH: usize = 68;
const CHAIN_FIXED_LENGTH: usize = 80;
const SKIPPED_ENTRY_LENGTH: usize = 68;
const MAX_MEMBER_CHAINS: usize = 5;
const MAX_RETIRED_CHAINS: usize = 16;
const MAX_GROUP_SKIPPED: usize = 2000;
const MAX_GROUP_JUMP: u32 = 25_000;
const MAX_CHAINS_SIZE: usize = CHAINS_FIXED_LENGTH
    + 8 * MAX_RETIRED_CHAINS
    + MAX_MEMBER_CHAINS * (CHAIN_FIXED_LENGTH + SKIPPED_ENTRY_LENGTH * MAX_GROUP_SKIPPED);

/// Offsets of SPEC.md §11.2 and §11.3 (the same up to 46).
const GROUP_ID_AT: usize = 2;
const CHAIN_ID_AT: usize = 34;
const ITERATION_AT: usize = 42;
/// The distribution's chain key, the message's key commitment.
const KEY_AT: usize = 46;
/// The distribution's signing key, the message's ciphertext.
const SIGNING_KEY_AT: usize = 78;
/// The distribution's sender binding.
const BINDING_AT: usize = 110;
/// Offsets of SPEC.md §7.11.
const STORED_OWN_AT: usize = 34;
const STORED_PADDING_AT: usize = 66;
const STORED_COUNT_AT: usize = 143;
/// Offsets of SPEC.md §7.12.
const STORED_MEMBER_AT: usize = 34;
const STORED_RETIRED_COUNT_AT: usize = 66;
const STORED_CHAIN_COUNT_AT: usize = 67;

/// A stored member chains of at most this many bytes is listed in hex; a longer one (2 000
/// skipped keys are 136 000 bytes) by its length and SHA-256 only.
const LISTED_STATE_LENGTH: usize = 4096;

type Res<T> = Result<T, String>;

fn fail<T>(error: &str) -> Res<T> {
    Err(error.to_owned())
}

// ---------------------------------------------------------------------------------------
// The model: SPEC.md §11, §7.11, §7.12, from the text
// ---------------------------------------------------------------------------------------

fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// One chain step's outputs (SPEC.md §11.1).
#[derive(Clone, Copy)]
struct Keys {
    mk: [u8; 32],
    cm: [u8; 32],
    next: [u8; 32],
}

/// `KDF_GCK(ck)`: three HMAC-SHA-256 keyed by `ck`, each over one byte.
fn kdf_gck(ck: &[u8; 32]) -> Keys {
    Keys {
        mk: hmac(ck, &[MESSAGE_KEY_INPUT]),
        cm: hmac(ck, &[COMMITMENT_INPUT]),
        next: hmac(ck, &[CHAIN_KEY_INPUT]),
    }
}

/// The chain key `steps` iterations after `ck` (`ck'` only).
fn stepped(ck: &[u8; 32], steps: u32) -> [u8; 32] {
    let mut ck = *ck;
    for _ in 0..steps {
        ck = hmac(&ck, &[CHAIN_KEY_INPUT]);
    }
    ck
}

/// Ed25519 strict verification (SPEC.md §11.5 step 6).
fn verify(key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let signature: [u8; 64] = signature.try_into().unwrap();
    VerifyingKey::from_bytes(key)
        .map(|k| {
            k.verify_strict(message, &Signature::from_bytes(&signature))
                .is_ok()
        })
        .unwrap_or(false)
}

/// A reader that checks each field as it is read (SPEC.md §5.1, §7).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if self.bytes.len() - self.at < n {
            return fail("Truncated");
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn a32(&mut self) -> Res<[u8; 32]> {
        Ok(self.take(32)?.try_into().unwrap())
    }

    /// An Ed25519 key validated as an identity key (SPEC.md §2.1).
    fn key(&mut self) -> Res<[u8; 32]> {
        let key = self.a32()?;
        if !identity_key_valid(&key) {
            return fail("InvalidPublicKey");
        }
        Ok(key)
    }

    /// The version byte, then the type byte.
    fn header(&mut self, version: u8, kind: u8) -> Res<()> {
        let got = self.u8()?;
        if got != version {
            return Err(format!("UnsupportedVersion({got})"));
        }
        let got = self.u8()?;
        if got != kind {
            return Err(format!("UnexpectedType({got})"));
        }
        Ok(())
    }

    fn finish(&self) -> Res<()> {
        if self.at != self.bytes.len() {
            return fail("TrailingData");
        }
        Ok(())
    }
}

/// A distribution's fields (SPEC.md §11.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Dist {
    group: [u8; 32],
    chain_id: u64,
    iteration: u32,
    ck: [u8; 32],
    signing: [u8; 32],
    binding: [u8; 64],
}

/// What a distribution's sender binding signs (SPEC.md §11.2): `GROUP_SENDER_LABEL ||
/// group id || chain id || signing public key || the sender's identity key`, 133 bytes.
fn binding_message(
    group: &[u8; 32],
    chain_id: u64,
    signing: &[u8; 32],
    sender: &[u8; 32],
) -> Vec<u8> {
    let out = [
        GROUP_SENDER_LABEL,
        group,
        &chain_id.to_be_bytes(),
        signing,
        sender,
    ]
    .concat();
    assert_eq!(out.len(), 133);
    out
}

impl Dist {
    fn bytes(&self) -> Vec<u8> {
        let out = [
            &[WIRE_VERSION, TYPE_DISTRIBUTION][..],
            &self.group,
            &self.chain_id.to_be_bytes(),
            &self.iteration.to_be_bytes(),
            &self.ck,
            &self.signing,
            &self.binding,
        ]
        .concat();
        assert_eq!(out.len(), DISTRIBUTION_LENGTH);
        out
    }

    /// The same fields with the signing key of `seed` and its binding to `sender`: a
    /// distribution whose binding verifies (only its other fields can be wrong).
    fn bound(mut self, seed: &[u8; 32], sender: &[u8; 32]) -> Dist {
        self.signing = public_key(seed);
        self.binding = ed25519_sign(
            seed,
            &binding_message(&self.group, self.chain_id, &self.signing, sender),
        );
        self
    }

    /// SPEC.md §11.2 parsing: version, type, the fields in order, the length.
    fn parse(bytes: &[u8]) -> Res<Dist> {
        let mut r = Reader::new(bytes);
        r.header(WIRE_VERSION, TYPE_DISTRIBUTION)?;
        let d = Dist {
            group: r.a32()?,
            chain_id: r.u64()?,
            iteration: r.u32()?,
            ck: r.a32()?,
            signing: r.key()?,
            binding: r.take(64)?.try_into().unwrap(),
        };
        r.finish()?;
        Ok(d)
    }
}

/// A group message's cleartext fields (SPEC.md §11.3).
struct Parsed {
    group: [u8; 32],
    chain_id: u64,
    iteration: u32,
    cm: [u8; 32],
}

/// SPEC.md §11.3 parsing: the length bound first, version, type, the shortest length, then
/// the fields.
fn parse_message(bytes: &[u8]) -> Res<Parsed> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return fail("TooLarge");
    }
    let mut r = Reader::new(bytes);
    r.header(WIRE_VERSION, TYPE_GROUP_MESSAGE)?;
    if bytes.len() <= OVERHEAD {
        return fail("Truncated");
    }
    Ok(Parsed {
        group: r.a32()?,
        chain_id: r.u64()?,
        iteration: r.u32()?,
        cm: r.a32()?,
    })
}

/// A device's state in a group (SPEC.md §11.1, stored as §7.11).
#[derive(Clone)]
struct Sender {
    group: [u8; 32],
    own: [u8; 32],
    padding: Pad,
    chain_id: u64,
    /// The next iteration; `u32::MAX`: exhausted.
    iteration: u32,
    ck: [u8; 32],
    seed: [u8; 32],
    /// Strictly ascending.
    members: Vec<[u8; 32]>,
}

/// One message as the model made it, with its intermediate values.
struct Sent {
    iteration: u32,
    ck: [u8; 32],
    keys: Keys,
    encoded: Vec<u8>,
    /// Ciphertext and tag.
    sealed: Vec<u8>,
    signature: [u8; 64],
    bytes: Vec<u8>,
}

impl Sender {
    /// A new group (SPEC.md §11.1): the members sorted, a chain from `random` (chain id,
    /// chain key, signing seed) at iteration 0, padding Padmé (the default).
    fn new(group: [u8; 32], own: [u8; 32], members: &[[u8; 32]], random: &[u8; 72]) -> Self {
        let mut members = members.to_vec();
        members.sort_unstable();
        let mut s = Sender {
            group,
            own,
            padding: Pad::Padme,
            chain_id: 0,
            iteration: 0,
            ck: [0; 32],
            seed: [0; 32],
            members,
        };
        s.chain_from(random, None);
        s
    }

    /// A new chain from 72 random bytes; its id is not `previous` (SPEC.md §11.1).
    fn chain_from(&mut self, random: &[u8; 72], previous: Option<u64>) {
        let mut id = u64::from_be_bytes(random[..8].try_into().unwrap());
        if Some(id) == previous {
            id = id.wrapping_add(1);
        }
        self.chain_id = id;
        self.iteration = 0;
        self.ck = random[8..40].try_into().unwrap();
        self.seed = random[40..].try_into().unwrap();
    }

    /// SPEC.md §11.6 rotation.
    fn rotate(&mut self, random: &[u8; 72]) {
        let previous = self.chain_id;
        self.chain_from(random, Some(previous));
    }

    fn signing_key(&self) -> [u8; 32] {
        public_key(&self.seed)
    }

    /// SPEC.md §7.11.
    fn stored(&self) -> Vec<u8> {
        let mut out = vec![STORAGE_VERSION, TYPE_GROUP];
        out.extend_from_slice(&self.group);
        out.extend_from_slice(&self.own);
        out.push(self.padding.byte());
        out.extend_from_slice(&self.chain_id.to_be_bytes());
        out.extend_from_slice(&self.iteration.to_be_bytes());
        out.extend_from_slice(&self.ck);
        out.extend_from_slice(&self.seed);
        out.extend_from_slice(&u32::try_from(self.members.len()).unwrap().to_be_bytes());
        for m in &self.members {
            out.extend_from_slice(m);
        }
        assert_eq!(out.len(), GROUP_FIXED_LENGTH + 32 * self.members.len());
        out
    }

    /// SPEC.md §7.11 loading, each field checked as it is read.
    fn load(bytes: &[u8]) -> Res<Sender> {
        if bytes.len() > MAX_GROUP_SIZE {
            return fail("TooLarge");
        }
        let mut r = Reader::new(bytes);
        r.header(STORAGE_VERSION, TYPE_GROUP)?;
        let group = r.a32()?;
        let own = r.key()?;
        let padding = match r.u8()? {
            0x00 => Pad::None,
            0x01 => Pad::Padme,
            _ => return fail("InvalidEncoding"),
        };
        let chain_id = r.u64()?;
        let iteration = r.u32()?;
        let ck = r.a32()?;
        let seed = r.a32()?;
        let m = r.u32()? as usize;
        if m > MAX_GROUP_MEMBERS {
            return fail("InvalidEncoding");
        }
        let mut members: Vec<[u8; 32]> = Vec::new();
        for _ in 0..m {
            let member = r.key()?;
            if members.last().is_some_and(|last| *last >= member) || member == own {
                return fail("InvalidEncoding");
            }
            members.push(member);
        }
        r.finish()?;
        Ok(Sender {
            group,
            own,
            padding,
            chain_id,
            iteration,
            ck,
            seed,
            members,
        })
    }

    /// The distribution at the current iteration (SPEC.md §11.2, §11.6), bound to the
    /// device itself.
    fn distribution(&self) -> Dist {
        Dist {
            group: self.group,
            chain_id: self.chain_id,
            iteration: self.iteration,
            ck: self.ck,
            signing: [0; 32],
            binding: [0; 64],
        }
        .bound(&self.seed, &self.own)
    }

    /// The same chain `iteration - self.iteration` steps later (messages sent in between
    /// that are not part of the file).
    fn at(&self, iteration: u32) -> Sender {
        assert!(iteration >= self.iteration);
        Sender {
            ck: stepped(&self.ck, iteration - self.iteration),
            iteration,
            ..self.clone()
        }
    }

    /// SPEC.md §11.3.
    fn encrypt(&mut self, plaintext: &[u8]) -> Res<Sent> {
        if plaintext.len() > MAX_PLAINTEXT_SIZE {
            return fail("TooLarge");
        }
        if self.iteration == u32::MAX {
            return fail("ChainExhausted");
        }
        let keys = kdf_gck(&self.ck);
        let prefix = self.prefix(self.iteration, &keys.cm);
        let encoded = encode(plaintext, self.padding);
        let sealed = message_seal(&keys.mk, &prefix, &encoded);
        let signed = [&prefix[..], &sealed].concat();
        let signature = ed25519_sign(&self.seed, &signed);
        let sent = Sent {
            iteration: self.iteration,
            ck: self.ck,
            keys,
            encoded,
            sealed,
            signature,
            bytes: [&signed[..], &signature].concat(),
        };
        self.ck = keys.next;
        self.iteration += 1;
        Ok(sent)
    }

    /// Bytes 0..78 of a message (SPEC.md §11.3).
    fn prefix(&self, iteration: u32, cm: &[u8; 32]) -> Vec<u8> {
        let out = [
            &[WIRE_VERSION, TYPE_GROUP_MESSAGE][..],
            &self.group,
            &self.chain_id.to_be_bytes(),
            &iteration.to_be_bytes(),
            cm,
        ]
        .concat();
        assert_eq!(out.len(), PREFIX_LENGTH);
        out
    }
}

/// Message keys by iteration: `iteration -> (mk, cm)`.
type Kept = BTreeMap<u32, ([u8; 32], [u8; 32])>;

/// A member's chain as a receiver holds it (SPEC.md §11.4).
#[derive(Clone, PartialEq, Eq, Debug)]
struct Chain {
    id: u64,
    signing: [u8; 32],
    next: u32,
    ck: [u8; 32],
    skipped: Kept,
}

impl Chain {
    /// Steps from `next` to `to` (at most `MAX_GROUP_JUMP` steps): the chain key at `to`
    /// and the keys of the iterations `max(next, to - 2000) .. to`; the earlier ones are
    /// stepped over (`ck'` only). SPEC.md §11.5 step 7, §11.4 step 7.
    fn walk(&self, to: u32) -> ([u8; 32], Kept) {
        let keep_from = to
            .saturating_sub(u32::try_from(MAX_GROUP_SKIPPED).unwrap())
            .max(self.next);
        let mut ck = stepped(&self.ck, keep_from - self.next);
        let mut kept = BTreeMap::new();
        for j in keep_from..to {
            let k = kdf_gck(&ck);
            kept.insert(j, (k.mk, k.cm));
            ck = k.next;
        }
        (ck, kept)
    }

    /// Moves the chain to `next` with chain key `ck`, storing `kept` and evicting the
    /// lowest iterations' keys beyond 2 000.
    fn advance(&mut self, next: u32, ck: [u8; 32], kept: Kept) {
        self.next = next;
        self.ck = ck;
        self.skipped.extend(kept);
        while self.skipped.len() > MAX_GROUP_SKIPPED {
            self.skipped.pop_first();
        }
    }

    /// SPEC.md §11.4 step 7: a distribution of a held chain.
    fn take(&mut self, d: &Dist) -> Res<Outcome> {
        if self.signing != d.signing {
            return fail("ConflictingChain");
        }
        if d.iteration < self.next {
            return Ok(Outcome::Known);
        }
        if d.iteration - self.next > MAX_GROUP_JUMP {
            self.next = d.iteration;
            self.ck = d.ck;
            return Ok(Outcome::Advanced);
        }
        let (ck, kept) = self.walk(d.iteration);
        if ck != d.ck {
            return fail("ConflictingChain");
        }
        if d.iteration == self.next {
            return Ok(Outcome::Known);
        }
        self.advance(d.iteration, ck, kept);
        Ok(Outcome::Advanced)
    }
}

/// One member's chains in one group (SPEC.md §11.4, stored as §7.12).
#[derive(Clone, PartialEq, Eq, Debug)]
struct Chains {
    group: [u8; 32],
    member: [u8; 32],
    retired: Vec<u64>,
    chains: Vec<Chain>,
}

/// What `process_distribution` did (SPEC.md §11.4 steps 6, 7).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Added(Option<u64>),
    Advanced,
    Known,
}

impl Chains {
    fn new(group: [u8; 32], member: [u8; 32]) -> Self {
        Chains {
            group,
            member,
            retired: Vec::new(),
            chains: Vec::new(),
        }
    }

    fn skipped(&self) -> usize {
        self.chains.iter().map(|c| c.skipped.len()).sum()
    }

    /// SPEC.md §7.12.
    fn stored(&self) -> Vec<u8> {
        let mut out = vec![STORAGE_VERSION, TYPE_MEMBER_CHAINS];
        out.extend_from_slice(&self.group);
        out.extend_from_slice(&self.member);
        out.push(u8::try_from(self.retired.len()).unwrap());
        out.push(u8::try_from(self.chains.len()).unwrap());
        for id in &self.retired {
            out.extend_from_slice(&id.to_be_bytes());
        }
        for c in &self.chains {
            out.extend_from_slice(&c.id.to_be_bytes());
            out.extend_from_slice(&c.signing);
            out.extend_from_slice(&c.next.to_be_bytes());
            out.extend_from_slice(&c.ck);
            out.extend_from_slice(&u32::try_from(c.skipped.len()).unwrap().to_be_bytes());
            for (i, (mk, cm)) in &c.skipped {
                out.extend_from_slice(&i.to_be_bytes());
                out.extend_from_slice(mk);
                out.extend_from_slice(cm);
            }
        }
        out
    }

    /// SPEC.md §7.12 loading, each field checked as it is read.
    fn load(bytes: &[u8]) -> Res<Chains> {
        if bytes.len() > MAX_CHAINS_SIZE {
            return fail("TooLarge");
        }
        let mut r = Reader::new(bytes);
        r.header(STORAGE_VERSION, TYPE_MEMBER_CHAINS)?;
        let group = r.a32()?;
        let member = r.key()?;
        let retired_count = usize::from(r.u8()?);
        let chain_count = usize::from(r.u8()?);
        if retired_count > MAX_RETIRED_CHAINS || chain_count > MAX_MEMBER_CHAINS {
            return fail("InvalidEncoding");
        }
        let mut retired: Vec<u64> = Vec::new();
        for _ in 0..retired_count {
            let id = r.u64()?;
            if retired.contains(&id) {
                return fail("InvalidEncoding");
            }
            retired.push(id);
        }
        let mut chains: Vec<Chain> = Vec::new();
        for _ in 0..chain_count {
            let id = r.u64()?;
            if retired.contains(&id) || chains.iter().any(|c| c.id == id) {
                return fail("InvalidEncoding");
            }
            let signing = r.key()?;
            let next = r.u32()?;
            let ck = r.a32()?;
            let k = r.u32()? as usize;
            if k > MAX_GROUP_SKIPPED {
                return fail("InvalidEncoding");
            }
            let mut skipped = BTreeMap::new();
            let mut last: Option<u32> = None;
            for _ in 0..k {
                let i = r.u32()?;
                if last.is_some_and(|l| l >= i) || i >= next {
                    return fail("InvalidEncoding");
                }
                last = Some(i);
                skipped.insert(i, (r.a32()?, r.a32()?));
            }
            chains.push(Chain {
                id,
                signing,
                next,
                ck,
                skipped,
            });
        }
        r.finish()?;
        Ok(Chains {
            group,
            member,
            retired,
            chains,
        })
    }

    /// SPEC.md §11.4 (with the sender binding of §11.2), in its order; an error changes
    /// nothing.
    fn process(&mut self, receiver: &Sender, sender: &[u8; 32], input: &[u8]) -> Res<Outcome> {
        let d = Dist::parse(input)?;
        if d.group != receiver.group {
            return fail("WrongGroup");
        }
        if self.group != receiver.group {
            return fail("WrongRecord");
        }
        if !receiver.members.contains(sender) {
            return fail("NotGroupMember");
        }
        if self.member != *sender {
            return fail("WrongRecord");
        }
        if d.iteration == u32::MAX {
            return fail("InvalidEncoding");
        }
        let message = binding_message(&d.group, d.chain_id, &d.signing, sender);
        if !verify(&d.signing, &message, &d.binding) {
            return fail("InvalidSignature");
        }
        if self.retired.contains(&d.chain_id) {
            return fail("DuplicateOrExpired");
        }
        if let Some(held) = self.chains.iter_mut().find(|c| c.id == d.chain_id) {
            return held.take(&d);
        }
        let mut evicted = None;
        if self.chains.len() == MAX_MEMBER_CHAINS {
            let old = self.chains.remove(0);
            if self.retired.len() == MAX_RETIRED_CHAINS {
                self.retired.remove(0);
            }
            self.retired.push(old.id);
            evicted = Some(old.id);
        }
        self.chains.push(Chain {
            id: d.chain_id,
            signing: d.signing,
            next: d.iteration,
            ck: d.ck,
            skipped: BTreeMap::new(),
        });
        Ok(Outcome::Added(evicted))
    }

    /// SPEC.md §11.5, in its order; an error changes nothing.
    fn decrypt(&mut self, receiver: &Sender, input: &[u8]) -> Res<Vec<u8>> {
        // 1-3
        let m = parse_message(input)?;
        if m.group != receiver.group {
            return fail("WrongGroup");
        }
        if self.group != receiver.group {
            return fail("WrongRecord");
        }
        if !receiver.members.contains(&self.member) {
            return fail("NotGroupMember");
        }
        // 4
        let Some(index) = self.chains.iter().position(|c| c.id == m.chain_id) else {
            if self.retired.contains(&m.chain_id) {
                return fail("DuplicateOrExpired");
            }
            return fail("UnknownChain");
        };
        let chain = &self.chains[index];
        let i = m.iteration;
        // 5
        let stored = if i < chain.next {
            match chain.skipped.get(&i) {
                Some(keys) => Some(*keys),
                None => return fail("DuplicateOrExpired"),
            }
        } else {
            if i == u32::MAX || i - chain.next > MAX_GROUP_JUMP {
                return fail("TooFarAhead");
            }
            None
        };
        // 6
        let end = input.len() - SIGNATURE_LENGTH;
        if !verify(&chain.signing, &input[..end], &input[end..]) {
            return fail("InvalidSignature");
        }
        // 7
        let (mk, cm, ahead) = match stored {
            Some((mk, cm)) => (mk, cm, None),
            None => {
                let (ck, kept) = chain.walk(i);
                let k = kdf_gck(&ck);
                (k.mk, k.cm, Some((k.next, kept)))
            }
        };
        if cm != m.cm {
            return fail("DecryptionFailed");
        }
        // 8
        let Some(encoded) = message_open(&mk, &input[..PREFIX_LENGTH], &input[PREFIX_LENGTH..end])
        else {
            return fail("DecryptionFailed");
        };
        let Some(plaintext) = decode(&encoded) else {
            return fail("DecryptionFailed");
        };
        // 9
        let chain = &mut self.chains[index];
        match ahead {
            None => {
                chain.skipped.remove(&i);
            }
            Some((next_ck, kept)) => chain.advance(i + 1, next_ck, kept),
        }
        Ok(plaintext)
    }
}

// ---------------------------------------------------------------------------------------
// The library, from the model's bytes
// ---------------------------------------------------------------------------------------

fn identity(key: &[u8; 32]) -> IdentityKey {
    IdentityKey::from_bytes(key).unwrap()
}

/// `Group::from_bytes` of a stored group the model wrote, required to re-encode.
fn library_group(stored: &[u8], what: &str) -> Group {
    let group = Group::from_bytes(stored).unwrap_or_else(|e| panic!("{FILE}: {what}: {e:?}"));
    assert_same(
        &format!("{FILE}: {what}: Group::to_bytes after from_bytes"),
        stored,
        &group.to_bytes(),
    );
    group
}

/// `MemberChains::from_bytes` of member chains the model wrote, required to re-encode.
fn library_chains(stored: &[u8], what: &str) -> MemberChains {
    let chains =
        MemberChains::from_bytes(stored).unwrap_or_else(|e| panic!("{FILE}: {what}: {e:?}"));
    assert_same(
        &format!("{FILE}: {what}: MemberChains::to_bytes after from_bytes"),
        stored,
        &chains.to_bytes(),
    );
    chains
}

fn outcome_of(o: DistributionOutcome) -> Outcome {
    match o {
        DistributionOutcome::Added { evicted } => Outcome::Added(evicted),
        DistributionOutcome::Advanced => Outcome::Advanced,
        DistributionOutcome::Known => Outcome::Known,
        other => panic!("{FILE}: an outcome SPEC.md 11.4 does not name: {other:?}"),
    }
}

fn error_name(e: doubleratchet::Error) -> String {
    format!("{e:?}")
}

// ---------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct GroupFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    constants: Constants,
    group_id: String,
    other_group_id: String,
    identities: Vec<IdentityJson>,
    chain_steps: Vec<ChainStepJson>,
    group_ops: Vec<GroupOpJson>,
    distributions: Vec<DistributionJson>,
    messages: Vec<MessageJson>,
    encrypt_limits: Vec<EncryptLimitJson>,
    receivers: Vec<ReceiverJson>,
    rejects: Vec<RejectJson>,
}

#[derive(Serialize)]
struct Constants {
    wire_version: String,
    storage_version: String,
    group_message_type: String,
    distribution_type: String,
    group_type: String,
    member_chains_type: String,
    message_key_input: String,
    commitment_input: String,
    chain_key_input: String,
    group_prefix_length: usize,
    group_message_overhead: usize,
    distribution_length: usize,
    group_fixed_length: usize,
    max_group_members: usize,
    max_group_size: usize,
    member_chains_fixed_length: usize,
    member_chain_fixed_length: usize,
    group_skipped_entry_length: usize,
    max_member_chains: usize,
    max_retired_chains: usize,
    max_group_skipped: usize,
    max_group_jump: u32,
    max_member_chains_size: usize,
    max_message_size: usize,
    max_plaintext_size: usize,
}

#[derive(Serialize)]
struct IdentityJson {
    name: &'static str,
    seed: String,
    identity_key: String,
}

#[derive(Serialize)]
struct ChainStepJson {
    chain: &'static str,
    iteration: u32,
    chain_key: String,
    message_key: String,
    commitment: String,
    next_chain_key: String,
}

#[derive(Serialize)]
struct GroupOpJson {
    name: &'static str,
    description: String,
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    own: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    random: Option<String>,
    chain_id: u64,
    group_after: String,
    distribution: String,
}

#[derive(Serialize)]
struct DistributionJson {
    name: &'static str,
    description: String,
    from_group: String,
    group_id: String,
    chain_id: u64,
    iteration: u32,
    chain_key: String,
    signing_key: String,
    sender_key: String,
    binding_message: String,
    binding: String,
    bytes: String,
}

#[derive(Serialize)]
struct MessageJson {
    name: &'static str,
    description: String,
    group: String,
    padding: &'static str,
    chain_id: u64,
    iteration: u32,
    plaintext: String,
    chain_key: String,
    message_key: String,
    commitment: String,
    next_chain_key: String,
    encoded: String,
    prefix: String,
    ciphertext: String,
    signing_key: String,
    signature: String,
    bytes: String,
    group_after: String,
}

#[derive(Serialize)]
struct EncryptLimitJson {
    name: &'static str,
    description: String,
    group: String,
    plaintext_zeros: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_after: Option<String>,
}

#[derive(Serialize)]
struct ReceiverJson {
    name: &'static str,
    description: String,
    group: String,
    member: String,
    chains_initial: String,
    steps: Vec<StepJson>,
}

#[derive(Serialize)]
struct StepJson {
    op: &'static str,
    description: String,
    input_from: String,
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    /// `Some(None)`: added, nothing evicted (JSON null).
    #[serde(skip_serializing_if = "Option::is_none")]
    evicted: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_error: Option<String>,
    chain_ids: Vec<u64>,
    retired: Vec<u64>,
    stored_skipped: usize,
    chains_after_length: usize,
    chains_after_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chains_after: Option<String>,
}

#[derive(Serialize)]
struct RejectJson {
    name: &'static str,
    description: String,
    operation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_key: Option<String>,
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_zero_extended_to: Option<usize>,
    expected_error: &'static str,
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn draw<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut out = [0u8; N];
    rng.try_fill_bytes(&mut out).unwrap();
    out
}

/// `len` bytes of `label` repeated: recognisable plaintexts of any length.
fn plaintext(label: &str, len: usize) -> Vec<u8> {
    label.bytes().cycle().take(len).collect()
}

/// The message of a plan entry, sent by the model and by the library from the model's
/// stored group; returns the JSON and the model's message.
fn send(
    sender: &mut Sender,
    name: &'static str,
    description: String,
    pt: &[u8],
) -> (MessageJson, Sent) {
    let before = sender.stored();
    let mut library = library_group(&before, name);
    assert_eq!(
        library.padding(),
        sender.padding.library(),
        "{FILE}: {name}"
    );
    let sent = sender.encrypt(pt).unwrap();
    let made = library
        .encrypt(pt)
        .unwrap_or_else(|e| panic!("{FILE}: {name}: {e:?}"));
    assert_same(
        &format!("{FILE}: {name}: Group::encrypt"),
        &sent.bytes,
        &made,
    );
    let after = sender.stored();
    assert_same(
        &format!("{FILE}: {name}: the group after Group::encrypt"),
        &after,
        &library.to_bytes(),
    );
    // The message parses to its fields.
    let parsed = GroupMessage::parse(&made).unwrap();
    assert_eq!(parsed.group_id().as_bytes(), &sender.group);
    assert_eq!(parsed.chain_id(), sender.chain_id);
    assert_eq!(parsed.iteration(), sent.iteration);
    assert_eq!(sent.bytes.len(), OVERHEAD + sent.encoded.len());
    let json = MessageJson {
        name,
        description,
        group: hex(&before),
        padding: sender.padding.name(),
        chain_id: sender.chain_id,
        iteration: sent.iteration,
        plaintext: hex(pt),
        chain_key: hex(&sent.ck),
        message_key: hex(&sent.keys.mk),
        commitment: hex(&sent.keys.cm),
        next_chain_key: hex(&sent.keys.next),
        encoded: hex(&sent.encoded),
        prefix: hex(&sent.bytes[..PREFIX_LENGTH]),
        ciphertext: hex(&sent.sealed),
        signing_key: hex(&sender.signing_key()),
        signature: hex(&sent.signature),
        bytes: hex(&sent.bytes),
        group_after: hex(&after),
    };
    (json, sent)
}

/// A distribution of `sender`'s current state: the model's bytes, required to be what the
/// library's `Group::distribution` of the stored group gives, and to parse back.
fn distribution(sender: &Sender, name: &'static str, description: String) -> DistributionJson {
    let d = sender.distribution();
    let bytes = d.bytes();
    let stored = sender.stored();
    let library = library_group(&stored, name).distribution();
    assert_same(
        &format!("{FILE}: {name}: Group::distribution"),
        &bytes,
        &library.to_bytes(),
    );
    let parsed = Distribution::from_bytes(&bytes).unwrap();
    assert_eq!(&parsed.to_bytes()[..], &bytes[..], "{FILE}: {name}");
    assert_eq!(parsed.group_id().as_bytes(), &d.group);
    assert_eq!(parsed.chain_id(), d.chain_id);
    assert_eq!(parsed.iteration(), d.iteration);
    assert_eq!(parsed.signing_key().as_bytes(), &d.signing);
    assert_eq!(Dist::parse(&bytes), Ok(d));
    DistributionJson {
        name,
        description,
        from_group: hex(&stored),
        group_id: hex(&d.group),
        chain_id: d.chain_id,
        iteration: d.iteration,
        chain_key: hex(&d.ck),
        signing_key: hex(&d.signing),
        sender_key: hex(&sender.own),
        binding_message: hex(&binding_message(
            &d.group,
            d.chain_id,
            &d.signing,
            &sender.own,
        )),
        binding: hex(&d.binding),
        bytes: hex(&bytes),
    }
}

/// A group operation that changes the sending chain or the members.
enum GroupOp<'a> {
    New {
        group: [u8; 32],
        own: [u8; 32],
        members: &'a [[u8; 32]],
        random: [u8; 72],
    },
    Rotate([u8; 72]),
    Remove([u8; 32], [u8; 72]),
    Add([u8; 32]),
    AfterRestore(&'a [[u8; 32]], [u8; 72]),
}

/// Runs `op` on the model (`sender`, replaced for `New`) and on the library (from the
/// model's stored group, with a `ListedRng` holding exactly the model's random bytes), and
/// requires the same stored group and distribution.
fn group_op(
    sender: &mut Option<Sender>,
    name: &'static str,
    description: String,
    op: GroupOp<'_>,
) -> GroupOpJson {
    let before = sender.as_ref().map(Sender::stored);
    let (op_name, library, random, own, members, device) = match op {
        GroupOp::New {
            group,
            own,
            members,
            random,
        } => {
            *sender = Some(Sender::new(group, own, members, &random));
            let mut rng = ListedRng::new(&random);
            let listed: Vec<IdentityKey> = members.iter().map(identity).collect();
            let library = Group::new(
                GroupId::from_bytes(group),
                &identity(&own),
                &listed,
                &mut rng,
            )
            .unwrap();
            assert_eq!(rng.calls, [72], "{FILE}: {name}: one draw of 72 bytes");
            (
                "Group::new",
                library,
                Some(random),
                Some(own),
                Some(members.to_vec()),
                None,
            )
        }
        GroupOp::Rotate(random) => {
            let s = sender.as_mut().unwrap();
            let mut library = library_group(&s.stored(), name);
            s.rotate(&random);
            let mut rng = ListedRng::new(&random);
            let d = library.rotate(&mut rng).unwrap();
            assert_eq!(rng.calls, [72], "{FILE}: {name}: one draw of 72 bytes");
            assert_same(
                &format!("{FILE}: {name}: the distribution rotate returns"),
                &s.distribution().bytes(),
                &d.to_bytes(),
            );
            ("Group::rotate", library, Some(random), None, None, None)
        }
        GroupOp::Remove(device, random) => {
            let s = sender.as_mut().unwrap();
            let mut library = library_group(&s.stored(), name);
            let at = s.members.iter().position(|m| *m == device).unwrap();
            s.members.remove(at);
            s.rotate(&random);
            let mut rng = ListedRng::new(&random);
            let d = library.remove_member(&identity(&device), &mut rng).unwrap();
            assert_eq!(rng.calls, [72], "{FILE}: {name}: one draw of 72 bytes");
            assert_same(
                &format!("{FILE}: {name}: the distribution remove_member returns"),
                &s.distribution().bytes(),
                &d.to_bytes(),
            );
            (
                "Group::remove_member",
                library,
                Some(random),
                None,
                None,
                Some(device),
            )
        }
        GroupOp::Add(device) => {
            let s = sender.as_mut().unwrap();
            let mut library = library_group(&s.stored(), name);
            s.members.push(device);
            s.members.sort_unstable();
            let d = library.add_member(&identity(&device)).unwrap();
            assert_same(
                &format!("{FILE}: {name}: the distribution add_member returns"),
                &s.distribution().bytes(),
                &d.to_bytes(),
            );
            ("Group::add_member", library, None, None, None, Some(device))
        }
        GroupOp::AfterRestore(members, random) => {
            let s = sender.as_mut().unwrap();
            let mut library = library_group(&s.stored(), name);
            s.members = members.to_vec();
            s.members.sort_unstable();
            s.rotate(&random);
            let mut rng = ListedRng::new(&random);
            let listed: Vec<IdentityKey> = members.iter().map(identity).collect();
            let d = library.after_restore(&listed, &mut rng).unwrap();
            assert_eq!(rng.calls, [72], "{FILE}: {name}: one draw of 72 bytes");
            assert_same(
                &format!("{FILE}: {name}: the distribution after_restore returns"),
                &s.distribution().bytes(),
                &d.to_bytes(),
            );
            (
                "Group::after_restore",
                library,
                Some(random),
                None,
                Some(members.to_vec()),
                None,
            )
        }
    };
    let s = sender.as_ref().unwrap();
    let after = s.stored();
    assert_same(
        &format!("{FILE}: {name}: the stored group after {op_name}"),
        &after,
        &library.to_bytes(),
    );
    assert_same(
        &format!("{FILE}: {name}: Group::distribution after {op_name}"),
        &s.distribution().bytes(),
        &library.distribution().to_bytes(),
    );
    assert_eq!(Sender::load(&after).map(|l| l.stored()), Ok(after.clone()));
    GroupOpJson {
        name,
        description,
        op: op_name,
        group_before: before.as_deref().map(hex),
        own: own.as_ref().map(|k| hex(k)),
        members: members.map(|m| m.iter().map(|k| hex(k)).collect()),
        device: device.as_ref().map(|k| hex(k)),
        random: random.as_ref().map(|r| hex(r)),
        chain_id: s.chain_id,
        group_after: hex(&after),
        distribution: hex(&s.distribution().bytes()),
    }
}

/// A receiver: the model's member chains and the library's, side by side.
struct Receiving {
    name: &'static str,
    group: Sender,
    library_group: Group,
    model: Chains,
    library: MemberChains,
    steps: Vec<StepJson>,
}

/// What a receiving step must give.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Added(Option<u64>),
    Advanced,
    Known,
    Plaintext,
    Error(&'static str),
}

impl Receiving {
    fn new(name: &'static str, group: &Sender, member: [u8; 32]) -> Self {
        let model = Chains::new(group.group, member);
        let library = MemberChains::new(&GroupId::from_bytes(group.group), &identity(&member));
        assert_same(
            &format!("{FILE}: {name}: MemberChains::new"),
            &model.stored(),
            &library.to_bytes(),
        );
        Receiving {
            name,
            group: group.clone(),
            library_group: library_group(&group.stored(), name),
            model,
            library,
            steps: Vec::new(),
        }
    }

    fn step_expecting(
        &mut self,
        description: &str,
        input_from: &str,
        input: &[u8],
        distribution: bool,
        expect: Option<Expect>,
    ) {
        let what = format!(
            "{FILE}: {}: step {} ({description})",
            self.name,
            self.steps.len()
        );
        let before = self.model.stored();
        let member = self.model.member;
        let (got, outcome, evicted, plaintext, error) = if distribution {
            let model = self.model.process(&self.group, &member, input);
            let library = self
                .library_group
                .process_distribution(&identity(&member), input, &mut self.library)
                .map(outcome_of)
                .map_err(error_name);
            assert_eq!(model, library, "{what}: the model and the library");
            match model {
                Ok(Outcome::Added(evicted)) => (
                    Expect::Added(evicted),
                    Some("added"),
                    Some(evicted),
                    None,
                    None,
                ),
                Ok(Outcome::Advanced) => (Expect::Advanced, Some("advanced"), None, None, None),
                Ok(Outcome::Known) => (Expect::Known, Some("known"), None, None, None),
                Err(e) => (error_expect(&e), None, None, None, Some(e)),
            }
        } else {
            let model = self.model.decrypt(&self.group, input);
            let library = self
                .library_group
                .decrypt(&mut self.library, input)
                .map_err(error_name);
            assert_eq!(model, library, "{what}: the model and the library");
            match model {
                Ok(pt) => (Expect::Plaintext, None, None, Some(hex(&pt)), None),
                Err(e) => (error_expect(&e), None, None, None, Some(e)),
            }
        };
        if let Some(expect) = expect {
            assert_eq!(got, expect, "{what}");
        }
        let after = self.model.stored();
        assert_same(
            &format!("{what}: the stored chains"),
            &after,
            &self.library.to_bytes(),
        );
        if matches!(got, Expect::Known | Expect::Error(_)) {
            assert_eq!(before, after, "{what}: nothing changes");
        }
        assert_eq!(Chains::load(&after).as_ref(), Ok(&self.model), "{what}");
        assert_eq!(
            self.library.chain_ids().collect::<Vec<_>>(),
            self.model.chains.iter().map(|c| c.id).collect::<Vec<_>>(),
            "{what}"
        );
        assert_eq!(
            self.library.stored_skipped(),
            self.model.skipped(),
            "{what}"
        );
        self.steps.push(StepJson {
            op: if distribution {
                "Group::process_distribution"
            } else {
                "Group::decrypt"
            },
            description: description.to_owned(),
            input_from: input_from.to_owned(),
            input: hex(input),
            outcome,
            evicted,
            plaintext,
            expected_error: error,
            chain_ids: self.model.chains.iter().map(|c| c.id).collect(),
            retired: self.model.retired.clone(),
            stored_skipped: self.model.skipped(),
            chains_after_length: after.len(),
            chains_after_sha256: sha256(&after),
            chains_after: (after.len() <= LISTED_STATE_LENGTH).then(|| hex(&after)),
        });
    }

    fn json(self, description: String) -> ReceiverJson {
        ReceiverJson {
            name: self.name,
            description,
            group: hex(&self.group.stored()),
            member: hex(&self.model.member),
            chains_initial: hex(&Chains::new(self.group.group, self.model.member).stored()),
            steps: self.steps,
        }
    }
}

/// The error names this file uses, as `&'static str`.
fn error_expect(e: &str) -> Expect {
    const NAMES: &[&str] = &[
        "Truncated",
        "TrailingData",
        "InvalidEncoding",
        "TooLarge",
        "InvalidPublicKey",
        "InvalidSignature",
        "DuplicateOrExpired",
        "TooFarAhead",
        "DecryptionFailed",
        "ChainExhausted",
        "WrongRecord",
        "WrongGroup",
        "NotGroupMember",
        "UnknownChain",
        "ConflictingChain",
    ];
    match NAMES.iter().find(|n| **n == e) {
        Some(n) => Expect::Error(n),
        None => panic!("{FILE}: unexpected error {e}"),
    }
}

/// What a reject runs.
enum RejectOp<'a> {
    ParseDistribution,
    ProcessDistribution {
        group: &'a [u8],
        chains: &'a [u8],
        sender: [u8; 32],
    },
    ParseMessage,
    Decrypt {
        group: &'a [u8],
        chains: &'a [u8],
    },
    LoadGroup,
    LoadChains,
    AddMember {
        group: &'a [u8],
    },
}

struct Rejects {
    out: Vec<RejectJson>,
}

impl Rejects {
    /// Runs one case through the model and the library; both must give `expected`, and a
    /// failed `process_distribution` or `decrypt` must leave the chains as they were.
    fn case(
        &mut self,
        name: &'static str,
        description: impl Into<String>,
        op: RejectOp<'_>,
        input: Vec<u8>,
        expected: &'static str,
    ) {
        self.case_extended(name, description, op, input, None, expected);
    }

    fn case_extended(
        &mut self,
        name: &'static str,
        description: impl Into<String>,
        op: RejectOp<'_>,
        input: Vec<u8>,
        extended_to: Option<usize>,
        expected: &'static str,
    ) {
        let mut full = input.clone();
        if let Some(len) = extended_to {
            assert!(len > full.len());
            full.resize(len, 0);
        }
        let (operation, model, library, group, chains, sender) = match &op {
            RejectOp::ParseDistribution => (
                "Distribution::from_bytes",
                Dist::parse(&full).err(),
                Distribution::from_bytes(&full).err().map(error_name),
                None,
                None,
                None,
            ),
            RejectOp::ProcessDistribution {
                group,
                chains,
                sender,
            } => {
                let receiver = Sender::load(group).unwrap();
                let mut model = Chains::load(chains).unwrap();
                let model = model.process(&receiver, sender, &full).err();
                let mut library = library_chains(chains, name);
                let result = library_group(group, name)
                    .process_distribution(&identity(sender), &full, &mut library)
                    .err()
                    .map(error_name);
                assert_eq!(
                    &library.to_bytes()[..],
                    *chains,
                    "{FILE}: {name}: a failed call changes nothing"
                );
                (
                    "Group::process_distribution",
                    model,
                    result,
                    Some(hex(group)),
                    Some(hex(chains)),
                    Some(hex(sender)),
                )
            }
            RejectOp::ParseMessage => (
                "GroupMessage::parse",
                parse_message(&full).err(),
                GroupMessage::parse(&full).err().map(error_name),
                None,
                None,
                None,
            ),
            RejectOp::Decrypt { group, chains } => {
                let receiver = Sender::load(group).unwrap();
                let mut model = Chains::load(chains).unwrap();
                let model = model.decrypt(&receiver, &full).err();
                let mut library = library_chains(chains, name);
                let result = library_group(group, name)
                    .decrypt(&mut library, &full)
                    .err()
                    .map(error_name);
                assert_eq!(
                    &library.to_bytes()[..],
                    *chains,
                    "{FILE}: {name}: a failed call changes nothing"
                );
                (
                    "Group::decrypt",
                    model,
                    result,
                    Some(hex(group)),
                    Some(hex(chains)),
                    None,
                )
            }
            RejectOp::LoadGroup => (
                "Group::from_bytes",
                Sender::load(&full).err(),
                Group::from_bytes(&full).err().map(error_name),
                None,
                None,
                None,
            ),
            RejectOp::LoadChains => (
                "MemberChains::from_bytes",
                Chains::load(&full).err(),
                MemberChains::from_bytes(&full).err().map(error_name),
                None,
                None,
                None,
            ),
            RejectOp::AddMember { group } => {
                let device: [u8; 32] = full.clone().try_into().unwrap();
                let model = Sender::load(group).unwrap();
                // SPEC.md 11.6: an exhausted chain's distribution would be refused.
                let model = (model.iteration == u32::MAX).then(|| "ChainExhausted".to_owned());
                let mut library = library_group(group, name);
                let result = library.add_member(&identity(&device)).err().map(error_name);
                assert_eq!(
                    &library.to_bytes()[..],
                    *group,
                    "{FILE}: {name}: a failed call changes nothing"
                );
                (
                    "Group::add_member",
                    model,
                    result,
                    Some(hex(group)),
                    None,
                    None,
                )
            }
        };
        assert_eq!(
            model.as_deref(),
            Some(expected),
            "{FILE}: reject {name}: the model of SPEC.md gives {model:?}"
        );
        assert_eq!(
            library.as_deref(),
            Some(expected),
            "{FILE}: reject {name}: {operation} gives {library:?}"
        );
        assert!(
            self.out.iter().all(|r| r.name != name),
            "{FILE}: reject {name} twice"
        );
        self.out.push(RejectJson {
            name,
            description: description.into(),
            operation,
            group,
            chains,
            sender_key: sender,
            input: hex(&input),
            input_zero_extended_to: extended_to,
            expected_error: expected,
        });
    }
}

/// `d` with its binding made by `seed` (whatever the signing key) over the right message for
/// `sender`.
fn binding_over_with(d: &Dist, seed: &[u8; 32], sender: &[u8; 32]) -> Vec<u8> {
    let mut d = *d;
    d.binding = ed25519_sign(
        seed,
        &binding_message(&d.group, d.chain_id, &d.signing, sender),
    );
    d.bytes()
}

/// `message` with bytes `at..at + with.len()` replaced and signed again by `seed` over
/// everything before the signature: only the change can make it fail.
fn resigned(seed: &[u8; 32], message: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let changed = replace_at(message, at, with);
    let end = changed.len() - SIGNATURE_LENGTH;
    let signature = ed25519_sign(seed, &changed[..end]);
    [&changed[..end], &signature[..]].concat()
}

/// A message of `sender`'s chain at iteration `i` whose body is `ENCRYPT(mk, encoded,
/// prefix)` under the chain's genuine key: the tag verifies, the signature too.
fn with_encoded(sender: &Sender, i: u32, encoded: &[u8]) -> Vec<u8> {
    let keys = kdf_gck(&stepped(&sender.ck, i - sender.iteration));
    let prefix = sender.prefix(i, &keys.cm);
    let signed = [&prefix[..], &message_seal(&keys.mk, &prefix, encoded)].concat();
    let signature = ed25519_sign(&sender.seed, &signed);
    [&signed[..], &signature[..]].concat()
}

pub(super) fn generate() -> (String, String) {
    let mut rng = ChaCha20Rng::seed_from_u64(SEEDS);
    let group_id: [u8; 32] = draw(&mut rng);
    let other_group: [u8; 32] = draw(&mut rng);
    let names = ["alice", "bob", "carol", "dave", "eve"];
    let seeds: Vec<[u8; 32]> = names.iter().map(|_| draw(&mut rng)).collect();
    let keys: Vec<[u8; 32]> = seeds.iter().map(public_key).collect();
    let (alice, bob, carol, dave, eve) = (keys[0], keys[1], keys[2], keys[3], keys[4]);
    let identities = names
        .iter()
        .zip(&seeds)
        .map(|(name, seed)| IdentityJson {
            name,
            seed: hex(seed),
            identity_key: hex(&public_key(seed)),
        })
        .collect();

    let mut ops = Vec::new();
    let mut distributions = Vec::new();
    let mut messages = Vec::new();
    let mut by_name: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();

    // Alice's group and Bob's, from Group::new.
    let mut alice_group: Option<Sender> = None;
    ops.push(group_op(
        &mut alice_group,
        "alice_new",
        "Alice's group: Group::new(group_id, alice, [dave, carol, bob]) with the 72 random \
         bytes listed (chain id, chain key, signing seed, SPEC.md 11.1): chain a1 at \
         iteration 0, members sorted by their bytes, padding Padme"
            .into(),
        GroupOp::New {
            group: group_id,
            own: alice,
            members: &[dave, carol, bob],
            random: draw(&mut rng),
        },
    ));
    let mut bob_group: Option<Sender> = None;
    ops.push(group_op(
        &mut bob_group,
        "bob_new",
        "Bob's group: Group::new(group_id, bob, [alice, carol, dave]); the receiver of \
         every receiving step and decrypt reject"
            .into(),
        GroupOp::New {
            group: group_id,
            own: bob,
            members: &[alice, carol, dave],
            random: draw(&mut rng),
        },
    ));
    let bob_group = bob_group.unwrap();
    let mut alice_state = alice_group.unwrap();
    let a1 = alice_state.clone();
    distributions.push(distribution(
        &a1,
        "a1_at_0",
        "chain a1 at iteration 0: what Alice sends each member after Group::new".into(),
    ));

    // Chain a1's messages: (iteration, padding, plaintext length).
    let plan: [(u32, Pad, usize, &'static str); 16] = [
        (0, Pad::Padme, 0, "a1_0"),
        (1, Pad::Padme, 63, "a1_1"),
        (2, Pad::Padme, 64, "a1_2"),
        (3, Pad::None, 1, "a1_3"),
        (4, Pad::None, 100, "a1_4"),
        (5, Pad::Padme, 1000, "a1_5"),
        (6, Pad::Padme, 20, "a1_6"),
        (7, Pad::None, 0, "a1_7"),
        (8, Pad::Padme, 65, "a1_8"),
        (9, Pad::Padme, 31, "a1_9"),
        (10, Pad::Padme, 12, "a1_10"),
        (50, Pad::None, 5, "a1_50"),
        (2109, Pad::Padme, 40, "a1_2109"),
        (2110, Pad::Padme, 41, "a1_2110"),
        (27111, Pad::None, 70, "a1_27111"),
        (52113, Pad::Padme, 33, "a1_52113"),
    ];
    let mut sent_a1: BTreeMap<u32, Sent> = BTreeMap::new();
    let mut older_copy: Option<Sender> = None;
    for (i, pad, len, name) in plan {
        let mut description = String::new();
        if i > alice_state.iteration {
            description.push_str(&format!(
                "Alice's group at iteration {i} (its chain key stepped {} times from \
                 iteration {}; those messages are not in this file); ",
                i - alice_state.iteration,
                alice_state.iteration
            ));
            alice_state = alice_state.at(i);
        }
        if pad != alice_state.padding {
            // The app's Group::set_padding between two messages: only the byte changes.
            let mut library = library_group(&alice_state.stored(), name);
            library.set_padding(pad.library());
            alice_state.padding = pad;
            assert_same(
                &format!("{FILE}: {name}: Group::set_padding"),
                &alice_state.stored(),
                &library.to_bytes(),
            );
            description.push_str(&format!(
                "padding set to {} (Group::set_padding) before it; ",
                pad.name()
            ));
        }
        if i == 52113 {
            distributions.push(distribution(
                &alice_state,
                "a1_at_52113",
                "chain a1 at iteration 52113: what Alice sends a member that fell too far \
                 behind"
                    .into(),
            ));
        }
        if i == 9 {
            distributions.push(distribution(
                &alice_state,
                "a1_at_9",
                "chain a1 at iteration 9: a later distribution of the same chain (same id \
                 and signing key, later iteration and chain key)"
                    .into(),
            ));
        }
        description.push_str(&format!(
            "chain a1, iteration {i}, a {len}-byte plaintext, padding {}",
            pad.name()
        ));
        let pt = plaintext(&format!("group a1-{i} "), len);
        if i == 3 {
            older_copy = Some(alice_state.clone());
        }
        let (json, sent) = send(&mut alice_state, name, description, &pt);
        by_name.insert(name, sent.bytes.clone());
        sent_a1.insert(i, sent);
        messages.push(json);
    }

    // Rotations and membership.
    let mut alice_opt = Some(alice_state);
    ops.push(group_op(
        &mut alice_opt,
        "alice_rotate_a2",
        "Group::rotate: chain a2 at iteration 0".into(),
        GroupOp::Rotate(draw(&mut rng)),
    ));
    let a2_id = alice_opt.as_ref().unwrap().chain_id;
    let a2 = alice_opt.clone().unwrap();
    let mut colliding: [u8; 72] = draw(&mut rng);
    colliding[..8].copy_from_slice(&a2_id.to_be_bytes());
    ops.push(group_op(
        &mut alice_opt,
        "alice_rotate_a3_colliding_id",
        "Group::rotate with random bytes whose chain id equals the current chain's (a2): the \
         new chain a3 takes that id plus one (SPEC.md 11.1)"
            .into(),
        GroupOp::Rotate(colliding),
    ));
    assert_eq!(alice_opt.as_ref().unwrap().chain_id, a2_id.wrapping_add(1));
    let a3 = alice_opt.clone().unwrap();
    ops.push(group_op(
        &mut alice_opt,
        "alice_rotate_a4",
        "Group::rotate: chain a4".into(),
        GroupOp::Rotate(draw(&mut rng)),
    ));
    let a4 = alice_opt.clone().unwrap();
    ops.push(group_op(
        &mut alice_opt,
        "alice_rotate_a5",
        "Group::rotate: chain a5".into(),
        GroupOp::Rotate(draw(&mut rng)),
    ));
    let a5 = alice_opt.clone().unwrap();
    ops.push(group_op(
        &mut alice_opt,
        "alice_remove_dave_a6",
        "Group::remove_member(dave): dave leaves the list and the chain rotates to a6 \
         (SPEC.md 11.6)"
            .into(),
        GroupOp::Remove(dave, draw(&mut rng)),
    ));
    let a6 = alice_opt.clone().unwrap();
    for (name, d) in [
        ("a2", &a2),
        ("a3", &a3),
        ("a4", &a4),
        ("a5", &a5),
        ("a6", &a6),
    ] {
        distributions.push(distribution(
            d,
            name,
            format!("chain {name} at iteration 0, as Alice's group returns it"),
        ));
    }
    let mut alice_state = alice_opt.take().unwrap();
    for (i, len, name) in [(0u32, 10usize, "a6_0"), (1, 11, "a6_1"), (2, 12, "a6_2")] {
        let pt = plaintext(&format!("group a6-{i} "), len);
        let (json, sent) = send(
            &mut alice_state,
            name,
            format!("chain a6, iteration {i}, a {len}-byte plaintext, padding padme"),
            &pt,
        );
        by_name.insert(name, sent.bytes);
        messages.push(json);
    }
    let mut alice_opt = Some(alice_state);
    let mut later: Vec<Sender> = Vec::new();
    const LATER: [&str; 16] = [
        "a7", "a8", "a9", "a10", "a11", "a12", "a13", "a14", "a15", "a16", "a17", "a18", "a19",
        "a20", "a21", "a22",
    ];
    const LATER_OPS: [&str; 16] = [
        "alice_rotate_a7",
        "alice_rotate_a8",
        "alice_rotate_a9",
        "alice_rotate_a10",
        "alice_rotate_a11",
        "alice_rotate_a12",
        "alice_rotate_a13",
        "alice_rotate_a14",
        "alice_rotate_a15",
        "alice_rotate_a16",
        "alice_rotate_a17",
        "alice_rotate_a18",
        "alice_rotate_a19",
        "alice_rotate_a20",
        "alice_rotate_a21",
        "alice_rotate_a22",
    ];
    for (name, op) in LATER.iter().zip(LATER_OPS) {
        ops.push(group_op(
            &mut alice_opt,
            op,
            format!("Group::rotate: chain {name}"),
            GroupOp::Rotate(draw(&mut rng)),
        ));
        let s = alice_opt.clone().unwrap();
        distributions.push(distribution(
            &s,
            name,
            format!("chain {name} at iteration 0, as Alice's group returns it"),
        ));
        later.push(s);
    }
    ops.push(group_op(
        &mut alice_opt,
        "alice_add_eve",
        "Group::add_member(eve): eve joins the list; the distribution returned is the current \
         chain's (a22) at its current iteration"
            .into(),
        GroupOp::Add(eve),
    ));
    let mut restored = older_copy;
    ops.push(group_op(
        &mut restored,
        "alice_after_restore",
        "Alice's group restored from an older copy (chain a1 at iteration 3, dave still \
         listed: the group of message a1_3): Group::after_restore([carol, bob]) replaces the \
         members with the current list and rotates (SPEC.md 11.6)"
            .into(),
        GroupOp::AfterRestore(&[carol, bob], draw(&mut rng)),
    ));

    // Carol's group at the end of its chain: a stored group the model wrote, chain id
    // 2^64 - 1, next iteration 2^32 - 2 (the last usable one).
    let mut carol_group = Sender {
        group: group_id,
        own: carol,
        padding: Pad::None,
        chain_id: u64::MAX,
        iteration: u32::MAX - 1,
        ck: draw(&mut rng),
        seed: draw(&mut rng),
        members: {
            let mut m = vec![alice, bob, dave];
            m.sort_unstable();
            m
        },
    };
    let carol_edge = carol_group.clone();
    distributions.push(distribution(
        &carol_edge,
        "c_edge",
        "Carol's chain (id 0xffffffffffffffff) at iteration 0xfffffffe, the last iteration \
         a message can have"
            .into(),
    ));
    let (json, c_last) = send(
        &mut carol_group,
        "c_last",
        "Carol's stored group (written by the model) at iteration 0xfffffffe: the chain's \
         last message; the group after it is exhausted (next iteration 0xffffffff)"
            .into(),
        b"the last message of a chain",
    );
    messages.push(json);
    distributions.push(distribution(
        &carol_group,
        "c_exhausted",
        "the distribution an exhausted group gives (iteration 0xffffffff): it parses, but \
         receivers refuse it (SPEC.md 11.4 step 4)"
            .into(),
    ));
    let carol_exhausted = carol_group.clone();
    let mut wrap: [u8; 72] = draw(&mut rng);
    wrap[..8].copy_from_slice(&u64::MAX.to_be_bytes());
    let mut carol_opt = Some(carol_group);
    ops.push(group_op(
        &mut carol_opt,
        "carol_rotate_wrapping",
        "Carol rotates her exhausted chain (SPEC.md 11.6) with random bytes whose chain id \
         equals the current one, 0xffffffffffffffff: the new id is that plus one, wrapping, \
         0"
        .into(),
        GroupOp::Rotate(wrap),
    ));
    let carol_rotated = carol_opt.unwrap();
    assert_eq!(carol_rotated.chain_id, 0);
    distributions.push(distribution(
        &carol_rotated,
        "c_rotated",
        "Carol's new chain (id 0) at iteration 0".into(),
    ));

    // Encryption limits.
    let mut encrypt_limits = Vec::new();
    {
        let stored = carol_exhausted.stored();
        let mut library = library_group(&stored, "exhausted");
        assert_eq!(
            carol_exhausted.clone().encrypt(b"").err().as_deref(),
            Some("ChainExhausted")
        );
        assert_eq!(
            library.encrypt(b"").err().map(error_name).as_deref(),
            Some("ChainExhausted")
        );
        assert_eq!(&library.to_bytes()[..], &stored[..]);
        encrypt_limits.push(EncryptLimitJson {
            name: "exhausted",
            description: "Carol's group after c_last (next iteration 0xffffffff): Group::encrypt \
                          of an empty plaintext is ChainExhausted and the group is unchanged"
                .into(),
            group: hex(&stored),
            plaintext_zeros: 0,
            expected_error: Some("ChainExhausted".into()),
            message_length: None,
            message_sha256: None,
            group_after: None,
        });
        let sender = bob_group.clone();
        let stored = sender.stored();
        let too_large = vec![0u8; MAX_PLAINTEXT_SIZE + 1];
        let mut library = library_group(&stored, "too_large");
        assert_eq!(
            sender.clone().encrypt(&too_large).err().as_deref(),
            Some("TooLarge")
        );
        assert_eq!(
            library.encrypt(&too_large).err().map(error_name).as_deref(),
            Some("TooLarge")
        );
        assert_eq!(&library.to_bytes()[..], &stored[..]);
        encrypt_limits.push(EncryptLimitJson {
            name: "too_large",
            description: "Bob's group: a plaintext of MAX_PLAINTEXT_SIZE + 1 zero bytes is \
                          TooLarge and the group is unchanged"
                .into(),
            group: hex(&stored),
            plaintext_zeros: MAX_PLAINTEXT_SIZE + 1,
            expected_error: Some("TooLarge".into()),
            message_length: None,
            message_sha256: None,
            group_after: None,
        });
        let longest = vec![0u8; MAX_PLAINTEXT_SIZE];
        let mut model = sender.clone();
        let sent = model.encrypt(&longest).unwrap();
        let made = library.encrypt(&longest).unwrap();
        assert!(made == sent.bytes, "{FILE}: the longest group message");
        assert_eq!(&library.to_bytes()[..], &model.stored()[..]);
        assert_eq!(made.len(), OVERHEAD + MAX_PLAINTEXT_SIZE + 1);
        assert!(made.len() <= MAX_MESSAGE_SIZE);
        // Alice's chains of Bob decrypt it, in the model and the library.
        let receiver = later.last().unwrap().clone();
        let mut chains = Chains::new(group_id, bob);
        let d = sender.distribution().bytes();
        assert_eq!(
            chains.process(&receiver, &bob, &d),
            Ok(Outcome::Added(None))
        );
        let mut library_chains = MemberChains::new(&GroupId::from_bytes(group_id), &identity(&bob));
        let alices = library_group(&receiver.stored(), "longest: Alice's group");
        let _ = alices
            .process_distribution(&identity(&bob), &d, &mut library_chains)
            .unwrap();
        assert!(chains.decrypt(&receiver, &made).unwrap() == longest);
        assert!(alices.decrypt(&mut library_chains, &made).unwrap() == longest);
        encrypt_limits.push(EncryptLimitJson {
            name: "longest",
            description: "Bob's group (padding padme): a plaintext of MAX_PLAINTEXT_SIZE zero \
                          bytes is encoded in MAX_PLAINTEXT_SIZE + 1 bytes (the Padme length \
                          capped at MAX_ENCODED_PLAINTEXT), the message is 158 + that long"
                .into(),
            group: hex(&stored),
            plaintext_zeros: MAX_PLAINTEXT_SIZE,
            expected_error: None,
            message_length: Some(made.len()),
            message_sha256: Some(sha256(&made)),
            group_after: Some(hex(&model.stored())),
        });
    }

    // Chain steps: KDF_GCK of chain a1 at several iterations, and of Carol's last key.
    let mut chain_steps = Vec::new();
    for i in [0u32, 1, 2, 3, 10, 63, 64, 2000, 25_000] {
        let ck = stepped(&a1.ck, i);
        let k = kdf_gck(&ck);
        if let Some(sent) = sent_a1.get(&i) {
            assert_eq!((sent.ck, sent.keys.mk, sent.keys.cm), (ck, k.mk, k.cm));
        }
        chain_steps.push(ChainStepJson {
            chain: "a1",
            iteration: i,
            chain_key: hex(&ck),
            message_key: hex(&k.mk),
            commitment: hex(&k.cm),
            next_chain_key: hex(&k.next),
        });
    }
    {
        let k = kdf_gck(&carol_edge.ck);
        chain_steps.push(ChainStepJson {
            chain: "c_edge",
            iteration: carol_edge.iteration,
            chain_key: hex(&carol_edge.ck),
            message_key: hex(&k.mk),
            commitment: hex(&k.cm),
            next_chain_key: hex(&k.next),
        });
    }

    // Receiving: Bob's chains of Alice.
    let m = |name: &str| by_name[name].clone();
    let d = |s: &Sender| s.distribution().bytes();
    let dist_at = |s: &Sender, i: u32| s.at(i).distribution().bytes();
    assert_eq!(a1.distribution().binding, a1.at(9).distribution().binding);
    let mut r = Receiving::new("bob_of_alice", &bob_group, alice);
    use Expect::{Added, Advanced, Error as Failed, Known, Plaintext};
    // a1's distribution at iteration `i` with another chain key (its binding still valid: it
    // covers neither).
    let dist_with_ck = |i: u32, ck: [u8; 32]| {
        let mut d = a1.at(i).distribution();
        d.ck = ck;
        d.bytes()
    };
    let steps: Vec<(&str, &str, Vec<u8>, bool, Expect)> = vec![
        (
            "a1's first distribution: a new chain",
            "a1_at_0",
            d(&a1),
            true,
            Added(None),
        ),
        (
            "the same distribution again: nothing changes",
            "a1_at_0",
            d(&a1),
            true,
            Known,
        ),
        (
            "a1-2 first: the keys of 0 and 1 are kept",
            "a1_2",
            m("a1_2"),
            false,
            Plaintext,
        ),
        (
            "a1-0 with its kept key",
            "a1_0",
            m("a1_0"),
            false,
            Plaintext,
        ),
        (
            "a1-0 again: its key was deleted",
            "a1_0",
            m("a1_0"),
            false,
            Failed("DuplicateOrExpired"),
        ),
        (
            "a1-5: the keys of 3 and 4 are kept",
            "a1_5",
            m("a1_5"),
            false,
            Plaintext,
        ),
        (
            "a1-3 (padding none) with its kept key",
            "a1_3",
            m("a1_3"),
            false,
            Plaintext,
        ),
        (
            "a later distribution of a1 (iteration 9, with the same binding: it covers neither \
             the iteration nor the chain key), 3 ahead of next (6): the chain is stepped to 9, \
             the chain key reached equals the distribution's, the keys of 6, 7, 8 are kept",
            "a1_at_9",
            dist_at(&a1, 9),
            true,
            Advanced,
        ),
        (
            "a1-9 at next: no key to keep (1, 4, 6, 7, 8 held)",
            "a1_9",
            m("a1_9"),
            false,
            Plaintext,
        ),
        (
            "a1_at_9 again: older than next (10), nothing changes",
            "a1_at_9",
            dist_at(&a1, 9),
            true,
            Known,
        ),
        (
            "a1's fields at iteration 5 (below next) with another chain key (a5's first): \
             older than next, so nothing is checked and nothing changes",
            "a1_at_5_other_chain_key",
            dist_with_ck(5, a5.ck),
            true,
            Known,
        ),
        (
            "a1-7 (an empty plaintext, padding none) with its kept key",
            "a1_7",
            m("a1_7"),
            false,
            Plaintext,
        ),
        (
            "a1-2110, 2100 ahead: the keys of 110..2109 are kept, 10..109 stepped over; 2004 \
             keys, so the 4 lowest (1, 4, 6, 8) are evicted",
            "a1_2110",
            m("a1_2110"),
            false,
            Plaintext,
        ),
        (
            "a1-4: its key was evicted",
            "a1_4",
            m("a1_4"),
            false,
            Failed("DuplicateOrExpired"),
        ),
        (
            "a1-50: stepped over, never kept",
            "a1_50",
            m("a1_50"),
            false,
            Failed("DuplicateOrExpired"),
        ),
        (
            "a1-2109 with its kept key (1999 left)",
            "a1_2109",
            m("a1_2109"),
            false,
            Plaintext,
        ),
        (
            "a1-27111, exactly MAX_GROUP_JUMP (25000) ahead of next (2111): the keys of \
             25111..27110 are kept and the 1999 older ones evicted",
            "a1_27111",
            m("a1_27111"),
            false,
            Plaintext,
        ),
        (
            "a1-52113, 25001 ahead of next (27112)",
            "a1_52113",
            m("a1_52113"),
            false,
            Failed("TooFarAhead"),
        ),
        (
            "a1-2110 again",
            "a1_2110",
            m("a1_2110"),
            false,
            Failed("DuplicateOrExpired"),
        ),
        (
            "a1's distribution at iteration 52113, 25001 ahead of next (27112): too far to \
             check, the chain moves to 52113 with the distribution's chain key (how a receiver \
             that fell too far behind recovers); the kept keys stay",
            "a1_at_52113",
            dist_at(&a1, 52113),
            true,
            Advanced,
        ),
        (
            "a1-52113 now decrypts",
            "a1_52113",
            m("a1_52113"),
            false,
            Plaintext,
        ),
        ("a2: a second chain", "a2", d(&a2), true, Added(None)),
        ("a3", "a3", d(&a3), true, Added(None)),
        ("a4", "a4", d(&a4), true, Added(None)),
        ("a5: five chains held", "a5", d(&a5), true, Added(None)),
    ];
    for (description, from, input, is_d, expect) in steps {
        r.step_expecting(description, from, &input, is_d, Some(expect));
    }
    let a1_id = a1.chain_id;
    r.step_expecting(
        "a6: the oldest chain, a1, is evicted and its id retired",
        "a6",
        &d(&a6),
        true,
        Some(Added(Some(a1_id))),
    );
    let after_a6 = r.model.stored();
    r.step_expecting(
        "a1's distribution again: its id is retired",
        "a1_at_0",
        &d(&a1),
        true,
        Some(Failed("DuplicateOrExpired")),
    );
    r.step_expecting(
        "a1-10: its chain is no longer held and its id is retired",
        "a1_10",
        &m("a1_10"),
        false,
        Some(Failed("DuplicateOrExpired")),
    );
    r.step_expecting(
        "a6-2: the keys of 0 and 1 are kept",
        "a6_2",
        &m("a6_2"),
        false,
        Some(Plaintext),
    );
    r.step_expecting(
        "a6-0 with its kept key",
        "a6_0",
        &m("a6_0"),
        false,
        Some(Plaintext),
    );
    let held_before: Vec<u64> = r.model.chains.iter().map(|c| c.id).collect();
    for (k, (name, s)) in LATER.iter().zip(&later).enumerate() {
        let evicted = if k < 5 {
            held_before[k]
        } else {
            later[k - 5].chain_id
        };
        let description = if k == 15 {
            format!(
                "{name}: a chain evicted; 16 ids were retired, so the oldest (a1's) is forgotten"
            )
        } else {
            format!("{name}: the oldest chain evicted and its id retired")
        };
        r.step_expecting(&description, name, &d(s), true, Some(Added(Some(evicted))));
    }
    assert_eq!(r.model.retired.len(), MAX_RETIRED_CHAINS);
    assert!(!r.model.retired.contains(&a1_id));
    r.step_expecting(
        "a1-10 once a1's id is forgotten: neither held nor retired",
        "a1_10",
        &m("a1_10"),
        false,
        Some(Failed("UnknownChain")),
    );
    r.step_expecting(
        "a1's first distribution once more: its id was forgotten, so it is a new chain \
         again (SPEC.md 11.4: only the last 16 evicted ids are remembered)",
        "a1_at_0",
        &d(&a1),
        true,
        Some(Added(Some(later[11].chain_id))),
    );
    let bob_of_alice = r.json(
        "Bob's MemberChains of Alice in group_id, from MemberChains::new; Bob's group is \
         bob_new's"
            .into(),
    );

    // Receiving: Bob's chains of Carol, at the end of the iteration range.
    let mut r = Receiving::new("bob_of_carol", &bob_group, carol);
    let c_forged_max = resigned(
        &carol_edge.seed,
        &c_last.bytes,
        ITERATION_AT,
        &u32::MAX.to_be_bytes(),
    );
    r.step_expecting(
        "Carol's chain at iteration 0xfffffffe",
        "c_edge",
        &d(&carol_edge),
        true,
        Some(Added(None)),
    );
    r.step_expecting(
        "the chain's last message: next becomes 0xffffffff",
        "c_last",
        &c_last.bytes,
        false,
        Some(Plaintext),
    );
    r.step_expecting(
        "the exhausted group's distribution (iteration 0xffffffff)",
        "c_exhausted",
        &d(&carol_exhausted),
        true,
        Some(Failed("InvalidEncoding")),
    );
    r.step_expecting(
        "c_last with its iteration set to 0xffffffff, signed again by the chain's key",
        "c_last",
        &c_forged_max,
        false,
        Some(Failed("TooFarAhead")),
    );
    r.step_expecting(
        "c_last again",
        "c_last",
        &c_last.bytes,
        false,
        Some(Failed("DuplicateOrExpired")),
    );
    r.step_expecting(
        "Carol's new chain (id 0) after her rotation",
        "c_rotated",
        &d(&carol_rotated),
        true,
        Some(Added(None)),
    );
    let bob_of_carol = r.json(
        "Bob's MemberChains of Carol in group_id: a chain at the end of the iteration range".into(),
    );
    let receivers = vec![bob_of_alice, bob_of_carol];

    // Rejects.
    let rejects = rejects(&RejectInputs {
        group_id,
        other_group,
        alice,
        carol,
        eve,
        alice_seed: seeds[0],
        bob_group: &bob_group,
        exhausted: &carol_exhausted,
        a1: &a1,
        a5: &a5,
        carol_edge: &carol_edge,
        after_a6: &after_a6,
        messages: &by_name,
    });

    let file = GroupFile {
        comment: vec![
            "Group messaging with sender keys, SPEC.md 11 (profile v2): the chain step KDF_GCK \
             (mk = HMAC-SHA-256(ck, 0x03), cm = HMAC-SHA-256(ck, 0x04), ck' = \
             HMAC-SHA-256(ck, 0x05)), distributions (11.2, type 0x09: 02 09 || group id || u64 \
             chain id || u32 iteration || chain key || signing key), group messages (11.3, type \
             0x08: 02 08 || group id || u64 chain id || u32 iteration || cm || AES-256-GCM-SIV(mk, \
             0x00^12, AAD = bytes 0..78, encode(pt)) || Ed25519 signature by the chain's signing \
             seed over every byte before it), the stored group (7.11, type 0x2e) and member \
             chains (7.12, type 0x2f), receiving (11.4, 11.5) and the errors SPEC.md names."
                .into(),
            format!(
                "Part of the vector set dated {DATE}, added to it with the groups of SPEC.md 11 \
                 and generated with it (cargo run -p doubleratchet-vectors -- --write): every \
                 value was computed by the generator's own model of SPEC.md 11, 7.11 and 7.12 \
                 (tools/vectors/src/vectors/groups.rs) with hmac, sha2, aes-gcm-siv and \
                 ed25519-dalek, never by the library's group code, and asserted equal to what \
                 the library does from the model's bytes: Group::from_bytes of each stored group \
                 encrypts the listed message byte for byte and stores group_after; Group::new, \
                 rotate, remove_member, add_member and after_restore given the listed random \
                 bytes store group_after; MemberChains go through every receiving step with the listed \
                 outcome and state; every reject fails with expected_error in the model and the \
                 library."
            ),
            "Replaying: group_ops (Group::new(group id, own, members, rng) / rotate(rng) / \
             remove_member(device, rng) / add_member(device) / after_restore(members, rng) on \
             Group::from_bytes(group_before); \
             rng serves exactly random, one 72-byte draw: chain id (8, big-endian), chain key \
             (32), signing seed (32)); messages (Group::from_bytes(group).encrypt(plaintext) == \
             bytes, then to_bytes == group_after); receivers (Group::from_bytes(group), \
             MemberChains::from_bytes(chains_initial), then each step on them in order: \
             process_distribution(member, input) or decrypt(input), with the listed outcome, \
             plaintext or expected_error, and the stored chains after it: chains_after when at \
             most 4096 bytes, always chains_after_length and chains_after_sha256); rejects \
             (operation on input, zero-extended to input_zero_extended_to bytes if given; \
             process_distribution and decrypt on Group::from_bytes(group) and \
             MemberChains::from_bytes(chains), sender_key the sender; a failed call leaves the \
             chains as they were)."
                .into(),
            "Ids (chain_id, evicted, chain_ids, retired) are JSON integers up to 2^64 - 1: read \
             them as u64. Keys come from their seeds as in SPEC.md 2.1. Byte strings are \
             lowercase hex; tests/it/vectors.rs checks this file."
                .into(),
        ],
        kind: "group",
        provenance: Provenance {
            spec: "SPEC.md, protocol profile v2 (group messaging with sender keys: sections \
                   11.1-11.7, the plaintext encoding of 4.9, the stored group of 7.11 and \
                   member chains of 7.12, identity keys of 2.1)",
            rng: "every fixed key, id and chain key: draws from rand_chacha 0.10 \
                  ChaCha20Rng::seed_from_u64(0x920) in this order: group id (32), other group \
                  id (32), the identity seeds of alice, bob, carol, dave, eve (32 each), then \
                  the 72 random bytes of each new chain as group_ops list them (a3's first 8 \
                  bytes replaced by a2's id, carol_rotate_wrapping's by 0xffffffffffffffff), \
                  Carol's edge chain key and signing seed drawn between alice_after_restore and \
                  carol_rotate_wrapping",
            method: "every value computed independently from the SPEC.md 11, 7.11 and 7.12 \
                     text with hmac, sha2, aes-gcm-siv and ed25519-dalek, and asserted equal \
                     to the library's output from the model's own bytes before writing",
            method_crates: "hmac + sha2 (KDF_GCK), aes-gcm-siv (ENCRYPT = \
                            AES-256-GCM-SIV(mk, 0x00^12, AAD, encode(pt)) with the encoding of \
                            SPEC.md 4.9), ed25519-dalek (signing keys from seeds, deterministic \
                            RFC 8032 signatures, verify_strict), curve25519-dalek (the SPEC.md \
                            2.1 key checks)",
            ..provenance()
        },
        constants: Constants {
            wire_version: hex(&[WIRE_VERSION]),
            storage_version: hex(&[STORAGE_VERSION]),
            group_message_type: hex(&[TYPE_GROUP_MESSAGE]),
            distribution_type: hex(&[TYPE_DISTRIBUTION]),
            group_type: hex(&[TYPE_GROUP]),
            member_chains_type: hex(&[TYPE_MEMBER_CHAINS]),
            message_key_input: hex(&[MESSAGE_KEY_INPUT]),
            commitment_input: hex(&[COMMITMENT_INPUT]),
            chain_key_input: hex(&[CHAIN_KEY_INPUT]),
            group_prefix_length: PREFIX_LENGTH,
            group_message_overhead: OVERHEAD,
            distribution_length: DISTRIBUTION_LENGTH,
            group_fixed_length: GROUP_FIXED_LENGTH,
            max_group_members: MAX_GROUP_MEMBERS,
            max_group_size: MAX_GROUP_SIZE,
            member_chains_fixed_length: CHAINS_FIXED_LENGTH,
            member_chain_fixed_length: CHAIN_FIXED_LENGTH,
            group_skipped_entry_length: SKIPPED_ENTRY_LENGTH,
            max_member_chains: MAX_MEMBER_CHAINS,
            max_retired_chains: MAX_RETIRED_CHAINS,
            max_group_skipped: MAX_GROUP_SKIPPED,
            max_group_jump: MAX_GROUP_JUMP,
            max_member_chains_size: MAX_CHAINS_SIZE,
            max_message_size: MAX_MESSAGE_SIZE,
            max_plaintext_size: MAX_PLAINTEXT_SIZE,
        },
        group_id: hex(&group_id),
        other_group_id: hex(&other_group),
        identities,
        chain_steps,
        group_ops: ops,
        distributions,
        messages,
        encrypt_limits,
        receivers,
        rejects,
    };
    eprintln!(
        "{FILE}: {} group operations, {} distributions, {} messages, {} receiving steps and {} \
         rejects agree with the library",
        file.group_ops.len(),
        file.distributions.len(),
        file.messages.len(),
        file.receivers.iter().map(|r| r.steps.len()).sum::<usize>(),
        file.rejects.len()
    );
    (FILE.into(), to_json(&file))
}

/// A `process_distribution` reject: name, description, (stored chains, sender), input,
/// error.
type ProcessCase = (
    &'static str,
    String,
    (Vec<u8>, [u8; 32]),
    Vec<u8>,
    &'static str,
);
/// A `decrypt` reject: name, description, stored group, stored chains, input, error.
type DecryptCase = (
    &'static str,
    String,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    &'static str,
);
/// A loader reject: name, description, input, the length it is zero-extended to, error.
type LoadCase = (&'static str, String, Vec<u8>, Option<usize>, &'static str);

/// What the rejects are made from.
struct RejectInputs<'a> {
    group_id: [u8; 32],
    other_group: [u8; 32],
    alice: [u8; 32],
    carol: [u8; 32],
    eve: [u8; 32],
    alice_seed: [u8; 32],
    bob_group: &'a Sender,
    /// Carol's group after the last message of its chain.
    exhausted: &'a Sender,
    a1: &'a Sender,
    a5: &'a Sender,
    carol_edge: &'a Sender,
    /// Bob's chains of Alice right after a6 evicted a1 (a2..a6 held, a1 retired).
    after_a6: &'a [u8],
    messages: &'a BTreeMap<&'static str, Vec<u8>>,
}

fn rejects(x: &RejectInputs<'_>) -> Vec<RejectJson> {
    let mut r = Rejects { out: Vec::new() };
    let group = x.bob_group.stored();
    let group = &group[..];
    // Bob's chains of Alice after a1's distribution and a1-2, 0, 5, 3, 9 (next 10, keys
    // of 1, 4, 6, 7, 8 kept), built by the model's own steps.
    let mut after9 = Chains::new(x.group_id, x.alice);
    for input in [
        x.a1.distribution().bytes(),
        x.messages["a1_2"].clone(),
        x.messages["a1_0"].clone(),
        x.messages["a1_5"].clone(),
        x.messages["a1_3"].clone(),
        x.messages["a1_9"].clone(),
    ] {
        if input[1] == TYPE_DISTRIBUTION {
            after9.process(x.bob_group, &x.alice, &input).unwrap();
        } else {
            after9.decrypt(x.bob_group, &input).unwrap();
        }
    }
    assert_eq!(after9.chains[0].next, 10);
    assert_eq!(
        after9.chains[0].skipped.keys().copied().collect::<Vec<_>>(),
        [1, 4, 6, 7, 8]
    );
    let chains = after9.stored();
    let chains = &chains[..];
    let empty = Chains::new(x.group_id, x.alice).stored();
    let other_group_chains = Chains {
        group: x.other_group,
        ..after9.clone()
    }
    .stored();
    let eve_chains = Chains::new(x.group_id, x.eve).stored();
    let carol_chains = Chains::new(x.group_id, x.carol).stored();
    let without_alice = Sender {
        members: x
            .bob_group
            .members
            .iter()
            .copied()
            .filter(|m| *m != x.alice)
            .collect(),
        ..x.bob_group.clone()
    }
    .stored();
    let a1 = x.a1;
    let a1_seed = a1.seed;
    let d0 = a1.distribution();
    let d0b = d0.bytes();
    // a1_at_0 changed by `f`, its binding left as it was.
    let dist = |f: &dyn Fn(&mut Dist)| {
        let mut d = d0;
        f(&mut d);
        d.bytes()
    };
    // a1_at_0 changed by `f`, with the signing key of `seed` bound to `sender` again.
    let rebound = |f: &dyn Fn(&mut Dist), seed: &[u8; 32], sender: &[u8; 32]| {
        let mut d = d0;
        f(&mut d);
        d.bound(seed, sender).bytes()
    };
    let binding_over = |parts: &[&[u8]]| {
        let mut d = d0;
        d.binding = ed25519_sign(&a1_seed, &parts.concat());
        d.bytes()
    };
    let small = small_order_key();
    let a5_seed = x.a5.seed;
    let carol_seed = x.carol_edge.seed;

    // Distribution::from_bytes (SPEC.md 11.2).
    use RejectOp::{LoadChains, LoadGroup, ParseDistribution, ParseMessage};
    r.case(
        "distribution_empty",
        "no byte at all",
        ParseDistribution,
        Vec::new(),
        "Truncated",
    );
    r.case(
        "distribution_version_only",
        "the version byte alone",
        ParseDistribution,
        d0b[..1].to_vec(),
        "Truncated",
    );
    r.case(
        "distribution_version_v1",
        "a1_at_0 with version byte 0x01",
        ParseDistribution,
        replace_at(&d0b, 0, &[0x01]),
        "UnsupportedVersion(1)",
    );
    r.case(
        "distribution_version_3",
        "a1_at_0 with version byte 0x03",
        ParseDistribution,
        replace_at(&d0b, 0, &[0x03]),
        "UnsupportedVersion(3)",
    );
    r.case(
        "distribution_type_group_message",
        "a1_at_0 with type byte 0x08 (a group message)",
        ParseDistribution,
        replace_at(&d0b, 1, &[TYPE_GROUP_MESSAGE]),
        "UnexpectedType(8)",
    );
    r.case(
        "distribution_type_member_chains",
        "a1_at_0 with type byte 0x2f (stored member chains)",
        ParseDistribution,
        replace_at(&d0b, 1, &[TYPE_MEMBER_CHAINS]),
        "UnexpectedType(47)",
    );
    r.case(
        "distribution_truncated_in_group_id",
        "a1_at_0 cut inside the group id (20 bytes)",
        ParseDistribution,
        d0b[..20].to_vec(),
        "Truncated",
    );
    r.case(
        "distribution_truncated_in_chain_key",
        "a1_at_0 cut inside the chain key (60 bytes)",
        ParseDistribution,
        d0b[..60].to_vec(),
        "Truncated",
    );
    r.case(
        "distribution_without_binding",
        "a1_at_0's first 110 bytes: everything but the sender binding",
        ParseDistribution,
        d0b[..BINDING_AT].to_vec(),
        "Truncated",
    );
    r.case(
        "distribution_truncated",
        "a1_at_0 without its last byte (173 bytes)",
        ParseDistribution,
        d0b[..DISTRIBUTION_LENGTH - 1].to_vec(),
        "Truncated",
    );
    r.case(
        "distribution_trailing_byte",
        "a1_at_0 with one byte appended (175 bytes)",
        ParseDistribution,
        [&d0b[..], &[0]].concat(),
        "TrailingData",
    );
    r.case(
        "distribution_signing_key_small_order",
        "a1_at_0 with the signing key replaced by the neutral point (y = 1, order 1)",
        ParseDistribution,
        replace_at(&d0b, SIGNING_KEY_AT, &small),
        "InvalidPublicKey",
    );
    r.case(
        "distribution_signing_key_not_canonical",
        "a1_at_0 with the signing key replaced by a non-canonical encoding (y + p) of a \
         point of large order",
        ParseDistribution,
        dist(&|d| d.signing = non_canonical_key()),
        "InvalidPublicKey",
    );
    r.case(
        "distribution_signing_key_off_curve",
        "a1_at_0 with the signing key replaced by a y-coordinate that is no curve point",
        ParseDistribution,
        dist(&|d| d.signing = off_curve_key()),
        "InvalidPublicKey",
    );
    r.case(
        "distribution_signing_key_small_order_then_trailing",
        "distribution_signing_key_small_order with one byte appended: the key is checked \
         as it is read, before the length",
        ParseDistribution,
        [&replace_at(&d0b, SIGNING_KEY_AT, &small)[..], &[0]].concat(),
        "InvalidPublicKey",
    );
    r.case(
        "distribution_signing_key_small_order_then_truncated",
        "distribution_signing_key_small_order cut inside the binding (140 bytes): the key is \
         checked as it is read",
        ParseDistribution,
        replace_at(&d0b, SIGNING_KEY_AT, &small)[..140].to_vec(),
        "InvalidPublicKey",
    );

    // Group::process_distribution (SPEC.md 11.4).
    let proc = |chains: &[u8], sender: [u8; 32]| (chains.to_vec(), sender);
    let cases: Vec<ProcessCase> = vec![
        (
            "process_parse_first",
            "a1_at_0 with one byte appended, from eve (no member) into eve's chains: parsing \
             comes first"
                .into(),
            proc(&eve_chains, x.eve),
            [&d0b[..], &[0]].concat(),
            "TrailingData",
        ),
        (
            "process_wrong_group",
            "a1_at_0 naming other_group_id, from alice into her chains".into(),
            proc(&empty, x.alice),
            dist(&|d| d.group = x.other_group),
            "WrongGroup",
        ),
        (
            "process_wrong_group_bound",
            "a1_at_0 naming other_group_id, its binding made over other_group_id (valid for \
             that group): from alice into her chains of group_id"
                .into(),
            proc(&empty, x.alice),
            rebound(&|d| d.group = x.other_group, &a1_seed, &x.alice),
            "WrongGroup",
        ),
        (
            "process_wrong_group_before_member",
            "a1_at_0 naming other_group_id, from eve (no member) into eve's chains: the group \
             is checked first"
                .into(),
            proc(&eve_chains, x.eve),
            dist(&|d| d.group = x.other_group),
            "WrongGroup",
        ),
        (
            "process_wrong_group_exhausted",
            "a1_at_0 naming other_group_id at iteration 0xffffffff: the group is checked \
             before the iteration"
                .into(),
            proc(&empty, x.alice),
            dist(&|d| {
                d.group = x.other_group;
                d.iteration = u32::MAX;
            }),
            "WrongGroup",
        ),
        (
            "process_chains_of_another_group",
            "a1_at_0 from alice into Alice's chains of other_group_id".into(),
            proc(&other_group_chains, x.alice),
            d0b.clone(),
            "WrongRecord",
        ),
        (
            "process_chains_of_another_group_before_member",
            "a1_at_0 from eve (no member) into Alice's chains of other_group_id: the chains' \
             group is checked before the sender's membership"
                .into(),
            proc(&other_group_chains, x.eve),
            d0b.clone(),
            "WrongRecord",
        ),
        (
            "process_not_member",
            "a1_at_0 from eve, who is no member of Bob's group, into eve's chains".into(),
            proc(&eve_chains, x.eve),
            d0b.clone(),
            "NotGroupMember",
        ),
        (
            "process_not_member_other_chains",
            "a1_at_0 from eve (no member) into Alice's chains: membership is checked before \
             whose chains they are"
                .into(),
            proc(&empty, x.eve),
            d0b.clone(),
            "NotGroupMember",
        ),
        (
            "process_not_member_exhausted",
            "a1_at_0 at iteration 0xffffffff from eve: membership is checked before the \
             iteration"
                .into(),
            proc(&eve_chains, x.eve),
            dist(&|d| d.iteration = u32::MAX),
            "NotGroupMember",
        ),
        (
            "process_chains_of_another_member",
            "a1_at_0 from carol (a member) into Alice's chains".into(),
            proc(&empty, x.carol),
            d0b.clone(),
            "WrongRecord",
        ),
        (
            "process_wrong_record_before_iteration",
            "a1_at_0 at iteration 0xffffffff from alice into Carol's chains: the chains are \
             checked before the iteration"
                .into(),
            proc(&carol_chains, x.alice),
            dist(&|d| d.iteration = u32::MAX),
            "WrongRecord",
        ),
        (
            "process_exhausted",
            "a1_at_0 at iteration 0xffffffff (an exhausted chain; the binding does not cover \
             the iteration, so it still verifies)"
                .into(),
            proc(&empty, x.alice),
            dist(&|d| d.iteration = u32::MAX),
            "InvalidEncoding",
        ),
        (
            "process_exhausted_before_binding",
            "a1_at_0 at iteration 0xffffffff with a binding bit flipped: the iteration is \
             checked before the binding"
                .into(),
            proc(&empty, x.alice),
            xor_at(&dist(&|d| d.iteration = u32::MAX), BINDING_AT, 0x01),
            "InvalidEncoding",
        ),
        (
            "process_exhausted_before_retired",
            "a1_at_0 at iteration 0xffffffff into the chains where a1 is retired: the \
             iteration is checked first"
                .into(),
            proc(x.after_a6, x.alice),
            dist(&|d| d.iteration = u32::MAX),
            "InvalidEncoding",
        ),
        (
            "process_stolen_chain",
            "a1_at_0 (Alice's chain, bound to alice) from carol into Carol's chains: a member \
             passing another member's chain off as its own"
                .into(),
            proc(&carol_chains, x.carol),
            d0b.clone(),
            "InvalidSignature",
        ),
        (
            "process_stolen_chain_rebound_by_thief",
            "a1's fields with a binding to carol signed by Carol's own chain seed (not a1's): \
             the binding is verified under the distribution's signing key"
                .into(),
            proc(&carol_chains, x.carol),
            binding_over_with(&d0, &carol_seed, &x.carol),
            "InvalidSignature",
        ),
        (
            "process_binding_r_flipped",
            "a1_at_0 with a bit of the binding's R flipped".into(),
            proc(&empty, x.alice),
            xor_at(&d0b, BINDING_AT, 0x01),
            "InvalidSignature",
        ),
        (
            "process_binding_s_not_reduced",
            "a1_at_0 with the binding's S replaced by S + L (equal modulo L, not reduced): \
             strict verification refuses it"
                .into(),
            proc(&empty, x.alice),
            replace_at(&d0b, BINDING_AT + 32, &s_plus_l(&d0.binding)),
            "InvalidSignature",
        ),
        (
            "process_binding_zero",
            "a1_at_0 with an all-zero binding".into(),
            proc(&empty, x.alice),
            replace_at(&d0b, BINDING_AT, &[0; 64]),
            "InvalidSignature",
        ),
        (
            "process_binding_without_label",
            "a1_at_0 with its binding made by a1's seed over group id || chain id || signing \
             key || alice, without GROUP_SENDER_LABEL"
                .into(),
            proc(&empty, x.alice),
            binding_over(&[&d0.group, &d0.chain_id.to_be_bytes(), &d0.signing, &x.alice]),
            "InvalidSignature",
        ),
        (
            "process_binding_other_label",
            "a1_at_0 with its binding made over DEVICE_LINK_LABEL (\"doubleratchet v2 device \
             link\") instead of GROUP_SENDER_LABEL"
                .into(),
            proc(&empty, x.alice),
            binding_over(&[
                b"doubleratchet v2 device link",
                &d0.group,
                &d0.chain_id.to_be_bytes(),
                &d0.signing,
                &x.alice,
            ]),
            "InvalidSignature",
        ),
        (
            "process_binding_other_chain_id",
            "a1_at_0 with its chain id's last bit flipped (binding unchanged)".into(),
            proc(&empty, x.alice),
            dist(&|d| d.chain_id ^= 1),
            "InvalidSignature",
        ),
        (
            "process_binding_by_identity",
            "a1_at_0 with its binding made by Alice's identity seed (not the chain's signing \
             seed) over the right message"
                .into(),
            proc(&empty, x.alice),
            binding_over_with(&d0, &x.alice_seed, &x.alice),
            "InvalidSignature",
        ),
        (
            "process_binding_bad_before_retired",
            "a1_at_0 with a binding bit flipped, into the chains where a1 is retired: the \
             binding is checked before the retired ids"
                .into(),
            proc(x.after_a6, x.alice),
            xor_at(&d0b, BINDING_AT, 0x01),
            "InvalidSignature",
        ),
        (
            "process_binding_bad_before_known",
            "a1_at_0 with a binding bit flipped, into chains holding a1 with the same signing \
             key: the binding is checked before the held chains"
                .into(),
            proc(chains, x.alice),
            xor_at(&d0b, BINDING_AT, 0x01),
            "InvalidSignature",
        ),
        (
            "process_retired",
            "a1_at_0 into Bob's chains of Alice right after a6 evicted a1".into(),
            proc(x.after_a6, x.alice),
            d0b.clone(),
            "DuplicateOrExpired",
        ),
        (
            "process_retired_other_key",
            "a1's id with a5's signing key, bound to alice by a5's seed, into the chains where \
             a1 is retired: retired ids are checked before the held chains"
                .into(),
            proc(x.after_a6, x.alice),
            rebound(&|_| {}, &a5_seed, &x.alice),
            "DuplicateOrExpired",
        ),
        (
            "process_conflicting_chain",
            "a1's id with Carol's edge chain's signing key, bound to alice by that key's seed, \
             into chains holding a1"
                .into(),
            proc(chains, x.alice),
            rebound(&|_| {}, &carol_seed, &x.alice),
            "ConflictingChain",
        ),
        (
            "process_conflicting_chain_other_iteration",
            "a1's id, a5's signing key (bound to alice by a5's seed), iteration 12 and a5's \
             chain key: a held chain is never replaced"
                .into(),
            proc(chains, x.alice),
            rebound(
                &|d| {
                    d.iteration = 12;
                    d.ck = x.a5.ck;
                },
                &a5_seed,
                &x.alice,
            ),
            "ConflictingChain",
        ),
        (
            "process_conflicting_chain_key",
            "a1's distribution at iteration 12 with another chain key (a5's first), same id, \
             signing key and (valid) binding, into chains holding a1 at next 10: the chain key \
             reached by stepping differs (the owner gave this member another chain key)"
                .into(),
            proc(chains, x.alice),
            {
                let mut d = a1.at(12).distribution();
                d.ck = x.a5.ck;
                d.bytes()
            },
            "ConflictingChain",
        ),
        (
            "process_conflicting_chain_key_at_next",
            "a1's distribution at iteration 10 (= next) with another chain key (a5's first)".into(),
            proc(chains, x.alice),
            {
                let mut d = a1.at(10).distribution();
                d.ck = x.a5.ck;
                d.bytes()
            },
            "ConflictingChain",
        ),
    ];
    for (name, description, (chains, sender), input, expected) in cases {
        r.case(
            name,
            description,
            RejectOp::ProcessDistribution {
                group,
                chains: &chains,
                sender,
            },
            input,
            expected,
        );
    }

    // GroupMessage::parse (SPEC.md 11.3).
    let m5 = &x.messages["a1_5"];
    let m0 = &x.messages["a1_0"];
    r.case_extended(
        "message_too_large",
        format!(
            "a1_5 followed by zero bytes to MAX_MESSAGE_SIZE + 1 = {} bytes",
            MAX_MESSAGE_SIZE + 1
        ),
        ParseMessage,
        m5.clone(),
        Some(MAX_MESSAGE_SIZE + 1),
        "TooLarge",
    );
    r.case_extended(
        "message_too_large_before_version",
        "message_too_large with version byte 0x01: the length is checked first",
        ParseMessage,
        replace_at(m5, 0, &[0x01]),
        Some(MAX_MESSAGE_SIZE + 1),
        "TooLarge",
    );
    r.case(
        "message_empty",
        "no byte at all",
        ParseMessage,
        Vec::new(),
        "Truncated",
    );
    r.case(
        "message_version_only",
        "the version byte alone",
        ParseMessage,
        m0[..1].to_vec(),
        "Truncated",
    );
    r.case(
        "message_version_v1",
        "a1_0 with version byte 0x01",
        ParseMessage,
        replace_at(m0, 0, &[0x01]),
        "UnsupportedVersion(1)",
    );
    r.case(
        "message_version_v1_short",
        "the first 100 bytes of a1_0 with version byte 0x01: the version is checked before \
         the length",
        ParseMessage,
        replace_at(&m0[..100], 0, &[0x01]),
        "UnsupportedVersion(1)",
    );
    r.case(
        "message_type_distribution",
        "a1_0 with type byte 0x09 (a distribution)",
        ParseMessage,
        replace_at(m0, 1, &[TYPE_DISTRIBUTION]),
        "UnexpectedType(9)",
    );
    r.case(
        "message_type_normal",
        "a1_0 with type byte 0x01 (a pairwise normal message)",
        ParseMessage,
        replace_at(m0, 1, &[0x01]),
        "UnexpectedType(1)",
    );
    r.case(
        "message_type_distribution_short",
        "the first 10 bytes of a1_0 with type byte 0x09: the type is checked before the \
         length",
        ParseMessage,
        replace_at(&m0[..10], 1, &[TYPE_DISTRIBUTION]),
        "UnexpectedType(9)",
    );
    r.case(
        "message_overhead_only",
        "a1_0's prefix (78 bytes) and its last 80 bytes: 158 bytes, no room for the end \
         marker",
        ParseMessage,
        [&m0[..PREFIX_LENGTH], &m0[m0.len() - 80..]].concat(),
        "Truncated",
    );
    r.case(
        "message_prefix_only",
        "a1_0's first 78 bytes",
        ParseMessage,
        m0[..PREFIX_LENGTH].to_vec(),
        "Truncated",
    );

    // Group::decrypt (SPEC.md 11.5), on Bob's chains of Alice after9 (next 10).
    let m10 = x.messages["a1_10"].clone();
    let end10 = m10.len() - SIGNATURE_LENGTH;
    let a1_at10 = a1.at(10);
    let k11 = kdf_gck(&stepped(&a1_at10.ck, 1));
    // Carol knows a1's chain key (every member got the distribution): a message of a1 at
    // iteration 10 with the right keys, signed by her own chain's key.
    let insider = {
        let signed = &m10[..end10];
        [signed, &ed25519_sign(&carol_seed, signed)[..]].concat()
    };
    // A sender that gave Bob another chain key: a message at 10 under another key, with
    // that key's commitment, signed by a1's signing key.
    let equivocated = {
        let other = Sender {
            ck: x.a5.ck,
            ..a1_at10.clone()
        };
        with_encoded(&other, 10, &encode(b"equivocation", Pad::Padme))
    };
    let dec: Vec<DecryptCase> = vec![
        (
            "decrypt_parse_first",
            "158 bytes (a1_0's prefix and its last 80 bytes), no room for the end marker: \
             parsing comes first"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            [&m0[..PREFIX_LENGTH], &m0[m0.len() - 80..]].concat(),
            "Truncated",
        ),
        (
            "decrypt_wrong_group",
            "a1_10 naming other_group_id (not signed again): the group is checked before \
             the signature"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            replace_at(&m10, GROUP_ID_AT, &x.other_group),
            "WrongGroup",
        ),
        (
            "decrypt_wrong_group_unknown_chain",
            "a1_10 naming other_group_id and another chain id".into(),
            group.to_vec(),
            chains.to_vec(),
            replace_at(
                &replace_at(&m10, GROUP_ID_AT, &x.other_group),
                CHAIN_ID_AT,
                &(a1.chain_id ^ 1).to_be_bytes(),
            ),
            "WrongGroup",
        ),
        (
            "decrypt_chains_of_another_group",
            "a1_10 given with Alice's chains of other_group_id".into(),
            group.to_vec(),
            other_group_chains.clone(),
            m10.clone(),
            "WrongRecord",
        ),
        (
            "decrypt_member_removed",
            "a1_10 to Bob's group without alice among its members".into(),
            without_alice.clone(),
            chains.to_vec(),
            m10.clone(),
            "NotGroupMember",
        ),
        (
            "decrypt_wrong_record_before_member",
            "a1_10 to Bob's group without alice, with Alice's chains of other_group_id: the \
             chains' group is checked first"
                .into(),
            without_alice.clone(),
            other_group_chains.clone(),
            m10.clone(),
            "WrongRecord",
        ),
        (
            "decrypt_unknown_chain",
            "a1_10 with its chain id's last bit flipped, signed again by a1's key".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(
                &a1_seed,
                &m10,
                CHAIN_ID_AT,
                &(a1.chain_id ^ 1).to_be_bytes(),
            ),
            "UnknownChain",
        ),
        (
            "decrypt_retired_chain",
            "a1_10 given with Bob's chains of Alice right after a6 evicted a1 (its id retired)"
                .into(),
            group.to_vec(),
            x.after_a6.to_vec(),
            m10.clone(),
            "DuplicateOrExpired",
        ),
        (
            "decrypt_retired_chain_bad_signature",
            "decrypt_retired_chain with a signature bit flipped: the lookup comes before the \
             signature"
                .into(),
            group.to_vec(),
            x.after_a6.to_vec(),
            xor_at(&m10, m10.len() - 1, 0x01),
            "DuplicateOrExpired",
        ),
        (
            "decrypt_no_chain_yet",
            "a1_10 given with Alice's chains before any distribution".into(),
            group.to_vec(),
            empty.clone(),
            m10.clone(),
            "UnknownChain",
        ),
        (
            "decrypt_duplicate",
            "a1_2, received already".into(),
            group.to_vec(),
            chains.to_vec(),
            x.messages["a1_2"].clone(),
            "DuplicateOrExpired",
        ),
        (
            "decrypt_duplicate_bad_signature",
            "a1_2 with a signature bit flipped: the bound check comes before the signature".into(),
            group.to_vec(),
            chains.to_vec(),
            xor_at(&x.messages["a1_2"], x.messages["a1_2"].len() - 1, 0x01),
            "DuplicateOrExpired",
        ),
        (
            "decrypt_too_far_ahead",
            "a1_10 at iteration 25011 (next 10 + 25001), signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(&a1_seed, &m10, ITERATION_AT, &25_011u32.to_be_bytes()),
            "TooFarAhead",
        ),
        (
            "decrypt_too_far_ahead_bad_signature",
            "a1_10 at iteration 25011, not signed again: the bound check comes before the \
             signature (and before any derivation)"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            replace_at(&m10, ITERATION_AT, &25_011u32.to_be_bytes()),
            "TooFarAhead",
        ),
        (
            "decrypt_iteration_max",
            "a1_10 at iteration 0xffffffff, signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(&a1_seed, &m10, ITERATION_AT, &u32::MAX.to_be_bytes()),
            "TooFarAhead",
        ),
        (
            "decrypt_signature_r_flipped",
            "a1_10 with a bit of the signature's R flipped".into(),
            group.to_vec(),
            chains.to_vec(),
            xor_at(&m10, end10, 0x01),
            "InvalidSignature",
        ),
        (
            "decrypt_signature_s_not_reduced",
            "a1_10 with the signature's S replaced by S + L (equal modulo L, not reduced): \
             strict verification refuses it"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            replace_at(&m10, end10 + 32, &s_plus_l(&m10[end10..])),
            "InvalidSignature",
        ),
        (
            "decrypt_ciphertext_flipped",
            "a1_10 with a ciphertext bit flipped, not signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            xor_at(&m10, PREFIX_LENGTH, 0x01),
            "InvalidSignature",
        ),
        (
            "decrypt_signed_by_identity",
            "a1_10 signed by Alice's identity seed instead of the chain's signing seed".into(),
            group.to_vec(),
            chains.to_vec(),
            [
                &m10[..end10],
                &ed25519_sign(&x.alice_seed, &m10[..end10])[..],
            ]
            .concat(),
            "InvalidSignature",
        ),
        (
            "decrypt_insider_forgery",
            "a1_10's bytes before the signature (right keys: every member can derive them) \
             signed by Carol's chain's signing seed: a member cannot send under another's name"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            insider,
            "InvalidSignature",
        ),
        (
            "decrypt_commitment_of_next_iteration",
            "a1_10 with the key commitment of iteration 11, signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(&a1_seed, &m10, KEY_AT, &k11.cm),
            "DecryptionFailed",
        ),
        (
            "decrypt_commitment_zero",
            "a1_10 with an all-zero key commitment, signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(&a1_seed, &m10, KEY_AT, &[0; 32]),
            "DecryptionFailed",
        ),
        (
            "decrypt_equivocation",
            "a message of a1 at iteration 10 encrypted under another chain key (a5's first) \
             with that key's commitment and signed by a1's signing seed: what a sender giving \
             members different chain keys would send; the receiver's own commitment differs"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            equivocated,
            "DecryptionFailed",
        ),
        (
            "decrypt_ciphertext_flipped_resigned",
            "a1_10 with a ciphertext bit flipped, signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(&a1_seed, &m10, PREFIX_LENGTH, &[m10[PREFIX_LENGTH] ^ 0x01]),
            "DecryptionFailed",
        ),
        (
            "decrypt_tag_flipped_resigned",
            "a1_10 with a tag bit flipped, signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(&a1_seed, &m10, end10 - 1, &[m10[end10 - 1] ^ 0x80]),
            "DecryptionFailed",
        ),
        (
            "decrypt_iteration_changed",
            "a1_10 as iteration 11 with iteration 11's commitment, signed again: the body is \
             under iteration 10's key and AAD"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(
                &a1_seed,
                &replace_at(&m10, ITERATION_AT, &11u32.to_be_bytes()),
                KEY_AT,
                &k11.cm,
            ),
            "DecryptionFailed",
        ),
        (
            "decrypt_no_end_marker",
            "a message of a1 at iteration 10 whose encoded plaintext is 64 zero bytes \
             (encrypted under the right key and AAD, signed): decoding fails"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            with_encoded(a1, 10, &[0u8; 64]),
            "DecryptionFailed",
        ),
        (
            "decrypt_padding_not_zero",
            "a message of a1 at iteration 10 whose encoded plaintext is \"abc\" 0x80 0x01: \
             the byte before the zeros is not the end marker"
                .into(),
            group.to_vec(),
            chains.to_vec(),
            with_encoded(a1, 10, b"abc\x80\x01"),
            "DecryptionFailed",
        ),
        (
            "decrypt_kept_key_commitment",
            "a1_1 (its key kept) with an all-zero key commitment, signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(&a1_seed, &x.messages["a1_1"], KEY_AT, &[0; 32]),
            "DecryptionFailed",
        ),
        (
            "decrypt_kept_key_body_flipped",
            "a1_4 (its key kept) with a ciphertext bit flipped, signed again".into(),
            group.to_vec(),
            chains.to_vec(),
            resigned(
                &a1_seed,
                &x.messages["a1_4"],
                PREFIX_LENGTH + 3,
                &[x.messages["a1_4"][PREFIX_LENGTH + 3] ^ 0x04],
            ),
            "DecryptionFailed",
        ),
    ];
    for (name, description, group, chains, input, expected) in dec {
        r.case(
            name,
            description,
            RejectOp::Decrypt {
                group: &group,
                chains: &chains,
            },
            input,
            expected,
        );
    }

    // Group::from_bytes (SPEC.md 7.11), from Bob's stored group (three members).
    let g = group;
    let last_member = g.len() - 32;
    let members_at = GROUP_FIXED_LENGTH;
    let swapped = [
        &g[..members_at],
        &g[members_at + 32..members_at + 64],
        &g[members_at..members_at + 32],
        &g[members_at + 64..],
    ]
    .concat();
    let (with_own, own_at) = {
        let mut s = x.bob_group.clone();
        s.members[1] = s.own;
        s.members.sort_unstable();
        let at = s.members.iter().position(|m| *m == s.own).unwrap();
        assert!(at < 2, "the local identity is not the last member");
        (s.stored(), at)
    };
    let group_cases: Vec<LoadCase> = vec![
        (
            "group_too_large",
            format!(
                "Bob's stored group followed by zero bytes to MAX_GROUP_SIZE + 1 = {} bytes",
                MAX_GROUP_SIZE + 1
            ),
            g.to_vec(),
            Some(MAX_GROUP_SIZE + 1),
            "TooLarge",
        ),
        (
            "group_too_large_before_version",
            "group_too_large with version byte 0x01: the length is checked first".into(),
            replace_at(g, 0, &[0x01]),
            Some(MAX_GROUP_SIZE + 1),
            "TooLarge",
        ),
        (
            "group_empty",
            "no byte at all".into(),
            Vec::new(),
            None,
            "Truncated",
        ),
        (
            "group_version_v1",
            "version byte 0x01".into(),
            replace_at(g, 0, &[0x01]),
            None,
            "UnsupportedVersion(1)",
        ),
        (
            "group_type_member_chains",
            "type byte 0x2f (stored member chains)".into(),
            replace_at(g, 1, &[TYPE_MEMBER_CHAINS]),
            None,
            "UnexpectedType(47)",
        ),
        (
            "group_type_session",
            "type byte 0x20 (a stored session)".into(),
            replace_at(g, 1, &[0x20]),
            None,
            "UnexpectedType(32)",
        ),
        (
            "group_own_key_small_order",
            "the local identity key replaced by the neutral point".into(),
            replace_at(g, STORED_OWN_AT, &small),
            None,
            "InvalidPublicKey",
        ),
        (
            "group_own_key_off_curve",
            "the local identity key replaced by a y-coordinate that is no curve point".into(),
            replace_at(g, STORED_OWN_AT, &off_curve_key()),
            None,
            "InvalidPublicKey",
        ),
        (
            "group_padding_2",
            "padding byte 0x02".into(),
            replace_at(g, STORED_PADDING_AT, &[0x02]),
            None,
            "InvalidEncoding",
        ),
        (
            "group_padding_ff",
            "padding byte 0xff".into(),
            replace_at(g, STORED_PADDING_AT, &[0xFF]),
            None,
            "InvalidEncoding",
        ),
        (
            "group_truncated_fixed",
            "the first 146 bytes (no member count)".into(),
            g[..GROUP_FIXED_LENGTH - 1].to_vec(),
            None,
            "Truncated",
        ),
        (
            "group_truncated_in_members",
            "cut inside the last member".into(),
            g[..last_member + 16].to_vec(),
            None,
            "Truncated",
        ),
        (
            "group_trailing_byte",
            "one byte appended".into(),
            [g, &[0]].concat(),
            None,
            "TrailingData",
        ),
        (
            "group_count_4097",
            "member count 4097 (above MAX_GROUP_MEMBERS), checked as it is read".into(),
            replace_at(g, STORED_COUNT_AT, &4097u32.to_be_bytes()),
            None,
            "InvalidEncoding",
        ),
        (
            "group_count_one_more",
            "member count 4 with 3 members present".into(),
            replace_at(g, STORED_COUNT_AT, &4u32.to_be_bytes()),
            None,
            "Truncated",
        ),
        (
            "group_count_one_less",
            "member count 2 with 3 members present".into(),
            replace_at(g, STORED_COUNT_AT, &2u32.to_be_bytes()),
            None,
            "TrailingData",
        ),
        (
            "group_members_descending",
            "the first two members swapped".into(),
            swapped.clone(),
            None,
            "InvalidEncoding",
        ),
        (
            "group_members_equal",
            "the second member replaced by the first".into(),
            replace_at(g, members_at + 32, &g[members_at..members_at + 32]),
            None,
            "InvalidEncoding",
        ),
        (
            "group_own_among_members",
            "the second member replaced by the local identity key, the list sorted again".into(),
            with_own.clone(),
            None,
            "InvalidEncoding",
        ),
        (
            "group_own_among_members_then_truncated",
            format!(
                "group_own_among_members (the local identity key member {own_at} of 3) cut \
                 inside the last member: each member is checked as it is read (SPEC.md 10.1)"
            ),
            with_own[..with_own.len() - 5].to_vec(),
            None,
            "InvalidEncoding",
        ),
        (
            "group_members_descending_then_truncated",
            "group_members_descending cut inside the last member".into(),
            swapped[..swapped.len() - 5].to_vec(),
            None,
            "InvalidEncoding",
        ),
        (
            "group_member_small_order",
            "the first member replaced by the neutral point".into(),
            replace_at(g, members_at, &small),
            None,
            "InvalidPublicKey",
        ),
        (
            "group_member_not_canonical",
            "the last member replaced by a non-canonical encoding of a point of large order".into(),
            replace_at(g, last_member, &non_canonical_key()),
            None,
            "InvalidPublicKey",
        ),
    ];
    for (name, description, input, extended, expected) in group_cases {
        r.case_extended(name, description, LoadGroup, input, extended, expected);
    }

    // MemberChains::from_bytes (SPEC.md 7.12), from after9 (one chain, 5 keys) and
    // after_a6 (one retired id, five chains).
    let c = chains;
    let first_chain = CHAINS_FIXED_LENGTH;
    let first_skipped = first_chain + CHAIN_FIXED_LENGTH;
    let entry = |k: usize| first_skipped + SKIPPED_ENTRY_LENGTH * k;
    let chain_count_at = first_chain + 76;
    let next_at = first_chain + 40;
    let a6 = Chains::load(x.after_a6).unwrap();
    let variant6 = |f: &dyn Fn(&mut Chains)| {
        let mut m = a6.clone();
        f(&mut m);
        m.stored()
    };
    // after_a6: one retired id, then five chains without skipped keys.
    let second_chain = CHAINS_FIXED_LENGTH + 8 + CHAIN_FIXED_LENGTH;
    assert!(a6.chains[0].skipped.is_empty() && a6.retired.len() == 1);
    let swapped_entries = [
        &c[..entry(0)],
        &c[entry(1)..entry(2)],
        &c[entry(0)..entry(1)],
        &c[entry(2)..],
    ]
    .concat();
    let chain_cases: Vec<LoadCase> = vec![
        (
            "chains_too_large",
            format!(
                "after9's chains followed by zero bytes to MAX_MEMBER_CHAINS_SIZE + 1 = {} bytes",
                MAX_CHAINS_SIZE + 1
            ),
            c.to_vec(),
            Some(MAX_CHAINS_SIZE + 1),
            "TooLarge",
        ),
        (
            "chains_empty",
            "no byte at all".into(),
            Vec::new(),
            None,
            "Truncated",
        ),
        (
            "chains_version_v1",
            "version byte 0x01".into(),
            replace_at(c, 0, &[0x01]),
            None,
            "UnsupportedVersion(1)",
        ),
        (
            "chains_type_group",
            "type byte 0x2e (a stored group)".into(),
            replace_at(c, 1, &[TYPE_GROUP]),
            None,
            "UnexpectedType(46)",
        ),
        (
            "chains_member_small_order",
            "the member key replaced by the neutral point".into(),
            replace_at(c, STORED_MEMBER_AT, &small),
            None,
            "InvalidPublicKey",
        ),
        (
            "chains_truncated_fixed",
            "the first 67 bytes".into(),
            c[..CHAINS_FIXED_LENGTH - 1].to_vec(),
            None,
            "Truncated",
        ),
        (
            "chains_retired_17",
            "after_a6's chains with the retired count 17 (above MAX_RETIRED_CHAINS)".into(),
            replace_at(x.after_a6, STORED_RETIRED_COUNT_AT, &[17]),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_count_6",
            "after_a6's chains with the chain count 6 (above MAX_MEMBER_CHAINS)".into(),
            replace_at(x.after_a6, STORED_CHAIN_COUNT_AT, &[6]),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_retired_twice",
            "after_a6's chains with a second retired id equal to the first (a1's)".into(),
            variant6(&|m| m.retired.push(m.retired[0])),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_held_twice",
            "after_a6's chains with the second chain's id set to the first's".into(),
            variant6(&|m| m.chains[1].id = m.chains[0].id),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_held_and_retired",
            "after_a6's chains with the last chain's id set to the retired one".into(),
            variant6(&|m| m.chains[4].id = m.retired[0]),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_signing_key_small_order",
            "after9's chains with the chain's signing key replaced by the neutral point".into(),
            replace_at(c, first_chain + 8, &small),
            None,
            "InvalidPublicKey",
        ),
        (
            "chains_skipped_2001",
            "after9's chains with the skipped-key count 2001 (above MAX_GROUP_SKIPPED)".into(),
            replace_at(c, chain_count_at, &2001u32.to_be_bytes()),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_skipped_count_one_more",
            "after9's chains with the skipped-key count 6 with 5 entries present".into(),
            replace_at(c, chain_count_at, &6u32.to_be_bytes()),
            None,
            "Truncated",
        ),
        (
            "chains_skipped_count_one_less",
            "after9's chains with the skipped-key count 4 with 5 entries present".into(),
            replace_at(c, chain_count_at, &4u32.to_be_bytes()),
            None,
            "TrailingData",
        ),
        (
            "chains_skipped_descending",
            "after9's chains with its first two skipped keys swapped (iterations 4, 1)".into(),
            swapped_entries,
            None,
            "InvalidEncoding",
        ),
        (
            "chains_skipped_equal",
            "after9's chains with the second skipped iteration set to the first's (1, 1)".into(),
            replace_at(c, entry(1), &1u32.to_be_bytes()),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_skipped_at_next",
            "after9's chains with the last skipped iteration set to next (10)".into(),
            replace_at(c, entry(4), &10u32.to_be_bytes()),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_next_not_above_skipped",
            "after9's chains with next set to 8 (its last skipped iteration)".into(),
            replace_at(c, next_at, &8u32.to_be_bytes()),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_truncated_in_skipped",
            "after9's chains cut inside its last skipped key".into(),
            c[..c.len() - 10].to_vec(),
            None,
            "Truncated",
        ),
        (
            "chains_trailing_byte",
            "after9's chains with one byte appended".into(),
            [c, &[0]].concat(),
            None,
            "TrailingData",
        ),
        (
            "chains_six_chains",
            "after_a6's chains with a sixth chain (count 6 and the chain present)".into(),
            variant6(&|m| {
                let mut extra = m.chains[0].clone();
                extra.id ^= 0x5A5A;
                m.chains.push(extra);
            }),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_retired_twice_then_truncated",
            "chains_retired_twice cut right after its second retired id: each id is checked as \
             it is read (SPEC.md 10.1)"
                .into(),
            variant6(&|m| m.retired.push(m.retired[0]))[..CHAINS_FIXED_LENGTH + 16].to_vec(),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_held_twice_then_truncated",
            "chains_held_twice cut inside the second chain's signing key: a chain's id is \
             checked as soon as it is read (SPEC.md 10.1)"
                .into(),
            variant6(&|m| m.chains[1].id = m.chains[0].id)[..second_chain + 20].to_vec(),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_held_twice_small_order_key",
            "chains_held_twice with the second chain's signing key replaced by the neutral \
             point: the id is checked before the key"
                .into(),
            replace_at(
                &variant6(&|m| m.chains[1].id = m.chains[0].id),
                second_chain + 8,
                &small,
            ),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_held_and_retired_then_truncated",
            "after_a6's chains with the second chain's id set to the retired one, cut inside \
             that chain's signing key"
                .into(),
            variant6(&|m| m.chains[1].id = m.retired[0])[..second_chain + 20].to_vec(),
            None,
            "InvalidEncoding",
        ),
        (
            "chains_skipped_at_next_then_truncated",
            "chains_skipped_at_next cut inside that entry's message key: each iteration is \
             checked as it is read"
                .into(),
            replace_at(c, entry(4), &10u32.to_be_bytes())[..entry(4) + 10].to_vec(),
            None,
            "InvalidEncoding",
        ),
    ];
    for (name, description, input, extended, expected) in chain_cases {
        r.case_extended(name, description, LoadChains, input, extended, expected);
    }
    let exhausted = x.exhausted.stored();
    r.case(
        "add_member_exhausted",
        "Carol's exhausted group (next iteration 0xffffffff) adding eve: the distribution it \
         would return is refused by receivers, so add_member refuses (rotate first)",
        RejectOp::AddMember { group: &exhausted },
        x.eve.to_vec(),
        "ChainExhausted",
    );
    r.out
}
