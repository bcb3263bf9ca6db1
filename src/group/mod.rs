//! Group messaging with sender keys (SPEC.md §11).
//!
//! Each member device of a group has its own *sender chain* in that group: a random chain
//! id, a hash-ratchet chain key and an Ed25519 signing key pair (`chain.rs`). It sends its
//! chain's current state to every other member once, as a [`Distribution`] inside their
//! pairwise sessions; after that each group message costs one chain step, one AEAD
//! encryption and one signature, whatever the group's size, and is sent once to all
//! (`message.rs`). Receivers keep each member's chains in a [`MemberChains`]
//! (`member.rs`). Removing a member rotates the local chain; every remaining member
//! rotates its own when it learns of the removal, so the removed member cannot read what
//! follows.
//!
//! A [`Group`] holds the local device's sending chain and the member list; the app stores
//! it (type `0x2E`) and one [`MemberChains`] per member (type `0x2F`, `storage.rs`).

use alloc::vec::Vec;
use core::fmt;

use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use crate::codec::Writer;
use crate::error::Error;
use crate::format::{
    GROUP_ID_LENGTH, GROUP_MESSAGE_OVERHEAD, GROUP_PREFIX_LENGTH, KEY_LENGTH, MAX_GROUP_MEMBERS,
    MAX_PLAINTEXT_SIZE, TYPE_GROUP_MESSAGE, WIRE_VERSION,
};
use crate::keys::{fill_random, IdentityKey, IdentityKeyPair};
use crate::padding::Padding;

mod chain;
mod member;
mod message;
mod storage;

use chain::GroupChainKey;
pub use member::{DistributionOutcome, MemberChains};
pub use message::{Distribution, GroupMessage};

/// A group's id (SPEC.md §11.1): 32 bytes the app chooses, the same for every member (for
/// example random bytes drawn by the group's creator, or a hash of the app's own group
/// id). Every group message and distribution names it, and a message is accepted only by
/// the group it names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub(crate) [u8; GROUP_ID_LENGTH]);

