//! The two group wire objects (SPEC.md §11.2, §11.3): the sender-key distribution (type
//! `0x09`), sent to each member inside its pairwise session, and the group message (type
//! `0x08`), sent once to the whole group. Both are fixed-width, strict and versioned
//! (`WIRE_VERSION`).

use alloc::vec::Vec;
use core::fmt;

use ed25519_dalek::Signature;
use zeroize::Zeroizing;

use super::chain::GroupChainKey;
use super::GroupId;
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    CHAIN_ID_LENGTH, DISTRIBUTION_LENGTH, GROUP_ID_LENGTH, GROUP_MESSAGE_OVERHEAD,
    GROUP_PREFIX_LENGTH, GROUP_SENDER_LABEL, KEY_LENGTH, MAX_MESSAGE_SIZE, PUBLIC_KEY_LENGTH,
    SIGNATURE_LENGTH, TAG_LENGTH, TYPE_DISTRIBUTION, TYPE_GROUP_MESSAGE, WIRE_VERSION,
};
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::wire::read_version_and_type;

/// A sender-key distribution (SPEC.md §11.2, type `0x09`, 174 bytes): what a member needs
/// to decrypt one sender chain from `iteration` on: the group, the chain id, the chain key
/// at `iteration` and the chain's signing key, with the signing key's signature binding the
/// chain to the sender device (checked by
/// [`Group::process_distribution`](crate::Group::process_distribution) against the device
/// the distribution came from).
///
/// It holds a secret chain key: send it only inside a pairwise session to the one member
/// device it is for (as the plaintext of
/// [`SessionRecord::encrypt`](crate::SessionRecord::encrypt) or
/// [`Contact::encrypt_to`](crate::Contact::encrypt_to), not `Contact::encrypt`, which
/// reaches every device of the account), and never log it. Its bytes (and `to_bytes`'s)
/// are zeroized on drop; `Debug` shows no key. On the receiving side, wipe the plaintext
/// that carried it once processed.
pub struct Distribution {
    pub(crate) group: GroupId,
    pub(crate) chain_id: u64,
    pub(crate) iteration: u32,
    pub(crate) chain_key: GroupChainKey,
    pub(crate) signing_key: IdentityKey,
    /// The sender binding (SPEC.md §11.2).
    pub(crate) binding: [u8; SIGNATURE_LENGTH],
}

/// What a distribution's sender binding signs (SPEC.md §11.2).
const BINDING_MESSAGE_LENGTH: usize =
    GROUP_SENDER_LABEL.len() + GROUP_ID_LENGTH + CHAIN_ID_LENGTH + 2 * PUBLIC_KEY_LENGTH;

fn binding_message(
    group: &GroupId,
    chain_id: u64,
    signing_key: &IdentityKey,
    sender: &IdentityKey,
) -> [u8; BINDING_MESSAGE_LENGTH] {
    let mut out = [0u8; BINDING_MESSAGE_LENGTH];
    let parts: [&[u8]; 5] = [
        GROUP_SENDER_LABEL,
        group.as_bytes(),
        &chain_id.to_be_bytes(),
        signing_key.as_bytes(),
        sender.as_bytes(),
    ];
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    out
}

impl Distribution {
    /// The distribution of a chain at `iteration`, bound to `sender` by the chain's signing
    /// key.
    pub(crate) fn bind(
        group: GroupId,
        chain_id: u64,
        iteration: u32,
        chain_key: GroupChainKey,
        signing: &IdentityKeyPair,
        sender: &IdentityKey,
    ) -> Self {
        let signing_key = *signing.public_key();
        let binding = signing.sign(&binding_message(&group, chain_id, &signing_key, sender));
        Distribution {
            group,
            chain_id,
            iteration,
            chain_key,
            signing_key,
            binding,
        }
    }

    /// Verifies the sender binding under `sender` (SPEC.md §11.4 step 5):
    /// [`Error::InvalidSignature`].
    pub(crate) fn verify_binding(&self, sender: &IdentityKey) -> Result<(), Error> {
        let message = binding_message(&self.group, self.chain_id, &self.signing_key, sender);
        self.signing_key
            .verifying_key()
            .verify_strict(&message, &Signature::from_bytes(&self.binding))
            .map_err(|_| Error::InvalidSignature)
    }

