//! Message framing (SPEC.md §5): version and type bytes, the normal message and the
//! initial (prekey) message, strict parsing and the size limit.
//!
//! Normal message (SPEC.md §5.2):
//!
//! ```text
//! version(1) | type = 0x01 (1) | DHs(32) | PN(4) | N(4) | ciphertext || tag(16)
//! ```
//!
//! Initial message (SPEC.md §5.3):
//!
//! ```text
//! version(1) | type = 0x02 (1) | IK_A(32) | EK_A(32) | SPK id(4) | OPK flag(1) | OPK id(4)
//!            | DHs(32) | PN(4) | N(4) | ciphertext || tag(16)
//! ```
//!
//! Post-quantum initial message (SPEC.md §5.3, type `0x03`): the initial message's X3DH
//! fields followed by `PQPK id(4) | KEM ciphertext(1088)`, then the ratchet header.
//!
//! Every byte before the ciphertext is authenticated: the AEAD's associated data is
//! `AD || prefix`, where prefix is everything from the version byte up to the ciphertext.
//! Parsing borrows from the input and never allocates.

use alloc::vec::Vec;

use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::keys::{x25519_public_from_bytes, IdentityKey};
#[cfg(feature = "pqxdh")]
use crate::pq::KEM_CIPHERTEXT_LENGTH;
use crate::ratchet::kdf::TAG_LENGTH;
use crate::ratchet::Header;
use crate::x3dh::SessionId;

/// The format version of every message and stored object this build writes and reads.
pub const VERSION: u8 = 0x01;
/// Type byte of a normal message.
pub(crate) const TYPE_NORMAL: u8 = 0x01;
/// Type byte of an initial (prekey) message.
pub(crate) const TYPE_INITIAL: u8 = 0x02;
/// Type byte of a post-quantum (PQXDH) initial message.
pub(crate) const TYPE_INITIAL_PQ: u8 = 0x03;
/// Type byte of a prekey bundle.
pub(crate) const TYPE_BUNDLE: u8 = 0x10;
/// Type byte of a post-quantum (PQXDH) prekey bundle.
#[cfg(feature = "pqxdh")]
pub(crate) const TYPE_BUNDLE_PQ: u8 = 0x11;

/// The largest message this crate writes or parses, in bytes. Larger input is rejected
/// with [`Error::TooLarge`] before anything else is read.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Length of a normal message's framing before the ciphertext.
pub(crate) const NORMAL_PREFIX_LENGTH: usize = 2 + 32 + 4 + 4;
/// Length of an initial message's framing before the ciphertext.
pub(crate) const INITIAL_PREFIX_LENGTH: usize = 2 + 32 + 32 + 4 + 1 + 4 + 32 + 4 + 4;
/// Length of a post-quantum initial message's framing before the ciphertext.
#[cfg(feature = "pqxdh")]
pub(crate) const INITIAL_PQ_PREFIX_LENGTH: usize =
    INITIAL_PREFIX_LENGTH + 4 + KEM_CIPHERTEXT_LENGTH;
/// The longest framing this build writes or reads.
#[cfg(feature = "pqxdh")]
pub(crate) const MAX_PREFIX_LENGTH: usize = INITIAL_PQ_PREFIX_LENGTH;
#[cfg(not(feature = "pqxdh"))]
pub(crate) const MAX_PREFIX_LENGTH: usize = INITIAL_PREFIX_LENGTH;
/// The largest plaintext [`Session::encrypt`](crate::Session::encrypt) accepts: the largest
/// that fits in a [`MAX_MESSAGE_SIZE`] post-quantum initial message (the longest framing).
pub const MAX_PLAINTEXT_SIZE: usize =
    MAX_MESSAGE_SIZE - INITIAL_PREFIX_LENGTH - 4 - 1088 - TAG_LENGTH;

/// Reads and checks the version and type bytes of any encoded object.
pub(crate) fn read_version_and_type(r: &mut Reader<'_>, expected: u8) -> Result<(), Error> {
    read_version_and_type_of(r, &[expected]).map(|_| ())
}

/// Reads the version and type bytes, accepting any of `expected`; returns the type.
pub(crate) fn read_version_and_type_of(r: &mut Reader<'_>, expected: &[u8]) -> Result<u8, Error> {
    let version = r.u8()?;
    if version != VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    let kind = r.u8()?;
    if !expected.contains(&kind) {
        return Err(Error::UnexpectedType(kind));
    }
    Ok(kind)
}