impl GroupId {
    /// The group id with these bytes.
    pub fn from_bytes(bytes: [u8; GROUP_ID_LENGTH]) -> Self {
        GroupId(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; GROUP_ID_LENGTH] {
        &self.0
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The local device's sending chain in a group.
pub(crate) struct SendingChain {
    pub(crate) id: u64,
    /// The next iteration to send; `u32::MAX` means exhausted.
    pub(crate) iteration: u32,
    /// The chain key at `iteration`.
    pub(crate) key: GroupChainKey,
    pub(crate) signing: IdentityKeyPair,
}

/// Randomness a new sending chain draws: its id, chain key and signing seed.
const NEW_CHAIN_RANDOM_LENGTH: usize = 8 + KEY_LENGTH + KEY_LENGTH;

impl SendingChain {
    /// A fresh chain at iteration 0 from `rng`, with an id other than `previous`.
    fn generate<R: TryCryptoRng + ?Sized>(
        rng: &mut R,
        previous: Option<u64>,
    ) -> Result<Self, Error> {
        let mut random = Zeroizing::new([0u8; NEW_CHAIN_RANDOM_LENGTH]);
        fill_random(rng, random.as_mut())?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&random[..8]);
        let mut id = u64::from_be_bytes(id);
        if Some(id) == previous {
            // Probability 2^-64 with a working RNG; keep the ids of one device distinct.
            id = id.wrapping_add(1);
        }
        let mut key = GroupChainKey([0; KEY_LENGTH]);
        key.0.copy_from_slice(&random[8..8 + KEY_LENGTH]);
        let mut seed = Zeroizing::new([0u8; KEY_LENGTH]);
        seed.copy_from_slice(&random[8 + KEY_LENGTH..]);
        Ok(SendingChain {
            id,
            iteration: 0,
            key,
            signing: IdentityKeyPair::from_seed(&seed),
        })
    }
}

/// The local device's state in one group (SPEC.md §11): its sending chain and the other
/// member devices (at most [`MAX_GROUP_MEMBERS`](crate::MAX_GROUP_MEMBERS), identified by
/// their identity keys). Stored as type `0x2E`; seal it like a session.
///
/// Sending: [`Group::encrypt`] makes one message for all members. Membership:
/// [`Group::add_member`] returns the distribution to send to the new member,
/// [`Group::remove_member`] rotates the sending chain and returns the distribution to send
/// to every remaining member. Receiving: [`Group::process_distribution`] and
/// [`Group::decrypt`] work on the sender's [`MemberChains`] and refuse a device that is not
/// a member. Store the group after every call that takes `&mut self`.
///
/// ```
/// use doubleratchet::{Group, GroupId, IdentityKeyPair, MemberChains, OsRng};
///
/// let alice = IdentityKeyPair::generate(&mut OsRng)?;
/// let bob = IdentityKeyPair::generate(&mut OsRng)?;
/// let id = GroupId::from_bytes([7; 32]);
/// let mut alice_group = Group::new(id, alice.public_key(), &[*bob.public_key()], &mut OsRng)?;
/// let bob_group = Group::new(id, bob.public_key(), &[*alice.public_key()], &mut OsRng)?;
///
/// // Alice sends her distribution to Bob inside their pairwise session (not shown).
/// let distribution = alice_group.distribution().to_bytes();
/// let mut alices_chains = MemberChains::new(&id, alice.public_key());
/// let _ = bob_group.process_distribution(alice.public_key(), &distribution, &mut alices_chains)?;
///
/// // One message for the whole group.
/// let message = alice_group.encrypt(b"hello, group")?;
/// assert_eq!(bob_group.decrypt(&mut alices_chains, &message)?, b"hello, group");
/// # Ok::<(), doubleratchet::Error>(())
/// ```
pub struct Group {
    pub(crate) id: GroupId,
    pub(crate) own: IdentityKey,
    pub(crate) padding: Padding,
    pub(crate) sending: SendingChain,
    /// Sorted by the keys' bytes, distinct, none the local identity key.
    pub(crate) members: Vec<IdentityKey>,
}

impl Group {
    /// The local device `own` in group `id` with the other member devices `members` (any
    /// order), and a fresh sending chain. Send [`Group::distribution`] to each member.
    ///
    /// # Errors
    /// [`Error::DuplicateDevice`] for a member listed twice, [`Error::WrongRecord`] for the
    /// local identity among the members, [`Error::TooManyDevices`] above
    /// [`MAX_GROUP_MEMBERS`](crate::MAX_GROUP_MEMBERS), [`Error::RandomnessUnavailable`].
    pub fn new<R: TryCryptoRng + ?Sized>(
        id: GroupId,
        own: &IdentityKey,
        members: &[IdentityKey],
        rng: &mut R,
    ) -> Result<Self, Error> {
        let mut sorted = members.to_vec();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        check_members(own, &sorted)?;
        Ok(Group {
            id,
            own: *own,
            padding: Padding::default(),
            sending: SendingChain::generate(rng, None)?,
            members: sorted,
        })
    }

    /// The group's id.
    pub fn id(&self) -> &GroupId {
        &self.id
    }

    /// The local device's identity key.
    pub fn own_identity(&self) -> &IdentityKey {
        &self.own
    }

    /// The other member devices, by ascending key bytes.
    pub fn members(&self) -> &[IdentityKey] {
        &self.members
    }

    /// Whether `device` is a member (the local device is not its own member).
    pub fn is_member(&self, device: &IdentityKey) -> bool {
        self.position(device).is_ok()
    }

    /// The sending chain's id.
    pub fn chain_id(&self) -> u64 {
        self.sending.id
    }

    /// The iteration the next message will have.
    pub fn iteration(&self) -> u32 {
        self.sending.iteration
    }

    /// How group messages are padded (stored with the group).
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// Sets how the messages sent from now on are padded ([`Padding::Padme`] by default).
    pub fn set_padding(&mut self, padding: Padding) {
        self.padding = padding;
    }

    /// The sending chain's distribution at its current iteration: whoever receives it can
    /// decrypt the messages sent from now on, not the earlier ones. (Of an exhausted chain,
    /// receivers refuse it: [`Group::rotate`] first.)
    pub fn distribution(&self) -> Distribution {
        Distribution::bind(
            self.id,
            self.sending.id,
            self.sending.iteration,
            self.sending.key.clone(),
            &self.sending.signing,
            &self.own,
        )
    }

    /// Adds a member device and returns the distribution to send it (the current chain
    /// from its current iteration: it cannot read earlier messages).
    ///
    /// # Errors
    /// [`Error::DuplicateDevice`] if already a member, [`Error::WrongRecord`] for the local
    /// identity, [`Error::TooManyDevices`] at [`MAX_GROUP_MEMBERS`](crate::MAX_GROUP_MEMBERS),
    /// [`Error::ChainExhausted`] if the sending chain is ([`Group::rotate`] first: its
    /// distribution would be refused). The group is unchanged.
    pub fn add_member(&mut self, device: &IdentityKey) -> Result<Distribution, Error> {
        if *device == self.own {
            return Err(Error::WrongRecord);
        }
        if self.sending.iteration == u32::MAX {
            return Err(Error::ChainExhausted);
        }
        let at = match self.position(device) {
            Ok(_) => return Err(Error::DuplicateDevice),
            Err(at) => at,
        };
        if self.members.len() >= MAX_GROUP_MEMBERS {
            return Err(Error::TooManyDevices);
        }
        self.members.insert(at, *device);
        Ok(self.distribution())
    }

    /// Removes a member device and rotates the sending chain (SPEC.md §11.6): returns the
    /// new chain's distribution, to send to every remaining member. Delete the removed
    /// member's [`MemberChains`]; its distributions and messages are refused from now on.
    ///
    /// # Errors
    /// [`Error::NotGroupMember`] if not a member, [`Error::RandomnessUnavailable`]; the group
    /// is unchanged.
    pub fn remove_member<R: TryCryptoRng + ?Sized>(
        &mut self,
        device: &IdentityKey,
        rng: &mut R,
    ) -> Result<Distribution, Error> {
        let at = self.position(device).map_err(|_| Error::NotGroupMember)?;
        self.sending = SendingChain::generate(rng, Some(self.sending.id))?;
        self.members.remove(at);
        Ok(self.distribution())
    }

    /// Starts a new sending chain (SPEC.md §11.6) and returns its distribution, to send to
    /// every member: when the chain is exhausted ([`Error::ChainExhausted`]), or on the app's
    /// own schedule. (A member's removal rotates by itself: [`Group::remove_member`]; a group
    /// restored from an older copy calls [`Group::after_restore`] instead, which also takes
    /// the current member list.)
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`]; the group is unchanged.
    pub fn rotate<R: TryCryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<Distribution, Error> {
        self.sending = SendingChain::generate(rng, Some(self.sending.id))?;
        Ok(self.distribution())
    }

    /// For a group restored from an older copy (SPEC.md §11.6): replaces the member list
    /// with the current one, `members` (the restored copy may list devices removed since),
    /// and rotates. Send the returned distribution to every member of the new list, and
    /// delete the [`MemberChains`] of devices no longer listed.
    ///
    /// # Errors
    /// As [`Group::new`]; the group is unchanged.
    pub fn after_restore<R: TryCryptoRng + ?Sized>(
        &mut self,
        members: &[IdentityKey],
        rng: &mut R,
    ) -> Result<Distribution, Error> {
        let mut sorted = members.to_vec();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        check_members(&self.own, &sorted)?;
        self.sending = SendingChain::generate(rng, Some(self.sending.id))?;
        self.members = sorted;
        Ok(self.distribution())
    }

    /// Encrypts `plaintext` for every member (SPEC.md §11.3): one chain step, one AEAD
    /// encryption, one signature. Needs no randomness.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above [`MAX_PLAINTEXT_SIZE`](crate::MAX_PLAINTEXT_SIZE),
    /// [`Error::ChainExhausted`] after 2^32 - 1 messages ([`Group::rotate`]); the group is
    /// unchanged.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        if plaintext.len() > MAX_PLAINTEXT_SIZE {
            return Err(Error::TooLarge);
        }
        let sending = &self.sending;
        if sending.iteration == u32::MAX {
            return Err(Error::ChainExhausted);
        }
        let (next, keys) = sending.key.step();
        let encoded = self.padding.encoded_length(plaintext.len());
        let mut out = Vec::with_capacity(GROUP_MESSAGE_OVERHEAD + encoded);
        out.put_u8(WIRE_VERSION);
        out.put_u8(TYPE_GROUP_MESSAGE);
        out.put(&self.id.0);
        out.put_u64(sending.id);
        out.put_u32(sending.iteration);
        out.put(&keys.commitment);
        self.padding.encode_into(&mut out, plaintext);
        let (prefix, body) = out.split_at_mut(GROUP_PREFIX_LENGTH);
        let tag = keys.seal_in_place(prefix, body)?;
        out.put(&tag);
        let signature = sending.signing.sign(&out);
        out.put(&signature);
        self.sending.key = next;
        self.sending.iteration += 1;
        Ok(out)
    }

    /// Takes a member's distribution (SPEC.md §11.4) into its `chains`. `sender` is the
    /// member device the distribution came from: the remote identity of the pairwise
    /// session that decrypted it, never a field of the distribution. Store `chains` unless
    /// the outcome is [`DistributionOutcome::Known`] (`Added` and `Advanced` changed them).
    ///
    /// # Errors
    /// Those of [`Distribution::from_bytes`]; [`Error::WrongGroup`] for a distribution of
    /// another group; [`Error::NotGroupMember`] if `sender` is not a member;
    /// [`Error::WrongRecord`] if `chains` are not `sender`'s in this group;
    /// [`Error::InvalidEncoding`] for iteration 2^32 - 1 (an exhausted chain);
    /// [`Error::InvalidSignature`] if the distribution is not bound to `sender` (SPEC.md
    /// §11.2: another member's chain passed off as `sender`'s, or a corrupted one);
    /// [`Error::DuplicateOrExpired`] for a chain evicted lately; [`Error::ConflictingChain`]
    /// for a held chain id with another signing key. `chains` are unchanged.
    pub fn process_distribution(
        &self,
        sender: &IdentityKey,
        distribution: &[u8],
        chains: &mut MemberChains,
    ) -> Result<DistributionOutcome, Error> {
        let distribution = Distribution::from_bytes(distribution)?;
        if distribution.group != self.id {
            return Err(Error::WrongGroup);
        }
        self.check_chains(sender, chains)?;
        if distribution.iteration == u32::MAX {
            return Err(Error::InvalidEncoding);
        }
        distribution.verify_binding(sender)?;
        chains.take(distribution)
    }

    /// Decrypts a group message from the member whose `chains` these are (SPEC.md §11.5):
    /// parse, chain lookup, bound check, signature, derivation, decryption, in this order.
    /// The plaintext is [`MemberChains::member`]'s: pass the chains of the device the
    /// transport says sent the message (keyed by group and sender, sealed with a context
    /// naming both), and the signature proves it; show the plaintext as that member's.
    /// Store `chains` after a success.
    ///
    /// # Errors
    /// Those of [`GroupMessage::parse`]; [`Error::WrongGroup`] for a message naming another
    /// group; [`Error::WrongRecord`] for chains of another group; [`Error::NotGroupMember`]
    /// if their member is not (or no longer) a member; [`Error::UnknownChain`] for a chain
    /// not held (its distribution has not arrived: keep a bounded number of such messages
    /// per sender and ask the sender for its distribution, rate-limited: anyone can send
    /// messages naming unknown chains); [`Error::DuplicateOrExpired`] for an iteration
    /// already received or whose key was evicted, or a chain evicted lately;
    /// [`Error::TooFarAhead`] beyond [`MAX_GROUP_JUMP`](crate::MAX_GROUP_JUMP) (a receiver
    /// that fell that far behind asks the sender for a fresh distribution, which moves the
    /// chain on: [`DistributionOutcome::Advanced`]); [`Error::InvalidSignature`];
    /// [`Error::DecryptionFailed`] (after a valid signature: the sender misbehaved, or
    /// gave this device another chain key than it used). `chains` are unchanged.
    pub fn decrypt(&self, chains: &mut MemberChains, message: &[u8]) -> Result<Vec<u8>, Error> {
        let message = GroupMessage::parse(message)?;
        if *message.group_id() != self.id {
            return Err(Error::WrongGroup);
        }
        let member = chains.member;
        self.check_chains(&member, chains)?;
        chains.decrypt(&message)
    }

    /// `sender` is a member and `chains` are its chains in this group.
    fn check_chains(&self, sender: &IdentityKey, chains: &MemberChains) -> Result<(), Error> {
        if chains.group != self.id {
            return Err(Error::WrongRecord);
        }
        if !self.is_member(sender) {
            return Err(Error::NotGroupMember);
        }
        if chains.member != *sender {
            return Err(Error::WrongRecord);
        }
        Ok(())
    }

    fn position(&self, device: &IdentityKey) -> Result<usize, usize> {
        self.members
            .binary_search_by(|m| m.as_bytes().cmp(device.as_bytes()))
    }
}

/// The member list's rules (sorted input): distinct, not the local device, bounded.
pub(crate) fn check_members(own: &IdentityKey, sorted: &[IdentityKey]) -> Result<(), Error> {
    if sorted.len() > MAX_GROUP_MEMBERS {
        return Err(Error::TooManyDevices);
    }
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::DuplicateDevice);
    }
    if sorted.contains(own) {
        return Err(Error::WrongRecord);
    }
    Ok(())
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("own", &self.own)
            .field("chain_id", &self.sending.id)
            .field("iteration", &self.sending.iteration)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::MAX_GROUP_JUMP;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn identity(rng: &mut ChaCha20Rng) -> Result<IdentityKey, Error> {
        Ok(*IdentityKeyPair::generate(rng)?.public_key())
    }

    /// A member cannot pass another member's chain off as its own (SPEC.md §11.2): the
    /// binding names the device the chain's owner distributed it from.
    #[test]
    fn distribution_is_bound_to_its_sender() -> Result<(), Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(18);
        let (a, b, m) = (
            identity(&mut rng)?,
            identity(&mut rng)?,
            identity(&mut rng)?,
        );
        let id = GroupId::from_bytes([1; 32]);
        let alice = Group::new(id, &a, &[b, m], &mut rng)?;
        let bob = Group::new(id, &b, &[a, m], &mut rng)?;
        let stolen = alice.distribution().to_bytes();
        let mut as_mallory = MemberChains::new(&id, &m);
        assert_eq!(
            bob.process_distribution(&m, &stolen, &mut as_mallory),
            Err(Error::InvalidSignature)
        );
        assert_eq!(as_mallory.chain_ids().len(), 0);
        let mut as_alice = MemberChains::new(&id, &a);
        assert_eq!(
            bob.process_distribution(&a, &stolen, &mut as_alice),
            Ok(DistributionOutcome::Added { evicted: None })
        );
        Ok(())
    }

    /// The bound check comes before the signature (SPEC.md §11.5): a message too far
    /// ahead is `TooFarAhead` whatever its signature.
    #[test]
    fn bound_is_checked_before_the_signature() -> Result<(), Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(19);
        let (a, b) = (identity(&mut rng)?, identity(&mut rng)?);
        let id = GroupId::from_bytes([2; 32]);
        let mut alice = Group::new(id, &a, &[b], &mut rng)?;
        let bob = Group::new(id, &b, &[a], &mut rng)?;
        let mut chains = MemberChains::new(&id, &a);
        let _ = bob.process_distribution(&a, &alice.distribution().to_bytes(), &mut chains)?;
        let mut message = alice.encrypt(b"x")?;
        let far = MAX_GROUP_JUMP + 1;
        message[42..46].copy_from_slice(&far.to_be_bytes());
        assert_eq!(bob.decrypt(&mut chains, &message), Err(Error::TooFarAhead));
        let within = MAX_GROUP_JUMP;
        message[42..46].copy_from_slice(&within.to_be_bytes());
        assert_eq!(
            bob.decrypt(&mut chains, &message),
            Err(Error::InvalidSignature)
        );
        Ok(())
    }
}

#[cfg(test)]
mod distribution_rules {
    use super::*;
    use crate::format::{MAX_GROUP_JUMP, MAX_MEMBER_CHAINS};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    struct Pair {
        alice: Group,
        bob: Group,
        chains: MemberChains,
        a: IdentityKey,
    }

    fn pair(seed: u64) -> Result<Pair, Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let a = *IdentityKeyPair::generate(&mut rng)?.public_key();
        let b = *IdentityKeyPair::generate(&mut rng)?.public_key();
        let id = GroupId::from_bytes([3; 32]);
        let alice = Group::new(id, &a, &[b], &mut rng)?;
        let bob = Group::new(id, &b, &[a], &mut rng)?;
        let mut chains = MemberChains::new(&id, &a);
        let _ = bob.process_distribution(&a, &alice.distribution().to_bytes(), &mut chains)?;
        Ok(Pair {
            alice,
            bob,
            chains,
            a,
        })
    }

    /// SPEC.md §11.4 step 7: a newer distribution moves the chain on (checked against the
    /// held key), an older or equal one changes nothing, another chain key conflicts.
    #[test]
    fn newer_distributions_advance_and_are_checked() -> Result<(), Error> {
        let mut p = pair(30)?;
        let first = p.alice.encrypt(b"one")?;
        let second = p.alice.encrypt(b"two")?;
        let third = p.alice.encrypt(b"three")?;
        let newer = p.alice.distribution().to_bytes();
        assert_eq!(
            p.bob.process_distribution(&p.a, &newer, &mut p.chains),
            Ok(DistributionOutcome::Advanced)
        );
        // The skipped iterations' keys were kept: the late messages still decrypt.
        assert_eq!(p.bob.decrypt(&mut p.chains, &second)?, b"two");
        assert_eq!(p.bob.decrypt(&mut p.chains, &first)?, b"one");
        assert_eq!(p.bob.decrypt(&mut p.chains, &third)?, b"three");
        assert_eq!(
            p.bob.process_distribution(&p.a, &newer, &mut p.chains),
            Ok(DistributionOutcome::Known)
        );
        // Another chain key under the same chain id and signing key.
        let mut forged = Distribution::from_bytes(&p.alice.distribution().to_bytes())?;
        forged.chain_key.0[0] ^= 1;
        let before = p.chains.to_bytes();
        assert_eq!(
            p.bob
                .process_distribution(&p.a, &forged.to_bytes(), &mut p.chains),
            Err(Error::ConflictingChain)
        );
        assert_eq!(p.chains.to_bytes(), before);
        Ok(())
    }

    /// A receiver more than `MAX_GROUP_JUMP` behind is stuck on messages, and a fresh
    /// distribution of the same chain moves it on.
    #[test]
    fn a_receiver_far_behind_recovers_by_distribution() -> Result<(), Error> {
        let mut p = pair(31)?;
        p.alice.sending.iteration = MAX_GROUP_JUMP + 5;
        // Same chain, far ahead: the sender's chain key there is unknown to Bob.
        let mut key = p.alice.sending.key.clone();
        for _ in 0..MAX_GROUP_JUMP + 5 {
            key = key.advance();
        }
        p.alice.sending.key = key;
        let message = p.alice.encrypt(b"far")?;
        assert_eq!(
            p.bob.decrypt(&mut p.chains, &message),
            Err(Error::TooFarAhead)
        );
        // A fresh distribution (beyond the jump bound: taken from the owner unchecked).
        let now = p.alice.distribution().to_bytes();
        assert_eq!(
            p.bob.process_distribution(&p.a, &now, &mut p.chains),
            Ok(DistributionOutcome::Advanced)
        );
        assert_eq!(
            p.bob.decrypt(&mut p.chains, &p.alice.encrypt(b"again")?)?,
            b"again"
        );
        Ok(())
    }

    /// Messages on an evicted chain are `DuplicateOrExpired`, not `UnknownChain`.
    #[test]
    fn evicted_chains_are_expired() -> Result<(), Error> {
        let mut p = pair(32)?;
        let mut rng = ChaCha20Rng::seed_from_u64(33);
        let old = p.alice.encrypt(b"old chain")?;
        for _ in 0..MAX_MEMBER_CHAINS {
            let d = p.alice.rotate(&mut rng)?.to_bytes();
            let _ = p.bob.process_distribution(&p.a, &d, &mut p.chains)?;
        }
        assert_eq!(
            p.bob.decrypt(&mut p.chains, &old),
            Err(Error::DuplicateOrExpired)
        );
        Ok(())
    }

    /// `after_restore` takes the current member list and rotates.
    #[test]
    fn after_restore_replaces_members_and_rotates() -> Result<(), Error> {
        let mut p = pair(34)?;
        let mut rng = ChaCha20Rng::seed_from_u64(35);
        let c = *IdentityKeyPair::generate(&mut rng)?.public_key();
        let old_chain = p.alice.chain_id();
        let members = p.alice.members().to_vec();
        let _ = p.alice.add_member(&c)?;
        let d = p.alice.after_restore(&members, &mut rng)?;
        assert!(!p.alice.is_member(&c));
        assert_ne!(d.chain_id(), old_chain);
        assert_eq!(d.iteration(), 0);
        assert_eq!(
            p.alice.after_restore(&[p.a], &mut rng).map(|_| ()),
            Err(Error::WrongRecord)
        );
        Ok(())
    }
}
