//! What the group targets (`group_message`, `group_session`, `group_load`) share: the byte
//! layout of the group objects (SPEC.md §11.2, §11.3, §7.11, §7.12), a stored member's
//! chains read field by field ([`ChainsView`]), the chain's key schedule (§11.1), a
//! [`Registry`] of everything a sender signed, a **reference receiver**
//! ([`expect_decrypt`], [`expect_distribution`]) and the fixed group of the
//! `group_message` and `group_load` targets ([`group_fixture`]).
//!
//! The reference receiver is SPEC.md §11.4-§11.5 read step by step: for any input and any
//! stored chains it says which error the crate must return or, on success, the plaintext
//! and the exact encoding of the chains afterwards (the skipped keys kept, the chain key
//! after the message, the evictions). It decides the two cryptographic steps without
//! trusting the crate's cryptography: a signature (a message's, or a distribution's sender
//! binding) verifies exactly when the [`Registry`] holds it (a forgery is taken as
//! impossible), and a message decrypts exactly when a sender made it with a plaintext and
//! the receiver's keys for its iteration are the chain's genuine keys, which the registry
//! computes from the chain key the sender started the chain with.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use aes_gcm_siv::aead::AeadInOut as _;
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::prelude::*;
use doubleratchet::{
    DistributionOutcome, Group, GroupId, MemberChains, MAX_GROUP_JUMP, MAX_GROUP_MEMBERS,
    MAX_GROUP_SKIPPED, MAX_MEMBER_CHAINS, MAX_RETIRED_CHAINS,
};

type Span = core::ops::Range<usize>;

// ---------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------

/// Type bytes: a group message, a distribution, a stored group, stored member chains.
pub(crate) const TYPE_GROUP_MESSAGE: u8 = 0x08;
pub(crate) const TYPE_DISTRIBUTION: u8 = 0x09;
pub(crate) const TYPE_GROUP: u8 = 0x2E;
pub(crate) const TYPE_MEMBER_CHAINS: u8 = 0x2F;

/// A group message (SPEC.md §11.3): group id, chain id, iteration, key commitment, then the
/// ciphertext, its tag and the signature over everything before it.
pub(crate) const MESSAGE_GROUP: Span = 2..34;
pub(crate) const MESSAGE_CHAIN: usize = 34;
pub(crate) const MESSAGE_ITERATION: usize = 42;
pub(crate) const MESSAGE_COMMITMENT: Span = 46..78;
pub(crate) const GROUP_PREFIX: usize = 78;
pub(crate) const SIGNATURE: usize = 64;
/// Framing, tag and signature: a message is longer than this.
pub(crate) const GROUP_OVERHEAD: usize = GROUP_PREFIX + TAG + SIGNATURE;

/// A distribution (SPEC.md §11.2): group id, chain id, iteration, chain key, signing key,
/// sender binding.
pub(crate) const DIST_GROUP: Span = 2..34;
pub(crate) const DIST_CHAIN: usize = 34;
pub(crate) const DIST_ITERATION: usize = 42;
pub(crate) const DIST_KEY: Span = 46..78;
pub(crate) const DIST_SIGNING: Span = 78..110;
pub(crate) const DIST_BINDING: Span = 110..174;
pub(crate) const DISTRIBUTION_LENGTH: usize = 174;
/// The label of what a sender binding signs.
pub(crate) const GROUP_SENDER_LABEL: &[u8] = b"doubleratchet v2 group sender";

/// A stored group (SPEC.md §7.11).
pub(crate) const STORED_GROUP_ID: Span = 2..34;
pub(crate) const STORED_GROUP_OWN: Span = 34..66;
pub(crate) const STORED_GROUP_PADDING: usize = 66;
pub(crate) const STORED_GROUP_CHAIN: usize = 67;
pub(crate) const STORED_GROUP_ITERATION: usize = 75;
pub(crate) const STORED_GROUP_KEY: Span = 79..111;
pub(crate) const STORED_GROUP_SEED: Span = 111..143;
pub(crate) const STORED_GROUP_COUNT: usize = 143;
pub(crate) const STORED_GROUP_MEMBERS: usize = 147;
pub(crate) const MAX_STORED_GROUP: usize = STORED_GROUP_MEMBERS + 32 * MAX_GROUP_MEMBERS;

/// Stored member chains (SPEC.md §7.12).
pub(crate) const CHAINS_GROUP: Span = 2..34;
pub(crate) const CHAINS_MEMBER: Span = 34..66;
pub(crate) const CHAINS_RETIRED_COUNT: usize = 66;
pub(crate) const CHAINS_COUNT: usize = 67;
pub(crate) const CHAINS_RETIRED: usize = 68;
/// One chain: id, signing key, next iteration, chain key, skipped key count.
pub(crate) const CHAIN_FIXED: usize = 8 + 32 + 4 + 32 + 4;
/// One skipped key: iteration, message key, commitment.
pub(crate) const SKIPPED_ENTRY: usize = 4 + 32 + 32;
pub(crate) const MAX_STORED_CHAINS: usize = CHAINS_RETIRED
    + 8 * MAX_RETIRED_CHAINS
    + MAX_MEMBER_CHAINS * (CHAIN_FIXED + SKIPPED_ENTRY * MAX_GROUP_SKIPPED);

/// 32 bytes of `bytes` at `span`.
pub(crate) fn arr32(bytes: &[u8]) -> [u8; 32] {
    bytes[..32].try_into().unwrap()
}

// ---------------------------------------------------------------------------------------
// The chain's key schedule (SPEC.md §11.1)
// ---------------------------------------------------------------------------------------

fn hmac_byte(key: &[u8; 32], input: u8) -> [u8; 32] {
    let mut h = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
    h.update(&[input]);
    h.finalize().into_bytes().into()
}

/// One step of a chain key: `(mk, cm)` of its iteration and the next chain key.
pub(crate) fn step(ck: &[u8; 32]) -> (([u8; 32], [u8; 32]), [u8; 32]) {
    (
        (hmac_byte(ck, 0x03), hmac_byte(ck, 0x04)),
        hmac_byte(ck, 0x05),
    )
}