/// A parsed message of either type, borrowing from the input bytes.
// The initial variant holds a decompressed identity key; boxing it would make parsing
// allocate, and a parsed message lives briefly on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A normal Double Ratchet message.
    Normal(NormalMessage<'a>),
    /// An initial message: X3DH (or PQXDH) fields followed by a Double Ratchet message.
    Initial(InitialMessage<'a>),
}

/// The X3DH fields of an initial message (SPEC.md §5.3), and PQXDH's if present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitialFields<'a> {
    pub(crate) identity: IdentityKey,
    pub(crate) base_key: [u8; 32],
    pub(crate) signed_prekey_id: u32,
    pub(crate) one_time_prekey_id: Option<u32>,
    /// PQXDH: the `PQPK` id and the KEM ciphertext.
    #[cfg(feature = "pqxdh")]
    pub(crate) post_quantum: Option<(u32, &'a [u8; KEM_CIPHERTEXT_LENGTH])>,
    #[cfg(not(feature = "pqxdh"))]
    pub(crate) post_quantum: Option<(u32, core::marker::PhantomData<&'a ()>)>,
}

/// A parsed normal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalMessage<'a> {
    pub(crate) header: Header,
    /// Every byte of the message before the ciphertext (authenticated as AAD).
    pub(crate) prefix: &'a [u8],
    /// Ciphertext followed by the 16-byte tag.
    pub(crate) body: &'a [u8],
}

/// A parsed initial message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialMessage<'a> {
    pub(crate) fields: InitialFields<'a>,
    /// The Double Ratchet message inside; its `prefix` covers the whole framing,
    /// X3DH fields included.
    pub(crate) inner: NormalMessage<'a>,
}

