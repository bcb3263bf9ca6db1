//! The stored forms of a [`Group`] (SPEC.md §7.11, type `0x2E`) and of a member's
//! [`MemberChains`] (SPEC.md §7.12, type `0x2F`). Loading is strict and checks every rule
//! the live objects keep, so a loader cannot build a state the protocol cannot reach.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::chain::{GroupChainKey, GroupMessageKeys};
use super::member::{MemberChains, ReceivingChain};
use super::{check_members, Group, GroupId, SendingChain};
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    CHAIN_ID_LENGTH, GROUP_FIXED_LENGTH, GROUP_SKIPPED_ENTRY_LENGTH, KEY_LENGTH, MAX_GROUP_MEMBERS,
    MAX_GROUP_SIZE, MAX_GROUP_SKIPPED, MAX_MEMBER_CHAINS, MAX_MEMBER_CHAINS_SIZE,
    MAX_RETIRED_CHAINS, MEMBER_CHAINS_FIXED_LENGTH, MEMBER_CHAIN_FIXED_LENGTH, PUBLIC_KEY_LENGTH,
    TYPE_GROUP, TYPE_MEMBER_CHAINS,
};
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::padding::Padding;
use crate::seal::{read_stored_header, read_whole, write_stored_header};

impl Group {
    /// The storage encoding (SPEC.md §7.11). It holds the sending chain key and signing
    /// key: seal it ([`StorageKey`](crate::StorageKey)).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            GROUP_FIXED_LENGTH + PUBLIC_KEY_LENGTH * self.members.len(),
        ));
        write_stored_header(&mut out, TYPE_GROUP);
        out.put(&self.id.0);
        out.put(self.own.as_bytes());
        out.put_u8(self.padding.to_byte());
        out.put_u64(self.sending.id);
        out.put_u32(self.sending.iteration);
        out.put(&self.sending.key.0);
        out.put(self.sending.signing.seed());
        // At most MAX_GROUP_MEMBERS (4 096), checked by every constructor.
        out.put_u32(self.members.len() as u32);
        for member in &self.members {
            out.put(member.as_bytes());
        }
        out
    }

    /// Loads a stored group strictly (SPEC.md §7.11).
    ///
    /// # Errors
    /// [`Error::TooLarge`] above the longest stored group, checked first;
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::Truncated`],
    /// [`Error::TrailingData`], [`Error::InvalidPublicKey`]; [`Error::InvalidEncoding`] for
    /// an unknown padding byte, more than [`MAX_GROUP_MEMBERS`](crate::MAX_GROUP_MEMBERS)
    /// members, members not strictly ascending, or the local identity among them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_GROUP_SIZE {
            return Err(Error::TooLarge);
        }
        read_whole(bytes, |r| {
            read_stored_header(r, TYPE_GROUP)?;
            let id = GroupId(r.array()?);
            let own = IdentityKey::from_bytes(&r.array()?)?;
            let padding = Padding::from_byte(r.u8()?)?;
            let chain_id = r.u64()?;
            let iteration = r.u32()?;
            let key = GroupChainKey(*Zeroizing::new(r.array::<KEY_LENGTH>()?));
            let seed = Zeroizing::new(r.array::<KEY_LENGTH>()?);
            let count = r.u32()? as usize;
            if count > MAX_GROUP_MEMBERS {
                return Err(Error::InvalidEncoding);
            }
            // No count is trusted before its bytes are present (member keys are public).
            let mut members: Vec<IdentityKey> =
                Vec::with_capacity(count.min(r.remaining() / PUBLIC_KEY_LENGTH));
            for _ in 0..count {
                let member = IdentityKey::from_bytes(&r.array()?)?;
                // Checked as read (SPEC.md §10.1): ascending, and not the local device.
                if member == own
                    || members
                        .last()
                        .is_some_and(|last| last.as_bytes() >= member.as_bytes())
                {
                    return Err(Error::InvalidEncoding);
                }
                members.push(member);
            }
            check_members(&own, &members).map_err(|_| Error::Internal)?;
            Ok(Group {
                id,
                own,
                padding,
                sending: SendingChain {
                    id: chain_id,
                    iteration,
                    key,
                    signing: IdentityKeyPair::from_seed(&seed),
                },
                members,
            })
        })
    }
}

impl MemberChains {
    /// The storage encoding (SPEC.md §7.12). It holds chain keys and message keys: seal it
    /// ([`StorageKey`](crate::StorageKey)).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let keys: usize = self
            .chains
            .iter()
            .map(|c| MEMBER_CHAIN_FIXED_LENGTH + GROUP_SKIPPED_ENTRY_LENGTH * c.skipped.len())
            .sum();
        let mut out = Zeroizing::new(Vec::with_capacity(
            MEMBER_CHAINS_FIXED_LENGTH + CHAIN_ID_LENGTH * self.retired.len() + keys,
        ));
        write_stored_header(&mut out, TYPE_MEMBER_CHAINS);
        out.put(&self.group.0);
        out.put(self.member.as_bytes());
        // At most MAX_RETIRED_CHAINS (16) and MAX_MEMBER_CHAINS (5).
        out.put_u8(self.retired.len() as u8);
        out.put_u8(self.chains.len() as u8);
        for id in &self.retired {
            out.put_u64(*id);
        }
        for chain in &self.chains {
            out.put_u64(chain.id);
            out.put(chain.signing_key.as_bytes());
            out.put_u32(chain.next);
            out.put(&chain.key.0);
            // At most MAX_GROUP_SKIPPED (2 000).
            out.put_u32(chain.skipped.len() as u32);
            for (iteration, keys) in &chain.skipped {
                out.put_u32(*iteration);
                out.put(&keys.key);
                out.put(&keys.commitment);
            }
        }
        out
    }

    /// Loads a member's stored chains strictly (SPEC.md §7.12).
    ///
    /// # Errors
    /// [`Error::TooLarge`] above the longest stored chains, checked first;
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::Truncated`],
    /// [`Error::TrailingData`], [`Error::InvalidPublicKey`]; [`Error::InvalidEncoding`] for
    /// counts above their bounds, a chain id held twice or both held and retired, or
    /// skipped iterations not strictly ascending or not below their chain's next iteration.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_MEMBER_CHAINS_SIZE {
            return Err(Error::TooLarge);
        }
        read_whole(bytes, |r| {
            read_stored_header(r, TYPE_MEMBER_CHAINS)?;
            let group = GroupId(r.array()?);
            let member = IdentityKey::from_bytes(&r.array()?)?;
            let retired_count = usize::from(r.u8()?);
            let chain_count = usize::from(r.u8()?);
            if retired_count > MAX_RETIRED_CHAINS || chain_count > MAX_MEMBER_CHAINS {
                return Err(Error::InvalidEncoding);
            }
            let mut retired: Vec<u64> = Vec::with_capacity(MAX_RETIRED_CHAINS);
            for _ in 0..retired_count {
                let id = r.u64()?;
                if retired.contains(&id) {
                    return Err(Error::InvalidEncoding);
                }
                retired.push(id);
            }
            // Never reallocated (as in `MemberChains::new`).
            let mut chains: Vec<ReceivingChain> = Vec::with_capacity(MAX_MEMBER_CHAINS);
            for _ in 0..chain_count {
                // The id is checked as soon as it is read (SPEC.md §10.1).
                let id = r.u64()?;
                if retired.contains(&id) || chains.iter().any(|c| c.id == id) {
                    return Err(Error::InvalidEncoding);
                }
                chains.push(read_chain(id, r)?);
            }
            Ok(MemberChains {
                group,
                member,
                retired,
                chains,
            })
        })
    }
}

/// One stored receiving chain after its id (SPEC.md §7.12).
fn read_chain(id: u64, r: &mut Reader<'_>) -> Result<ReceivingChain, Error> {
    let signing_key = IdentityKey::from_bytes(&r.array()?)?;
    let next = r.u32()?;
    let key = GroupChainKey(*Zeroizing::new(r.array::<KEY_LENGTH>()?));
    let count = r.u32()? as usize;
    if count > MAX_GROUP_SKIPPED {
        return Err(Error::InvalidEncoding);
    }
    let mut skipped = BTreeMap::new();
    let mut last: Option<u32> = None;
    for _ in 0..count {
        let iteration = r.u32()?;
        if last.is_some_and(|l| l >= iteration) || iteration >= next {
            return Err(Error::InvalidEncoding);
        }
        last = Some(iteration);
        let keys = Box::new(GroupMessageKeys {
            key: *Zeroizing::new(r.array()?),
            commitment: r.array()?,
        });
        skipped.insert(iteration, keys);
    }
    Ok(ReceivingChain {
        id,
        signing_key,
        next,
        key,
        skipped,
    })
}