/// `ENCRYPT(mk, plaintext, aad)` of SPEC.md §4.1: AES-256-GCM-SIV, zero nonce, tag appended.
pub(crate) fn seal(mk: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    use aes_gcm_siv::aead::KeyInit as _;
    let mut buf = plaintext.to_vec();
    let tag = Aes256GcmSiv::new_from_slice(mk)
        .unwrap()
        .encrypt_inout_detached(&Nonce::from([0u8; 12]), aad, buf.as_mut_slice().into())
        .unwrap();
    buf.extend_from_slice(&tag);
    buf
}

/// The encoding of `plaintext` under `padding` (SPEC.md §4.9): the plaintext, the end
/// marker `0x80`, zero bytes up to the padded length.
pub(crate) fn encode_plaintext(padding: Padding, plaintext: &[u8]) -> Vec<u8> {
    let mut out = plaintext.to_vec();
    out.push(0x80);
    out.resize(encoded_length(padding, plaintext.len()), 0);
    out
}

// ---------------------------------------------------------------------------------------
// Member chains, field by field (SPEC.md §7.12)
// ---------------------------------------------------------------------------------------

/// One receiving chain of a stored [`MemberChains`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainView {
    pub(crate) id: u64,
    pub(crate) signing: [u8; 32],
    pub(crate) next: u32,
    pub(crate) key: [u8; 32],
    /// Iteration -> (message key, commitment).
    pub(crate) skipped: BTreeMap<u32, ([u8; 32], [u8; 32])>,
}

/// A stored [`MemberChains`], field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainsView {
    pub(crate) group: [u8; 32],
    pub(crate) member: [u8; 32],
    pub(crate) retired: Vec<u64>,
    pub(crate) chains: Vec<ChainView>,
}

impl ChainsView {
    /// Reads an encoding that loads (no check beyond the layout).
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        let retired_count = bytes[CHAINS_RETIRED_COUNT] as usize;
        let count = bytes[CHAINS_COUNT] as usize;
        let retired = (0..retired_count)
            .map(|k| be_u64(bytes, CHAINS_RETIRED + 8 * k))
            .collect();
        let mut at = CHAINS_RETIRED + 8 * retired_count;
        let mut chains = Vec::with_capacity(count);
        for _ in 0..count {
            let skipped_count = be_u32(bytes, at + 76) as usize;
            let mut chain = ChainView {
                id: be_u64(bytes, at),
                signing: arr32(&bytes[at + 8..]),
                next: be_u32(bytes, at + 40),
                key: arr32(&bytes[at + 44..]),
                skipped: BTreeMap::new(),
            };
            at += CHAIN_FIXED;
            for _ in 0..skipped_count {
                chain.skipped.insert(
                    be_u32(bytes, at),
                    (arr32(&bytes[at + 4..]), arr32(&bytes[at + 36..])),
                );
                at += SKIPPED_ENTRY;
            }
            chains.push(chain);
        }
        assert_eq!(at, bytes.len(), "member chains longer than their fields");
        ChainsView {
            group: arr32(&bytes[CHAINS_GROUP]),
            member: arr32(&bytes[CHAINS_MEMBER]),
            retired,
            chains,
        }
    }

    /// The encoding (SPEC.md §7.12).
    pub(crate) fn encode(&self) -> Vec<u8> {
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
            out.extend_from_slice(&c.key);
            out.extend_from_slice(&u32::try_from(c.skipped.len()).unwrap().to_be_bytes());
            for (i, (mk, cm)) in &c.skipped {
                out.extend_from_slice(&i.to_be_bytes());
                out.extend_from_slice(mk);
                out.extend_from_slice(cm);
            }
        }
        out
    }

    /// The chain with id `id` and its position.
    pub(crate) fn chain(&self, id: u64) -> Option<(usize, &ChainView)> {
        self.chains.iter().enumerate().find(|(_, c)| c.id == id)
    }
}

/// A loaded [`MemberChains`] agrees with its encoding `bytes` field by field.
pub(crate) fn check_chains_fields(chains: &MemberChains, bytes: &[u8]) {
    let view = ChainsView::parse(bytes);
    assert_eq!(view.encode(), bytes, "member chains re-encode differently");
    assert_eq!(chains.group_id().as_bytes(), &view.group);
    assert_eq!(chains.member().as_bytes(), &view.member);
    assert_eq!(
        chains.chain_ids().collect::<Vec<_>>(),
        view.chains.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    assert_eq!(
        chains.stored_skipped(),
        view.chains.iter().map(|c| c.skipped.len()).sum::<usize>()
    );
    let _ = format!("{chains:?}");
}

// ---------------------------------------------------------------------------------------
// What senders made
// ---------------------------------------------------------------------------------------

/// A sender chain: its owner, signing key and genuine keys from its first iteration on.
#[derive(Clone)]
pub(crate) struct ChainTable {
    /// The identity key of the device whose chain it is.
    pub(crate) owner: [u8; 32],
    pub(crate) signing_key: SigningKey,
    pub(crate) signing: [u8; 32],
    /// The first iteration whose chain key is known.
    pub(crate) first: u32,
    /// `keys[k]`: the chain key at iteration `first + k`.
    pub(crate) keys: Vec<[u8; 32]>,
    /// `message_keys[k]`: `(mk, cm)` of iteration `first + k` (one fewer than `keys`).
    pub(crate) message_keys: Vec<([u8; 32], [u8; 32])>,
}

impl ChainTable {
    /// Extends the table to hold the chain key of iteration `n`.
    pub(crate) fn extend_to(&mut self, n: u32) {
        while u64::from(self.first) + (self.keys.len() as u64) <= u64::from(n) {
            let (keys, next) = step(self.keys.last().unwrap());
            self.message_keys.push(keys);
            self.keys.push(next);
        }
    }

    /// The table extended to hold the chain key of iteration `n`, if that is at most
    /// `MAX_GROUP_JUMP + 1` steps past what it holds (a copy only when it must grow).
    pub(crate) fn reaching(&self, n: u32) -> Option<std::borrow::Cow<'_, ChainTable>> {
        let held = u64::from(self.first) + self.keys.len() as u64;
        if u64::from(n) < held {
            return Some(std::borrow::Cow::Borrowed(self));
        }
        if u64::from(n) - held > u64::from(MAX_GROUP_JUMP) {
            return None;
        }
        let mut t = self.clone();
        t.extend_to(n);
        Some(std::borrow::Cow::Owned(t))
    }

    /// The genuine chain key at iteration `n`, if the table holds it.
    pub(crate) fn key_at(&self, n: u32) -> Option<&[u8; 32]> {
        self.keys.get(n.checked_sub(self.first)? as usize)
    }

    /// The genuine `(mk, cm)` of iteration `n`, if the table holds them.
    pub(crate) fn message_keys_at(&self, n: u32) -> Option<&([u8; 32], [u8; 32])> {
        self.message_keys.get(n.checked_sub(self.first)? as usize)
    }

    /// `bytes` (everything but a signature) with the chain's signature appended.
    pub(crate) fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out.extend_from_slice(&self.signing_key.sign(bytes).to_bytes());
        out
    }
}