impl<'a> Message<'a> {
    /// Parses a message strictly (SPEC.md §5): size limit first, then version and type,
    /// then the fixed-width fields; every public key is validated.
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Truncated`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], [`Error::InvalidEncoding`] or [`Error::InvalidPublicKey`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        match r.u8()? {
            TYPE_NORMAL => Ok(Message::Normal(read_normal(r, bytes)?)),
            kind @ (TYPE_INITIAL | TYPE_INITIAL_PQ) => {
                if kind == TYPE_INITIAL_PQ && !cfg!(feature = "pqxdh") {
                    return Err(Error::UnexpectedType(kind));
                }
                let identity = IdentityKey::from_bytes(&r.array()?)?;
                let base_key = r.array()?;
                x25519_public_from_bytes(&base_key)?;
                let signed_prekey_id = r.u32()?;
                let one_time_prekey_id = r.optional::<4>()?.map(u32::from_be_bytes);
                #[cfg(feature = "pqxdh")]
                let post_quantum = if kind == TYPE_INITIAL_PQ {
                    let id = r.u32()?;
                    let ciphertext = r
                        .take(KEM_CIPHERTEXT_LENGTH)?
                        .try_into()
                        .map_err(|_| Error::Truncated)?;
                    Some((id, ciphertext))
                } else {
                    None
                };
                #[cfg(not(feature = "pqxdh"))]
                let post_quantum = None;
                let fields = InitialFields {
                    identity,
                    base_key,
                    signed_prekey_id,
                    one_time_prekey_id,
                    post_quantum,
                };
                Ok(Message::Initial(InitialMessage {
                    fields,
                    inner: read_normal(r, bytes)?,
                }))
            }
            other => Err(Error::UnexpectedType(other)),
        }
    }

    /// The message's encoding; for a parsed message, exactly the parsed bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (fields, inner) = match self {
            Message::Normal(m) => (None, m),
            Message::Initial(m) => (Some(&m.fields), &m.inner),
        };
        let mut out = Vec::with_capacity(inner.prefix.len() + inner.body.len());
        write_prefix(&mut out, fields, &inner.header);
        out.put(inner.body);
        out
    }

    /// The Double Ratchet part of the message.
    fn ratchet_part(&self) -> &NormalMessage<'a> {
        match self {
            Message::Normal(m) => m,
            Message::Initial(m) => &m.inner,
        }
    }

    /// The sender's ratchet public key (`DHs` of the header).
    pub fn ratchet_key(&self) -> &[u8; 32] {
        &self.ratchet_part().header.dh
    }

    /// The message number `N` in its sending chain.
    pub fn message_number(&self) -> u32 {
        self.ratchet_part().header.n
    }

    /// The length `PN` of the sender's previous sending chain.
    pub fn previous_chain_length(&self) -> u32 {
        self.ratchet_part().header.pn
    }

    /// The length of the ciphertext, tag included.
    pub fn ciphertext_len(&self) -> usize {
        self.ratchet_part().body.len()
    }
}

impl InitialMessage<'_> {
    /// The initiator's identity key `IK_A`.
    pub fn identity_key(&self) -> &IdentityKey {
        &self.fields.identity
    }

    /// The initiator's ephemeral (base) key `EK_A`.
    pub fn base_key(&self) -> &[u8; 32] {
        &self.fields.base_key
    }

    /// The id of the responder's signed prekey the initiator used.
    pub fn signed_prekey_id(&self) -> u32 {
        self.fields.signed_prekey_id
    }

    /// The id of the responder's one-time prekey the initiator used, if any.
    pub fn one_time_prekey_id(&self) -> Option<u32> {
        self.fields.one_time_prekey_id
    }

    /// Whether this is a PQXDH initial message (type `0x03`).
    pub fn is_post_quantum(&self) -> bool {
        self.fields.post_quantum.is_some()
    }

    /// The id of the responder's post-quantum prekey the initiator used (PQXDH only).
    pub fn post_quantum_prekey_id(&self) -> Option<u32> {
        self.fields.post_quantum.map(|(id, _)| id)
    }

    /// The identifier of the session this message belongs to, given the responder's own
    /// identity key (SPEC.md §3.5).
    pub fn session_id(&self, responder: &IdentityKey) -> SessionId {
        SessionId::derive(&self.fields.identity, responder, &self.fields.base_key)
    }
}

fn read_normal<'a>(mut r: Reader<'a>, whole: &'a [u8]) -> Result<NormalMessage<'a>, Error> {
    let dh = r.array()?;
    x25519_public_from_bytes(&dh)?;
    let pn = r.u32()?;
    let n = r.u32()?;
    if r.remaining() < TAG_LENGTH {
        return Err(Error::Truncated);
    }
    let prefix_len = whole.len() - r.remaining();
    Ok(NormalMessage {
        header: Header { dh, pn, n },
        prefix: &whole[..prefix_len],
        body: r.rest(),
    })
}

/// The length of the framing [`write_prefix`] writes for these fields.
pub(crate) fn prefix_length(fields: Option<&InitialFields<'_>>) -> usize {
    match fields {
        None => NORMAL_PREFIX_LENGTH,
        Some(f) if f.post_quantum.is_some() => INITIAL_PREFIX_LENGTH + 4 + 1088,
        Some(_) => INITIAL_PREFIX_LENGTH,
    }
}

/// Writes the framing of a message up to the ciphertext.
pub(crate) fn write_prefix(out: &mut Vec<u8>, fields: Option<&InitialFields<'_>>, header: &Header) {
    out.put_u8(VERSION);
    match fields {
        None => out.put_u8(TYPE_NORMAL),
        Some(f) => {
            out.put_u8(if f.post_quantum.is_some() {
                TYPE_INITIAL_PQ
            } else {
                TYPE_INITIAL
            });
            out.put(f.identity.as_bytes());
            out.put(&f.base_key);
            out.put_u32(f.signed_prekey_id);
            out.put_optional(
                f.one_time_prekey_id
                    .map(u32::to_be_bytes)
                    .as_ref()
                    .map(|b| &b[..]),
                4,
            );
            #[cfg(feature = "pqxdh")]
            if let Some((id, ciphertext)) = f.post_quantum {
                out.put_u32(id);
                out.put(ciphertext);
            }
        }
    }
    out.put(&header.dh);
    out.put_u32(header.pn);
    out.put_u32(header.n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_normal() -> Vec<u8> {
        let mut v = Vec::new();
        let header = Header {
            dh: [9u8; 32],
            pn: 3,
            n: 7,
        };
        write_prefix(&mut v, None, &header);
        v.extend_from_slice(&[0xAB; 20]);
        v
    }

    #[test]
    fn normal_round_trip_and_layout() {
        let bytes = sample_normal();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.to_bytes(), bytes);
        assert_eq!(m.message_number(), 7);
        assert_eq!(m.previous_chain_length(), 3);
        assert_eq!(m.ratchet_key(), &[9u8; 32]);
        let Message::Normal(n) = m else { panic!() };
        assert_eq!(n.prefix.len(), NORMAL_PREFIX_LENGTH);
        assert_eq!(n.body.len(), 20);
    }

    #[test]
    fn strict_rejections() {
        let bytes = sample_normal();
        for len in 0..NORMAL_PREFIX_LENGTH + TAG_LENGTH {
            assert_eq!(
                Message::parse(&bytes[..len]),
                Err(Error::Truncated),
                "len {len}"
            );
        }
        let mut v = bytes.clone();
        v[0] = 2;
        assert_eq!(Message::parse(&v), Err(Error::UnsupportedVersion(2)));
        let mut v = bytes.clone();
        v[1] = 0x7f;
        assert_eq!(Message::parse(&v), Err(Error::UnexpectedType(0x7f)));
        let mut v = bytes.clone();
        v[2..34].fill(0); // low-order ratchet key
        assert_eq!(Message::parse(&v), Err(Error::InvalidPublicKey));
        let mut v = bytes;
        v.resize(MAX_MESSAGE_SIZE + 1, 0);
        assert_eq!(Message::parse(&v), Err(Error::TooLarge));
    }
}
