//! One member's sender chains in one group, as the other members hold them (SPEC.md §11.4,
//! §11.5): up to [`MAX_MEMBER_CHAINS`] chains (the newest, and older ones for late
//! messages), each with a bounded store of skipped message keys, and the ids of chains
//! evicted lately so that their distributions are not taken again.
//!
//! Decryption is transactional (as SPEC.md §4.7): everything is checked and derived on the
//! side, and the chain changes only once the message authenticated and decoded.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use ed25519_dalek::Signature;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::chain::{GroupChainKey, GroupMessageKeys};
use super::message::{Distribution, GroupMessage};
use super::GroupId;
use crate::error::Error;
use crate::format::{MAX_GROUP_JUMP, MAX_GROUP_SKIPPED, MAX_MEMBER_CHAINS, MAX_RETIRED_CHAINS};
use crate::keys::IdentityKey;
use crate::padding::decoded_length;

/// What [`Group::process_distribution`](crate::Group::process_distribution) did (SPEC.md
/// §11.4).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "unless Known, the member's chains changed: store them"]
pub enum DistributionOutcome {
    /// A new chain: the member's chains changed; store them.
    Added {
        /// The chain evicted to make room (the oldest), if the member already had
        /// [`MAX_MEMBER_CHAINS`](crate::MAX_MEMBER_CHAINS) chains.
        evicted: Option<u64>,
    },
    /// A held chain moved forward to the distribution's iteration (a receiver that fell
    /// behind): the member's chains changed; store them. Its chain key was checked against
    /// the held one when the distance allowed (at most `MAX_GROUP_JUMP`).
    Advanced,
    /// The chain is already held with this signing key at this iteration or later: nothing
    /// changed (a repeated or older distribution never moves a chain back).
    Known,
}

/// The sender chains of one member device in one group, as the local device holds them to
/// decrypt that member's group messages (SPEC.md §11.4). Stored on its own (type `0x2F`),
/// one per (group, member), so that decrypting loads only the sender's chains.
///
/// Create one with [`MemberChains::new`] for a member whose first distribution arrives,
/// give it to [`Group::process_distribution`](crate::Group::process_distribution) and
/// [`Group::decrypt`](crate::Group::decrypt), and store it after every call that changed
/// it. Delete it when the member leaves the group.
pub struct MemberChains {
    pub(crate) group: GroupId,
    pub(crate) member: IdentityKey,
    /// Ids of evicted chains, oldest first, at most `MAX_RETIRED_CHAINS`, none held.
    pub(crate) retired: Vec<u64>,
    /// Oldest first, at most `MAX_MEMBER_CHAINS`, ids distinct.
    pub(crate) chains: Vec<ReceivingChain>,
}

/// One sender chain of a member.
pub(crate) struct ReceivingChain {
    pub(crate) id: u64,
    pub(crate) signing_key: IdentityKey,
    /// The next iteration not yet derived (`u32::MAX`: nothing more can be received).
    pub(crate) next: u32,
    /// The chain key at `next`.
    pub(crate) key: GroupChainKey,
    /// Keys of iterations below `next` not received yet, at most `MAX_GROUP_SKIPPED`. Each
    /// key is boxed once at derivation, so its bytes never move; dropping zeroizes it.
    pub(crate) skipped: BTreeMap<u32, Box<GroupMessageKeys>>,
}

/// Where one message's keys come from, decided before any derivation.
enum Source {
    /// A stored skipped key.
    Stored,
    /// At or ahead of the chain's next iteration, within `MAX_GROUP_JUMP`.
    Ahead,
}

/// What a decryption of a message ahead will change, derived before it authenticated: the
/// chain key after the message and the skipped keys to keep (ascending iterations).
struct Ahead {
    next_key: GroupChainKey,
    skipped: Vec<(u32, Box<GroupMessageKeys>)>,
}