/// A message a sender signed.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    /// The signing key that signed it.
    pub(crate) signer: [u8; 32],
    /// Its plaintext, when it decrypts with the genuine keys of the chain its chain id
    /// names (whoever signed it); `None` when it cannot (a wrong commitment, a damaged
    /// ciphertext, no end marker).
    pub(crate) plaintext: Option<Vec<u8>>,
}

/// Everything senders made: their chains' genuine keys, the messages they signed and the
/// sender bindings of their distributions.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    pub(crate) chains: HashMap<u64, ChainTable>,
    pub(crate) messages: HashMap<Vec<u8>, Signed>,
    /// `GROUP_SENDER_LABEL || group || chain id || signing key || sender || binding`.
    pub(crate) bindings: HashSet<Vec<u8>>,
}

/// What a distribution's binding signs, followed by the binding, for sender `sender`.
fn binding_record(distribution: &[u8], sender: &[u8; 32]) -> Vec<u8> {
    [
        GROUP_SENDER_LABEL,
        &distribution[DIST_GROUP],
        &distribution[DIST_CHAIN..DIST_CHAIN + 8],
        &distribution[DIST_SIGNING],
        sender,
        &distribution[DIST_BINDING],
    ]
    .concat()
}

impl Registry {
    /// Records `group`'s sending chain from its stored form, at its current iteration: call
    /// it when the chain starts (then every later key is known). Returns the chain id.
    pub(crate) fn chain_of(&mut self, group: &Group) -> u64 {
        let stored = group.to_bytes();
        let id = be_u64(&stored, STORED_GROUP_CHAIN);
        let signing_key = SigningKey::from_bytes(&arr32(&stored[STORED_GROUP_SEED]));
        let table = ChainTable {
            owner: arr32(&stored[STORED_GROUP_OWN]),
            signing: signing_key.verifying_key().to_bytes(),
            signing_key,
            first: be_u32(&stored, STORED_GROUP_ITERATION),
            keys: vec![arr32(&stored[STORED_GROUP_KEY])],
            message_keys: Vec::new(),
        };
        let old = self.chains.insert(id, table);
        assert!(old.is_none(), "chain id {id:#x} drawn twice");
        id
    }

    /// Records a distribution its chain's owner made (its sender binding), after checking
    /// it against the chain.
    pub(crate) fn distribution(&mut self, sender: &IdentityKey, bytes: &[u8]) {
        assert_eq!(bytes.len(), DISTRIBUTION_LENGTH);
        let table = &self.chains[&be_u64(bytes, DIST_CHAIN)];
        assert_eq!(bytes[DIST_SIGNING], table.signing);
        assert_eq!(&table.owner, sender.as_bytes());
        let iteration = be_u32(bytes, DIST_ITERATION);
        if iteration != u32::MAX {
            let mut t = table.clone();
            t.extend_to(iteration);
            assert_eq!(t.key_at(iteration), Some(&arr32(&bytes[DIST_KEY])));
        }
        self.bindings
            .insert(binding_record(bytes, sender.as_bytes()));
    }

    /// Records a binding made by the chain `signer` signs with, for any distribution.
    pub(crate) fn binding(&mut self, bytes: &[u8], sender: &IdentityKey) {
        self.bindings
            .insert(binding_record(bytes, sender.as_bytes()));
    }

    /// Records a message made by its chain (the chain of its chain id field, which signed
    /// it) and extends the chain's keys past it. A message with a plaintext carries its
    /// iteration's genuine commitment.
    pub(crate) fn message(&mut self, bytes: &[u8], plaintext: Option<Vec<u8>>) {
        let id = be_u64(bytes, MESSAGE_CHAIN);
        let iteration = be_u32(bytes, MESSAGE_ITERATION);
        let table = self
            .chains
            .get_mut(&id)
            .expect("a message of an unknown chain");
        table.extend_to(iteration.saturating_add(1));
        if plaintext.is_some() {
            assert_eq!(
                table.message_keys_at(iteration).map(|k| k.1),
                Some(arr32(&bytes[MESSAGE_COMMITMENT])),
                "the sender's commitment is not SPEC.md §11.1's"
            );
        }
        let signer = table.signing;
        self.messages
            .insert(bytes.to_vec(), Signed { signer, plaintext });
    }

    /// Who signed `bytes`, if a sender did.
    pub(crate) fn signer(&self, bytes: &[u8]) -> Option<[u8; 32]> {
        self.messages.get(bytes).map(|m| m.signer)
    }