    /// The encoding (SPEC.md §11.2), to send inside a pairwise session.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(DISTRIBUTION_LENGTH));
        out.put_u8(WIRE_VERSION);
        out.put_u8(TYPE_DISTRIBUTION);
        out.put(self.group.as_bytes());
        out.put_u64(self.chain_id);
        out.put_u32(self.iteration);
        out.put(&self.chain_key.0);
        out.put(self.signing_key.as_bytes());
        out.put(&self.binding);
        out
    }

    /// Parses a distribution strictly (SPEC.md §11.2).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], and [`Error::InvalidPublicKey`] for a signing key that is
    /// not a canonical Ed25519 point of large order. The sender binding is verified by
    /// [`Group::process_distribution`](crate::Group::process_distribution), which knows
    /// the sender.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, WIRE_VERSION, TYPE_DISTRIBUTION)?;
        let group = GroupId(r.array()?);
        let chain_id = r.u64()?;
        let iteration = r.u32()?;
        let chain_key = GroupChainKey(*Zeroizing::new(r.array::<KEY_LENGTH>()?));
        let signing_key = IdentityKey::from_bytes(&r.array()?)?;
        let binding = r.array()?;
        r.finish()?;
        Ok(Distribution {
            group,
            chain_id,
            iteration,
            chain_key,
            signing_key,
            binding,
        })
    }

    /// The group it is for.
    pub fn group_id(&self) -> &GroupId {
        &self.group
    }

    /// The sender chain's id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The first iteration it decrypts.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The chain's public signing key.
    pub fn signing_key(&self) -> &IdentityKey {
        &self.signing_key
    }
}

impl fmt::Debug for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Distribution")
            .field("group", &self.group)
            .field("chain_id", &self.chain_id)
            .field("iteration", &self.iteration)
            .field("signing_key", &self.signing_key)
            .finish_non_exhaustive()
    }
}

/// A parsed group message (SPEC.md §11.3, type `0x08`), borrowed from its bytes: the fields
/// an app routes by (which group, which chain, which iteration) before giving the bytes to
/// [`Group::decrypt`](crate::Group::decrypt). Parsing checks the framing only; nothing is
/// authenticated until `decrypt`.
///
/// Pick the group by the group id, and the [`MemberChains`](crate::MemberChains) by the
/// sender your transport names: never by the chain id alone, since whose chains decrypt
/// the message is who the message is shown from.
#[derive(Clone, Copy)]
pub struct GroupMessage<'a> {
    bytes: &'a [u8],
    group: GroupId,
    chain_id: u64,
    iteration: u32,
    commitment: [u8; KEY_LENGTH],
}

impl<'a> GroupMessage<'a> {
    /// Parses the framing of a group message (SPEC.md §11.3, in this order).
    ///
    /// # Errors
    /// [`Error::TooLarge`] above [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE) (before
    /// anything else), [`Error::Truncated`] below the shortest group message
    /// (`GROUP_MESSAGE_OVERHEAD` + 1 bytes), [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, WIRE_VERSION, TYPE_GROUP_MESSAGE)?;
        // Every encoded plaintext has at least its end marker.
        if bytes.len() <= GROUP_MESSAGE_OVERHEAD {
            return Err(Error::Truncated);
        }
        let group = GroupId(r.array()?);
        let chain_id = r.u64()?;
        let iteration = r.u32()?;
        let commitment = r.array()?;
        Ok(GroupMessage {
            bytes,
            group,
            chain_id,
            iteration,
            commitment,
        })
    }

    /// The group it was sent to (as the sender wrote it; authenticated by `decrypt`).
    pub fn group_id(&self) -> &GroupId {
        &self.group
    }

    /// The sender chain's id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The message's iteration in its chain.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    pub(crate) fn commitment(&self) -> &[u8; KEY_LENGTH] {
        &self.commitment
    }

    /// The fields the AEAD authenticates: everything before the ciphertext.
    pub(crate) fn prefix(&self) -> &'a [u8] {
        &self.bytes[..GROUP_PREFIX_LENGTH]
    }

    /// The ciphertext (without its tag).
    pub(crate) fn ciphertext(&self) -> &'a [u8] {
        &self.bytes[GROUP_PREFIX_LENGTH..self.bytes.len() - TAG_LENGTH - SIGNATURE_LENGTH]
    }

    /// The AEAD tag.
    pub(crate) fn tag(&self) -> Result<[u8; TAG_LENGTH], Error> {
        let end = self.bytes.len() - SIGNATURE_LENGTH;
        let mut tag = [0; TAG_LENGTH];
        tag.copy_from_slice(
            self.bytes
                .get(end - TAG_LENGTH..end)
                .ok_or(Error::Internal)?,
        );
        Ok(tag)
    }

    /// What the signature covers (everything before it) and the signature.
    pub(crate) fn signed(&self) -> (&'a [u8], [u8; SIGNATURE_LENGTH]) {
        let (signed, signature) = self.bytes.split_at(self.bytes.len() - SIGNATURE_LENGTH);
        let mut out = [0; SIGNATURE_LENGTH];
        out.copy_from_slice(signature);
        (signed, out)
    }
}

impl fmt::Debug for GroupMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupMessage")
            .field("group", &self.group)
            .field("chain_id", &self.chain_id)
            .field("iteration", &self.iteration)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}