impl MemberChains {
    /// No chain yet for `member` in `group`.
    pub fn new(group: &GroupId, member: &IdentityKey) -> Self {
        MemberChains {
            group: *group,
            member: *member,
            retired: Vec::with_capacity(MAX_RETIRED_CHAINS),
            // Never reallocated, so a chain key never moves to memory that is freed unwiped.
            chains: Vec::with_capacity(MAX_MEMBER_CHAINS),
        }
    }

    /// The group.
    pub fn group_id(&self) -> &GroupId {
        &self.group
    }

    /// The member device whose chains these are.
    pub fn member(&self) -> &IdentityKey {
        &self.member
    }

    /// The ids of the chains held, oldest first.
    pub fn chain_ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.chains.iter().map(|c| c.id)
    }

    /// The number of skipped message keys stored, in all chains.
    pub fn stored_skipped(&self) -> usize {
        self.chains.iter().map(|c| c.skipped.len()).sum()
    }

    /// SPEC.md §11.4 steps 6-8 (the distribution was checked up to its binding).
    pub(crate) fn take(&mut self, d: Distribution) -> Result<DistributionOutcome, Error> {
        if self.retired.contains(&d.chain_id) {
            return Err(Error::DuplicateOrExpired);
        }
        if let Some(held) = self.chains.iter_mut().find(|c| c.id == d.chain_id) {
            return held.take(d);
        }
        let evicted = if self.chains.len() >= MAX_MEMBER_CHAINS {
            let old = self.chains.remove(0);
            if self.retired.len() >= MAX_RETIRED_CHAINS {
                self.retired.remove(0);
            }
            self.retired.push(old.id);
            Some(old.id)
        } else {
            None
        };
        self.chains.push(ReceivingChain {
            id: d.chain_id,
            signing_key: d.signing_key,
            next: d.iteration,
            key: d.chain_key.clone(),
            skipped: BTreeMap::new(),
        });
        Ok(DistributionOutcome::Added { evicted })
    }

    /// SPEC.md §11.5, steps 4-9 (the framing was parsed, the group and member checked).
    pub(crate) fn decrypt(&mut self, message: &GroupMessage<'_>) -> Result<Vec<u8>, Error> {
        let Some(index) = self.chains.iter().position(|c| c.id == message.chain_id()) else {
            return Err(if self.retired.contains(&message.chain_id()) {
                Error::DuplicateOrExpired
            } else {
                Error::UnknownChain
            });
        };
        let chain = &self.chains[index];
        let iteration = message.iteration();
        let source = chain.source(iteration)?;
        let (signed, signature) = message.signed();
        chain
            .signing_key
            .verifying_key()
            .verify_strict(signed, &Signature::from_bytes(&signature))
            .map_err(|_| Error::InvalidSignature)?;
        let (keys, ahead) = match source {
            Source::Stored => {
                let keys = chain.skipped.get(&iteration).ok_or(Error::Internal)?;
                (keys.clone(), None)
            }
            Source::Ahead => {
                let (keys, ahead) = chain.derive(iteration);
                (keys, Some(ahead))
            }
        };
        if !bool::from(keys.commitment.ct_eq(message.commitment())) {
            return Err(Error::DecryptionFailed);
        }
        let mut plaintext = message.ciphertext().to_vec();
        keys.open_in_place(message.prefix(), &mut plaintext, &message.tag()?)?;
        let len = match decoded_length(&plaintext) {
            Ok(len) => len,
            Err(e) => {
                plaintext.zeroize();
                return Err(e);
            }
        };
        plaintext.truncate(len);
        self.commit(index, iteration, ahead);
        Ok(plaintext)
    }

    /// Applies a decryption that succeeded.
    fn commit(&mut self, index: usize, iteration: u32, ahead: Option<Ahead>) {
        let Some(chain) = self.chains.get_mut(index) else {
            return;
        };
        match ahead {
            None => {
                chain.skipped.remove(&iteration);
            }
            Some(ahead) => {
                // `source` refused u32::MAX, so this does not overflow.
                chain.advance(iteration.saturating_add(1), ahead);
            }
        }
    }
}