    /// A message the chain `id` makes at `iteration` by hand: the commitment `commitment`
    /// (the genuine one if `None`), the encoded plaintext `encoded` under the iteration's
    /// genuine message key, for group `group`; signed.
    pub(crate) fn craft(
        &mut self,
        group: &[u8; 32],
        id: u64,
        iteration: u32,
        commitment: Option<[u8; 32]>,
        encoded: &[u8],
    ) -> Vec<u8> {
        let table = self.chains.get_mut(&id).unwrap();
        table.extend_to(iteration.saturating_add(1));
        let (mk, cm) = *table.message_keys_at(iteration).unwrap();
        let mut out = vec![WIRE_VERSION, TYPE_GROUP_MESSAGE];
        out.extend_from_slice(group);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&iteration.to_be_bytes());
        out.extend_from_slice(&commitment.unwrap_or(cm));
        let sealed = seal(&mk, &out.clone(), encoded);
        out.extend_from_slice(&sealed);
        table.sign(&out)
    }
}

// ---------------------------------------------------------------------------------------
// The reference receiver (SPEC.md §11.2-§11.5)
// ---------------------------------------------------------------------------------------

/// The receiving group as the reference receiver needs it: its id and members.
pub(crate) struct GroupInfo {
    pub(crate) id: [u8; 32],
    pub(crate) members: Vec<[u8; 32]>,
}

impl GroupInfo {
    pub(crate) fn of(group: &Group) -> Self {
        GroupInfo {
            id: *group.id().as_bytes(),
            members: group.members().iter().map(|k| *k.as_bytes()).collect(),
        }
    }
}

/// What `GroupMessage::parse` must say (SPEC.md §11.3).
pub(crate) fn expected_message_parse(data: &[u8]) -> Result<(), Error> {
    if data.len() > MAX_MESSAGE_SIZE {
        return Err(Error::TooLarge);
    }
    match data {
        [] => Err(Error::Truncated),
        [v, ..] if *v != WIRE_VERSION => Err(Error::UnsupportedVersion(*v)),
        [_] => Err(Error::Truncated),
        [_, t, ..] if *t != TYPE_GROUP_MESSAGE => Err(Error::UnexpectedType(*t)),
        _ if data.len() <= GROUP_OVERHEAD => Err(Error::Truncated),
        _ => Ok(()),
    }
}

/// What `Group::decrypt` must give for `data` from the member whose chains `chains` are,
/// `signer` the key that signed `data` (if a sender did): the plaintext and the chains
/// afterwards, or the error of the first step that fails (SPEC.md §11.5).
pub(crate) fn expect_decrypt(
    group: &GroupInfo,
    chains: &ChainsView,
    data: &[u8],
    signer: Option<[u8; 32]>,
    registry: &Registry,
) -> Result<(Vec<u8>, ChainsView), Error> {
    // 1-3: framing, the group, the chains.
    expected_message_parse(data)?;
    if data[MESSAGE_GROUP] != group.id {
        return Err(Error::WrongGroup);
    }
    if chains.group != group.id {
        return Err(Error::WrongRecord);
    }
    if !group.members.contains(&chains.member) {
        return Err(Error::NotGroupMember);
    }
    // 4-5: the chain, the bounds.
    let id = be_u64(data, MESSAGE_CHAIN);
    let i = be_u32(data, MESSAGE_ITERATION);
    let Some((index, chain)) = chains.chain(id) else {
        return Err(if chains.retired.contains(&id) {
            Error::DuplicateOrExpired
        } else {
            Error::UnknownChain
        });
    };
    let stored = if i < chain.next {
        if !chain.skipped.contains_key(&i) {
            return Err(Error::DuplicateOrExpired);
        }
        true
    } else {
        if i == u32::MAX || i - chain.next > MAX_GROUP_JUMP {
            return Err(Error::TooFarAhead);
        }
        false
    };
    // 6: the signature.
    if signer != Some(chain.signing) {
        return Err(Error::InvalidSignature);
    }
    // 7-8: the keys are the genuine keys of chain `id` (whatever signing key the chains
    // store for it: the signature was step 6), and a sender made the message with a
    // plaintext.
    let table = registry.chains.get(&id);
    let genuine = table.is_some_and(|t| {
        if stored {
            t.message_keys_at(i) == chain.skipped.get(&i)
        } else {
            t.key_at(chain.next) == Some(&chain.key)
        }
    });
    let plaintext = registry
        .messages
        .get(data)
        .and_then(|m| m.plaintext.clone());
    let (true, Some(plaintext), Some(table)) = (genuine, plaintext, table) else {
        return Err(Error::DecryptionFailed);
    };
    // 9: the chains change.
    let mut after = chains.clone();
    let c = &mut after.chains[index];
    if stored {
        c.skipped.remove(&i);
    } else {
        let keep_from = i.saturating_sub(MAX_GROUP_SKIPPED as u32).max(c.next);
        for j in keep_from..i {
            c.skipped.insert(j, *table.message_keys_at(j).unwrap());
        }
        c.key = *table.key_at(i + 1).expect("the chain key after a message");
        c.next = i + 1;
        while c.skipped.len() > MAX_GROUP_SKIPPED {
            c.skipped.pop_first();
        }
    }
    Ok((plaintext, after))
}

/// What `Distribution::from_bytes` must say (SPEC.md §11.2).
pub(crate) fn expected_distribution_parse(data: &[u8]) -> Result<(), Error> {
    match data {
        [] => return Err(Error::Truncated),
        [v, ..] if *v != WIRE_VERSION => return Err(Error::UnsupportedVersion(*v)),
        [_] => return Err(Error::Truncated),
        [_, t, ..] if *t != TYPE_DISTRIBUTION => return Err(Error::UnexpectedType(*t)),
        _ => {}
    }
    if data.len() < DIST_SIGNING.end {
        return Err(Error::Truncated);
    }
    if IdentityKey::from_bytes(&arr32(&data[DIST_SIGNING])).is_err() {
        return Err(Error::InvalidPublicKey);
    }
    match data.len().cmp(&DISTRIBUTION_LENGTH) {
        core::cmp::Ordering::Less => Err(Error::Truncated),
        core::cmp::Ordering::Greater => Err(Error::TrailingData),
        core::cmp::Ordering::Equal => Ok(()),
    }
}

/// What `Group::process_distribution(sender, data, chains)` must give (SPEC.md §11.4): the
/// outcome and the chains afterwards (`Added`, `Advanced`, or `Known` with nothing
/// changed), or the error of the first step that fails.
pub(crate) fn expect_distribution(
    group: &GroupInfo,
    sender: &[u8; 32],
    chains: &ChainsView,
    data: &[u8],
    registry: &Registry,
) -> Result<(DistributionOutcome, ChainsView), Error> {
    expected_distribution_parse(data)?;
    if data[DIST_GROUP] != group.id {
        return Err(Error::WrongGroup);
    }
    if chains.group != group.id {
        return Err(Error::WrongRecord);
    }
    if !group.members.contains(sender) {
        return Err(Error::NotGroupMember);
    }
    if chains.member != *sender {
        return Err(Error::WrongRecord);
    }
    let iteration = be_u32(data, DIST_ITERATION);
    if iteration == u32::MAX {
        return Err(Error::InvalidEncoding);
    }
    if !registry.bindings.contains(&binding_record(data, sender)) {
        return Err(Error::InvalidSignature);
    }
    let id = be_u64(data, DIST_CHAIN);
    let signing = arr32(&data[DIST_SIGNING]);
    if chains.retired.contains(&id) {
        return Err(Error::DuplicateOrExpired);
    }
    if let Some((index, held)) = chains.chain(id) {
        return expect_held(registry, chains, index, held, data);
    }
    let mut after = chains.clone();
    let evicted = (after.chains.len() >= MAX_MEMBER_CHAINS).then(|| {
        let old = after.chains.remove(0);
        if after.retired.len() >= MAX_RETIRED_CHAINS {
            after.retired.remove(0);
        }
        after.retired.push(old.id);
        old.id
    });
    after.chains.push(ChainView {
        id,
        signing,
        next: iteration,
        key: arr32(&data[DIST_KEY]),
        skipped: BTreeMap::new(),
    });
    Ok((DistributionOutcome::Added { evicted }, after))
}

/// SPEC.md §11.4 step 7: a distribution `data` of held chain `held` (at `index`).
///
/// Whether the chain key reached by stepping the held chain to the distribution's
/// iteration `d` equals the distribution's: at `d = next` it is the held key itself;
/// further, the steps reach the chain's genuine key at `d` exactly when the held key is
/// the genuine key at `next` (stepping another key reaches it only by an HMAC preimage),
/// so they are equal when the distribution's key is the genuine one at `d`.
fn expect_held(
    registry: &Registry,
    chains: &ChainsView,
    index: usize,
    held: &ChainView,
    data: &[u8],
) -> Result<(DistributionOutcome, ChainsView), Error> {
    if held.signing != arr32(&data[DIST_SIGNING]) {
        return Err(Error::ConflictingChain);
    }
    let d = be_u32(data, DIST_ITERATION);
    let key = arr32(&data[DIST_KEY]);
    if d < held.next {
        return Ok((DistributionOutcome::Known, chains.clone()));
    }
    let mut after = chains.clone();
    let c = &mut after.chains[index];
    if d - held.next > MAX_GROUP_JUMP {
        // Too far to check: taken as it is; the skipped keys stay.
        c.next = d;
        c.key = key;
        return Ok((DistributionOutcome::Advanced, after));
    }
    if d == held.next {
        return if key == held.key {
            Ok((DistributionOutcome::Known, chains.clone()))
        } else {
            Err(Error::ConflictingChain)
        };
    }
    let table = registry
        .chains
        .get(&held.id)
        .filter(|t| t.key_at(held.next) == Some(&held.key))
        .and_then(|t| t.reaching(d))
        .filter(|t| t.key_at(d) == Some(&key));
    let Some(table) = table else {
        return Err(Error::ConflictingChain);
    };
    let keep_from = d.saturating_sub(MAX_GROUP_SKIPPED as u32).max(c.next);
    for j in keep_from..d {
        c.skipped.insert(j, *table.message_keys_at(j).unwrap());
    }
    c.next = d;
    c.key = key;
    while c.skipped.len() > MAX_GROUP_SKIPPED {
        c.skipped.pop_first();
    }
    Ok((DistributionOutcome::Advanced, after))
}

/// `group.decrypt(chains, data)`, checked against [`expect_decrypt`]: the same error and
/// the chains byte-identical, or the same plaintext and exactly the predicted chains.
pub(crate) fn group_decrypt_checked(
    group: &Group,
    chains: &mut MemberChains,
    data: &[u8],
    signer: Option<[u8; 32]>,
    registry: &Registry,
) -> Result<Vec<u8>, Error> {
    let before = chains.to_bytes();
    let view = ChainsView::parse(&before);
    let expected = expect_decrypt(&GroupInfo::of(group), &view, data, signer, registry);
    let result = group.decrypt(chains, data);
    match (&expected, &result) {
        (Ok((plaintext, after)), Ok(got)) => {
            assert_eq!(
                got,
                plaintext,
                "decrypted to another plaintext: {}",
                hex(data)
            );
            assert_eq!(
                *chains.to_bytes(),
                after.encode(),
                "the chains after decrypting {} are not SPEC.md §11.5's",
                hex(data)
            );
        }
        (Err(e), Err(got)) => {
            assert_eq!(got, e, "decrypt refused with another error: {}", hex(data));
            assert_eq!(
                *chains.to_bytes(),
                *before,
                "a refused message ({got:?}) changed the chains: {}",
                hex(data)
            );
        }
        (Ok(_), Err(got)) => panic!(
            "decrypt refused ({got:?}) a message SPEC.md §11.5 accepts: {}",
            hex(data)
        ),
        (Err(e), Ok(_)) => panic!(
            "decrypt accepted a message SPEC.md §11.5 refuses ({e:?}): {}",
            hex(data)
        ),
    }
    result
}