impl ReceivingChain {
    /// A distribution of this chain (same id): SPEC.md §11.4 step 7.
    fn take(&mut self, d: Distribution) -> Result<DistributionOutcome, Error> {
        if self.signing_key != d.signing_key {
            return Err(Error::ConflictingChain);
        }
        if d.iteration < self.next {
            return Ok(DistributionOutcome::Known);
        }
        if d.iteration - self.next > MAX_GROUP_JUMP {
            // Too far to check: the chain's owner (the binding proved it) moves it on.
            self.next = d.iteration;
            self.key = d.chain_key.clone();
            return Ok(DistributionOutcome::Advanced);
        }
        let (key, skipped) = self.walk(d.iteration);
        if !bool::from(key.0.ct_eq(&d.chain_key.0)) {
            return Err(Error::ConflictingChain);
        }
        if d.iteration == self.next {
            return Ok(DistributionOutcome::Known);
        }
        self.advance(
            d.iteration,
            Ahead {
                next_key: key,
                skipped,
            },
        );
        Ok(DistributionOutcome::Advanced)
    }

    /// Moves the chain to `next` with the chain key there, storing the skipped keys and
    /// evicting the oldest beyond `MAX_GROUP_SKIPPED`.
    fn advance(&mut self, next: u32, ahead: Ahead) {
        self.key = ahead.next_key;
        self.next = next;
        self.skipped.extend(ahead.skipped);
        while self.skipped.len() > MAX_GROUP_SKIPPED {
            self.skipped.pop_first();
        }
    }

    /// The bound checks of SPEC.md §11.5 step 5, before any derivation.
    fn source(&self, iteration: u32) -> Result<Source, Error> {
        if iteration < self.next {
            return if self.skipped.contains_key(&iteration) {
                Ok(Source::Stored)
            } else {
                Err(Error::DuplicateOrExpired)
            };
        }
        if iteration == u32::MAX || iteration - self.next > MAX_GROUP_JUMP {
            return Err(Error::TooFarAhead);
        }
        Ok(Source::Ahead)
    }

    /// Steps from `next` to `iteration` (at most `MAX_GROUP_JUMP` steps, checked by the
    /// caller): the chain key at `iteration`, and the keys of the skipped iterations that
    /// will be kept (the last `MAX_GROUP_SKIPPED` before `iteration`); the others are
    /// stepped over without deriving their keys.
    fn walk(&self, iteration: u32) -> (GroupChainKey, Vec<(u32, Box<GroupMessageKeys>)>) {
        let keep_from = iteration
            .saturating_sub(MAX_GROUP_SKIPPED as u32)
            .max(self.next);
        let mut key = self.key.clone();
        for _ in self.next..keep_from {
            key = key.advance();
        }
        let mut skipped = Vec::with_capacity((iteration - keep_from) as usize);
        for i in keep_from..iteration {
            let (next, keys) = key.step();
            skipped.push((i, Box::new(keys)));
            key = next;
        }
        (key, skipped)
    }

    /// The keys of message `iteration` (at or ahead of `next`) and what its decryption
    /// will change: [`ReceivingChain::walk`], then one step.
    fn derive(&self, iteration: u32) -> (Box<GroupMessageKeys>, Ahead) {
        let (key, skipped) = self.walk(iteration);
        let (next_key, keys) = key.step();
        (Box::new(keys), Ahead { next_key, skipped })
    }
}

impl fmt::Debug for MemberChains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberChains")
            .field("group", &self.group)
            .field("member", &self.member)
            .field("chains", &self.chain_ids().collect::<Vec<_>>())
            .field("stored_skipped", &self.stored_skipped())
            .finish_non_exhaustive()
    }
}