/// `group.process_distribution(sender, data, chains)`, checked against
/// [`expect_distribution`]: the same error and the chains byte-identical, or the same
/// outcome and exactly the predicted chains.
pub(crate) fn distribution_checked(
    group: &Group,
    sender: &IdentityKey,
    chains: &mut MemberChains,
    data: &[u8],
    registry: &Registry,
) -> Result<DistributionOutcome, Error> {
    let before = chains.to_bytes();
    let view = ChainsView::parse(&before);
    let expected = expect_distribution(
        &GroupInfo::of(group),
        sender.as_bytes(),
        &view,
        data,
        registry,
    );
    let result = group.process_distribution(sender, data, chains);
    match (&expected, &result) {
        (Ok((outcome, after)), Ok(got)) => {
            assert_eq!(got, outcome, "distribution outcome: {}", hex(data));
            assert_eq!(
                *chains.to_bytes(),
                after.encode(),
                "the chains after distribution {} are not SPEC.md §11.4's",
                hex(data)
            );
        }
        (Err(e), Err(got)) => {
            assert_eq!(
                got,
                e,
                "a distribution refused with another error: {}",
                hex(data)
            );
            assert_eq!(
                *chains.to_bytes(),
                *before,
                "a refused distribution ({got:?}) changed the chains: {}",
                hex(data)
            );
        }
        _ => panic!(
            "process_distribution gave {result:?}, SPEC.md §11.4 says {:?}: {}",
            expected.as_ref().map(|e| e.0),
            hex(data)
        ),
    }
    result
}

// ---------------------------------------------------------------------------------------
// The fixture of `group_message` and `group_load`
// ---------------------------------------------------------------------------------------

/// Stored chains the receiver holds, and the device whose distributions they take.
pub(crate) struct ChainsSlot {
    /// Index into [`GroupFixture::keys`].
    pub(crate) sender: usize,
    pub(crate) bytes: Vec<u8>,
}

/// A fixed group (SPEC.md §11): members A, B and C, and D who is not one; B receives.
pub(crate) struct GroupFixture {
    pub(crate) id: GroupId,
    /// The identity keys of A, B, C and D.
    pub(crate) keys: [IdentityKey; 4],
    /// B's group (members A and C).
    pub(crate) receiver: Group,
    /// B's stored chains: A's (two chains with skipped keys, a retired one, five held), C's
    /// (one chain at the last iterations), an outsider's (A's chains under D's key) and
    /// A's chains of another group.
    pub(crate) slots: Vec<ChainsSlot>,
    pub(crate) registry: Registry,
    /// Every message the senders made, in order.
    pub(crate) messages: Vec<(&'static str, Vec<u8>)>,
    /// Every distribution the senders made (or crafted), in order: its sender (index into
    /// `keys`).
    pub(crate) distributions: Vec<(&'static str, usize, Vec<u8>)>,
    /// Stored groups and chains for the `group_load` seeds.
    pub(crate) stored_groups: Vec<(&'static str, Vec<u8>)>,
    pub(crate) stored_chains: Vec<(&'static str, Vec<u8>)>,
}

/// Slots of [`GroupFixture::slots`]: A's chains, C's, the outsider's, the other group's.
pub(crate) const SLOT_A: usize = 0;
pub(crate) const SLOT_C: usize = 1;
pub(crate) const SLOT_OTHER_GROUP: usize = 3;
/// Index of A, B, C, D in [`GroupFixture::keys`].
pub(crate) const A: usize = 0;
pub(crate) const B: usize = 1;
pub(crate) const C: usize = 2;
pub(crate) const D: usize = 3;

pub(crate) fn group_fixture() -> &'static GroupFixture {
    static FIXTURE: OnceLock<GroupFixture> = OnceLock::new();
    FIXTURE.get_or_init(make_group_fixture)
}

impl GroupFixture {
    /// The message labelled `label`.
    pub(crate) fn message(&self, label: &str) -> &[u8] {
        &self.messages.iter().find(|(l, _)| *l == label).unwrap().1
    }

    /// The distribution labelled `label`.
    pub(crate) fn distribution(&self, label: &str) -> &[u8] {
        &self
            .distributions
            .iter()
            .find(|(l, _, _)| *l == label)
            .unwrap()
            .2
    }
}

fn make_group_fixture() -> GroupFixture {
    let mut r = rng(0x6_0001);
    let keys: [IdentityKey; 4] =
        core::array::from_fn(|_| *IdentityKeyPair::generate(&mut r).unwrap().public_key());
    let [a, b, c, d] = keys;
    let id = GroupId::from_bytes([0x47; 32]);
    let other_id = GroupId::from_bytes([0x48; 32]);
    let mut reg = Registry::default();
    let mut messages: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut distributions: Vec<(&'static str, usize, Vec<u8>)> = Vec::new();

    let receiver = Group::new(id, &b, &[c, a], &mut r).unwrap();
    let mut alice = Group::new(id, &a, &[b, c], &mut r).unwrap();
    let mut chains_a = MemberChains::new(&id, &a);
    let send = |group: &mut Group,
                reg: &mut Registry,
                label: &'static str,
                messages: &mut Vec<(&'static str, Vec<u8>)>| {
        let plaintext = label.as_bytes();
        let m = group.encrypt(plaintext).unwrap();
        reg.message(&m, Some(plaintext.to_vec()));
        messages.push((label, m.clone()));
        m
    };
    let distribute =
        |group: &Group,
         sender: usize,
         reg: &mut Registry,
         label: &'static str,
         distributions: &mut Vec<(&'static str, usize, Vec<u8>)>| {
            let bytes = group.distribution().to_bytes().to_vec();
            reg.distribution(group.own_identity(), &bytes);
            distributions.push((label, sender, bytes.clone()));
            bytes
        };
    let added = |evicted| Ok(DistributionOutcome::Added { evicted });

    // A's chain 0: two messages; B takes its distribution and the second message.
    let c0 = reg.chain_of(&alice);
    let d0 = distribute(&alice, A, &mut reg, "a-chain0", &mut distributions);
    send(&mut alice, &mut reg, "a-chain0-0", &mut messages);
    let m = send(&mut alice, &mut reg, "a-chain0-1", &mut messages);
    assert_eq!(
        receiver.process_distribution(&a, &d0, &mut chains_a),
        added(None)
    );
    assert_eq!(receiver.decrypt(&mut chains_a, &m).unwrap(), b"a-chain0-1");
    // Chains 1-3: one message each, not received.
    for (dist, msg) in [
        ("a-chain1", "a-chain1-0"),
        ("a-chain2", "a-chain2-0"),
        ("a-chain3", "a-chain3-0"),
    ] {
        alice.rotate(&mut r).unwrap();
        reg.chain_of(&alice);
        let d = distribute(&alice, A, &mut reg, dist, &mut distributions);
        send(&mut alice, &mut reg, msg, &mut messages);
        assert_eq!(
            receiver.process_distribution(&a, &d, &mut chains_a),
            added(None)
        );
    }
    // Chain 4: eight messages; B receives 2 and 5 (0, 1, 3, 4 skipped; 6, 7 ahead).
    alice.rotate(&mut r).unwrap();
    let c4 = reg.chain_of(&alice);
    let d4 = distribute(&alice, A, &mut reg, "a-chain4", &mut distributions);
    let labels = [
        "a-chain4-0",
        "a-chain4-1",
        "a-chain4-2",
        "a-chain4-3",
        "a-chain4-4",
        "a-chain4-5",
        "a-chain4-6",
        "a-chain4-7",
    ];
    let chain4: Vec<Vec<u8>> = labels
        .iter()
        .map(|l| send(&mut alice, &mut reg, l, &mut messages))
        .collect();
    assert_eq!(
        receiver.process_distribution(&a, &d4, &mut chains_a),
        added(None)
    );
    for k in [2, 5] {
        assert_eq!(
            receiver.decrypt(&mut chains_a, &chain4[k]).unwrap(),
            labels[k].as_bytes()
        );
    }
    // Chain 5: distributed at iteration 2, after two messages; three more. Taking it
    // evicts chain 0.
    alice.rotate(&mut r).unwrap();
    let c5 = reg.chain_of(&alice);
    send(&mut alice, &mut reg, "a-chain5-0", &mut messages);
    send(&mut alice, &mut reg, "a-chain5-1", &mut messages);
    let d5 = distribute(&alice, A, &mut reg, "a-chain5-at-2", &mut distributions);
    for l in ["a-chain5-2", "a-chain5-3", "a-chain5-4"] {
        send(&mut alice, &mut reg, l, &mut messages);
    }
    // Not taken: a newer distribution of chain 5 (`Advanced` for B).
    distribute(&alice, A, &mut reg, "a-chain5-at-5", &mut distributions);
    assert_eq!(
        receiver.process_distribution(&a, &d5, &mut chains_a),
        added(Some(c0))
    );
    // Chain 6, pending: B has not got its distribution.
    alice.rotate(&mut r).unwrap();
    let c6 = reg.chain_of(&alice);
    distribute(&alice, A, &mut reg, "a-chain6", &mut distributions);
    send(&mut alice, &mut reg, "a-chain6-0", &mut messages);
    distribute(&alice, A, &mut reg, "a-chain6-at-1", &mut distributions);
    send(&mut alice, &mut reg, "a-chain6-1", &mut messages);

    let view = ChainsView::parse(&chains_a.to_bytes());
    assert_eq!(view.retired, [c0]);
    assert_eq!(view.chains.len(), MAX_MEMBER_CHAINS);
    let (_, held4) = view.chain(c4).unwrap();
    assert_eq!(held4.next, 6);
    assert_eq!(
        held4.skipped.keys().copied().collect::<Vec<_>>(),
        [0, 1, 3, 4]
    );
    assert_eq!(view.chain(c5).unwrap().1.next, 2);

    // Messages A's chain 4 makes by hand: another plaintext at a skipped iteration and
    // ahead (they decrypt), no end marker, a wrong commitment, a damaged ciphertext (they
    // do not), and chain 4's message 6 signed by C's chain instead (made below).
    let group = *id.as_bytes();
    for (label, iteration, commitment, encoded, plaintext) in [
        (
            "a-chain4-3-other",
            3,
            None,
            encode_plaintext(Padding::Padme, b"another message 3"),
            Some(&b"another message 3"[..]),
        ),
        (
            "a-chain4-7-other",
            7,
            None,
            encode_plaintext(Padding::None, b"another message 7"),
            Some(&b"another message 7"[..]),
        ),
        ("a-chain4-4-no-end-marker", 4, None, vec![0; 64], None),
        (
            "a-chain4-6-wrong-commitment",
            6,
            Some([0x5a; 32]),
            encode_plaintext(Padding::Padme, b"a-chain4-6"),
            None,
        ),
    ] {
        let m = reg.craft(&group, c4, iteration, commitment, &encoded);
        reg.message(&m, plaintext.map(<[u8]>::to_vec));
        messages.push((label, m));
    }
    let mut damaged = chain4[1].clone();
    damaged[GROUP_PREFIX] ^= 1;
    let damaged = reg.chains[&c4].sign(&damaged[..damaged.len() - SIGNATURE]);
    reg.message(&damaged, None);
    messages.push(("a-chain4-1-damaged", damaged));

    // C's chain, started at iteration 2^32 - 4: three messages exhaust it; B takes its
    // distribution and the middle message. Then C's next chain, pending, with a message.
    let mut carol = Group::new(id, &c, &[a, b], &mut r).unwrap();
    let mut stored = carol.to_bytes().to_vec();
    stored[STORED_GROUP_ITERATION..STORED_GROUP_ITERATION + 4]
        .copy_from_slice(&(u32::MAX - 3).to_be_bytes());
    carol = Group::from_bytes(&stored).unwrap();
    let e0 = reg.chain_of(&carol);
    let dc = distribute(&carol, C, &mut reg, "c-chain0", &mut distributions);
    let mut chains_c = MemberChains::new(&id, &c);
    assert_eq!(
        receiver.process_distribution(&c, &dc, &mut chains_c),
        added(None)
    );
    let last = [
        send(&mut carol, &mut reg, "c-chain0-max-3", &mut messages),
        send(&mut carol, &mut reg, "c-chain0-max-2", &mut messages),
        send(&mut carol, &mut reg, "c-chain0-max-1", &mut messages),
    ];
    assert_eq!(carol.iteration(), u32::MAX);
    let exhausted = carol.to_bytes().to_vec();
    assert_eq!(carol.encrypt(b"x"), Err(Error::ChainExhausted));
    assert_eq!(*carol.to_bytes(), exhausted);
    assert_eq!(
        receiver.decrypt(&mut chains_c, &last[1]).unwrap(),
        b"c-chain0-max-2"
    );
    carol.rotate(&mut r).unwrap();
    reg.chain_of(&carol);
    distribute(&carol, C, &mut reg, "c-chain1", &mut distributions);
    send(&mut carol, &mut reg, "c-chain1-0", &mut messages);
    // A's chain 4's message 6 signed with C's chain: a forgery under A's name (it
    // decrypts only by chains that hold chain 4's keys under C's chain's signing key).
    let forged = reg.chains[&e0].sign(&chain4[6][..chain4[6].len() - SIGNATURE]);
    reg.message(&forged, Some(labels[6].as_bytes().to_vec()));
    // Registered as made by chain 4 above; the signer is C's chain.
    reg.messages.get_mut(&forged).unwrap().signer = reg.chains[&e0].signing;
    messages.push(("a-chain4-6-signed-by-c", forged));

    // Crafted distributions: chain 4's id with C's chain's signing key, bound to A by
    // that key (a held chain with another key: `ConflictingChain`); chain 6 at the
    // exhausted iteration; and A's group in another group.
    let mut conflicting = d4.clone();
    conflicting[DIST_SIGNING].copy_from_slice(&reg.chains[&e0].signing);
    let bound = [
        GROUP_SENDER_LABEL,
        &conflicting[DIST_GROUP],
        &conflicting[DIST_CHAIN..DIST_CHAIN + 8],
        &conflicting[DIST_SIGNING],
        a.as_bytes(),
    ]
    .concat();
    let binding = reg.chains[&e0].signing_key.sign(&bound).to_bytes();
    conflicting[DIST_BINDING].copy_from_slice(&binding);
    reg.binding(&conflicting, &a);
    distributions.push(("a-chain4-conflicting", A, conflicting));
    let mut exhausted_dist = distributions
        .iter()
        .find(|(l, _, _)| *l == "a-chain6")
        .unwrap()
        .2
        .clone();
    exhausted_dist[DIST_ITERATION..DIST_ITERATION + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    distributions.push(("a-chain6-exhausted", A, exhausted_dist));
    let mut elsewhere = Group::new(other_id, &a, &[b, c], &mut r).unwrap();
    reg.chain_of(&elsewhere);
    distribute(&elsewhere, A, &mut reg, "a-other-group", &mut distributions);
    send(&mut elsewhere, &mut reg, "a-other-group-0", &mut messages);
    let _ = (c5, c6);

    // The receiver's chains: A's, C's, an outsider's (A's chains under D's key), A's in
    // another group.
    let bytes_a = chains_a.to_bytes().to_vec();
    let mut outsider = bytes_a.clone();
    outsider[CHAINS_MEMBER].copy_from_slice(d.as_bytes());
    let mut other_group = bytes_a.clone();
    other_group[CHAINS_GROUP].copy_from_slice(other_id.as_bytes());
    let slots = vec![
        ChainsSlot {
            sender: A,
            bytes: bytes_a.clone(),
        },
        ChainsSlot {
            sender: C,
            bytes: chains_c.to_bytes().to_vec(),
        },
        ChainsSlot {
            sender: D,
            bytes: outsider,
        },
        ChainsSlot {
            sender: A,
            bytes: other_group,
        },
    ];
    for s in &slots {
        assert_eq!(
            *MemberChains::from_bytes(&s.bytes).unwrap().to_bytes(),
            s.bytes
        );
    }

    // Stored objects for `group_load`: groups (B's, B's without padding, A's, C's
    // exhausted and rotated, one without members) and chains (A's, C's, none, and A's after
    // 21 chains: 5 held, 16 retired).
    let mut unpadded = Group::from_bytes(&receiver.to_bytes()).unwrap();
    unpadded.set_padding(Padding::None);
    let alone = Group::new(id, &d, &[], &mut r).unwrap();
    let stored_groups = vec![
        ("group-b", receiver.to_bytes().to_vec()),
        ("group-b-unpadded", unpadded.to_bytes().to_vec()),
        ("group-a", alice.to_bytes().to_vec()),
        ("group-c-exhausted", exhausted),
        ("group-c", carol.to_bytes().to_vec()),
        ("group-alone", alone.to_bytes().to_vec()),
    ];
    let mut many = MemberChains::new(&id, &a);
    let mut busy = Group::new(id, &a, &[b], &mut r).unwrap();
    for _ in 0..MAX_MEMBER_CHAINS + MAX_RETIRED_CHAINS {
        busy.rotate(&mut r).unwrap();
        let d = busy.distribution().to_bytes();
        assert!(receiver.process_distribution(&a, &d, &mut many).is_ok());
    }
    let many = many.to_bytes().to_vec();
    assert_eq!(ChainsView::parse(&many).retired.len(), MAX_RETIRED_CHAINS);
    let stored_chains = vec![
        ("chains-a", bytes_a),
        ("chains-c", chains_c.to_bytes().to_vec()),
        (
            "chains-empty",
            MemberChains::new(&id, &c).to_bytes().to_vec(),
        ),
        ("chains-a-retired", many),
    ];

    GroupFixture {
        id,
        keys,
        receiver,
        slots,
        registry: reg,
        messages,
        distributions,
        stored_groups,
        stored_chains,
    }
}
