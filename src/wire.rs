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
//! version(1) | type = 0x02 (1) | IK_A(32) | EK_A(32) | SPK id(8) | OPK flag(1) | OPK id(8)
//!            | DHs(32) | PN(4) | N(4) | ciphertext || tag(16)
//! ```
//!
//! Post-quantum initial message (SPEC.md §5.3, type `0x03`): the initial message's X3DH
//! fields followed by `PQPK id(8) | KEM ciphertext(1088)`, then the ratchet header.
//!
//! The ciphertext is the encoded (padded) plaintext, SPEC.md §4.9. Every byte before the
//! ciphertext is authenticated: the AEAD's associated data is
//! `AD || prefix`, where prefix is everything from the version byte up to the ciphertext.
//! Parsing borrows from the input and never allocates.

use alloc::vec::Vec;

use crate::codec::{Reader, Writer};
use crate::error::Error;
#[cfg(feature = "pqxdh")]
use crate::format::KEM_CIPHERTEXT_LENGTH;
use crate::format::{
    ENCRYPTED_HEADER_LENGTH, HE_INITIAL_PREFIX_LENGTH, HE_NORMAL_PREFIX_LENGTH,
    HE_PQ_INITIAL_PREFIX_LENGTH, INITIAL_PREFIX_LENGTH, NORMAL_PREFIX_LENGTH,
    PQ_INITIAL_PREFIX_LENGTH, TAG_LENGTH, TYPE_INITIAL, TYPE_INITIAL_HE, TYPE_INITIAL_PQ,
    TYPE_INITIAL_PQ_HE, TYPE_NORMAL, TYPE_NORMAL_HE, WIRE_VERSION,
};
pub use crate::format::{MAX_MESSAGE_SIZE, MAX_PLAINTEXT_SIZE};
use crate::ids::{OneTimePreKeyId, PqPreKeyId, SignedPreKeyId};
use crate::keys::{x25519_public_from_bytes, IdentityKey, X25519PublicKey};
use crate::ratchet::Header;
use crate::x3dh::SessionId;

/// Reads and checks the version and type bytes of any encoded object.
pub(crate) fn read_version_and_type(
    r: &mut Reader<'_>,
    version: u8,
    expected: u8,
) -> Result<(), Error> {
    read_version_and_type_of(r, version, &[expected]).map(|_| ())
}

/// Reads the version and type bytes, accepting `version` and any of `expected`; returns
/// the type.
pub(crate) fn read_version_and_type_of(
    r: &mut Reader<'_>,
    expected_version: u8,
    expected: &[u8],
) -> Result<u8, Error> {
    let version = r.u8()?;
    if version != expected_version {
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
#[non_exhaustive]
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
    pub(crate) signed_prekey_id: SignedPreKeyId,
    pub(crate) one_time_prekey_id: Option<OneTimePreKeyId>,
    /// PQXDH: the `PQPK` id and the KEM ciphertext.
    #[cfg(feature = "pqxdh")]
    pub(crate) post_quantum: Option<(PqPreKeyId, &'a [u8; KEM_CIPHERTEXT_LENGTH])>,
    #[cfg(not(feature = "pqxdh"))]
    pub(crate) post_quantum: Option<(PqPreKeyId, core::marker::PhantomData<&'a ()>)>,
}

/// A message's ratchet header: in the clear, or encrypted (header-encrypted mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireHeader<'a> {
    /// `DHs || PN || N`.
    Plain(Header),
    /// `nonce || HENCRYPT(HKs, header)`; `aad_len` is the length of the framing before it.
    Encrypted {
        sealed: &'a [u8; ENCRYPTED_HEADER_LENGTH],
        aad_len: usize,
    },
}

/// A parsed normal message (type `0x01`, or `0x04` with an encrypted header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalMessage<'a> {
    pub(crate) header: WireHeader<'a>,
    /// Every byte of the message before the ciphertext (authenticated as AAD).
    pub(crate) prefix: &'a [u8],
    /// Ciphertext followed by the 16-byte tag.
    pub(crate) body: &'a [u8],
}

/// A parsed initial message (types `0x02`, `0x03`, `0x05`, `0x06`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialMessage<'a> {
    pub(crate) fields: InitialFields<'a>,
    /// The Double Ratchet message inside; its `prefix` covers the whole framing,
    /// X3DH fields included.
    pub(crate) inner: NormalMessage<'a>,
}

/// The type byte of a message (SPEC.md §5.5).
pub(crate) fn message_type(initial: bool, post_quantum: bool, header_encrypted: bool) -> u8 {
    match (initial, post_quantum, header_encrypted) {
        (false, _, false) => TYPE_NORMAL,
        (false, _, true) => TYPE_NORMAL_HE,
        (true, false, false) => TYPE_INITIAL,
        (true, true, false) => TYPE_INITIAL_PQ,
        (true, false, true) => TYPE_INITIAL_HE,
        (true, true, true) => TYPE_INITIAL_PQ_HE,
    }
}

impl<'a> Message<'a> {
    /// Parses a message strictly (SPEC.md §5): size limit first, then version and type,
    /// then the fixed-width fields; every public key in the clear is validated.
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
        if version != WIRE_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let kind = r.u8()?;
        let (initial, post_quantum, header_encrypted) = match kind {
            TYPE_NORMAL => (false, false, false),
            TYPE_NORMAL_HE => (false, false, true),
            TYPE_INITIAL => (true, false, false),
            TYPE_INITIAL_HE => (true, false, true),
            TYPE_INITIAL_PQ if cfg!(feature = "pqxdh") => (true, true, false),
            TYPE_INITIAL_PQ_HE if cfg!(feature = "pqxdh") => (true, true, true),
            other => return Err(Error::UnexpectedType(other)),
        };
        if !initial {
            return Ok(Message::Normal(read_ratchet_part(
                r,
                bytes,
                header_encrypted,
            )?));
        }
        let identity = IdentityKey::from_bytes(&r.array()?)?;
        let base_key = r.array()?;
        x25519_public_from_bytes(&base_key)?;
        let signed_prekey_id = SignedPreKeyId::from_u64(r.u64()?);
        let one_time_prekey_id = r
            .optional::<8>()?
            .map(|b| OneTimePreKeyId::from_u64(u64::from_be_bytes(b)));
        #[cfg(feature = "pqxdh")]
        let post_quantum = if post_quantum {
            let id = PqPreKeyId::from_u64(r.u64()?);
            let ciphertext = r
                .take(KEM_CIPHERTEXT_LENGTH)?
                .try_into()
                // `take` returns exactly the bytes asked for.
                .map_err(|_| Error::Internal)?;
            Some((id, ciphertext))
        } else {
            None
        };
        #[cfg(not(feature = "pqxdh"))]
        let post_quantum = {
            let _ = post_quantum;
            None
        };
        let fields = InitialFields {
            identity,
            base_key,
            signed_prekey_id,
            one_time_prekey_id,
            post_quantum,
        };
        Ok(Message::Initial(InitialMessage {
            fields,
            inner: read_ratchet_part(r, bytes, header_encrypted)?,
        }))
    }

    /// The message's encoding; for a parsed message, exactly the parsed bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (fields, inner) = match self {
            Message::Normal(m) => (None, m),
            Message::Initial(m) => (Some(&m.fields), &m.inner),
        };
        let mut out = Vec::with_capacity(inner.prefix.len() + inner.body.len());
        let encrypted = matches!(inner.header, WireHeader::Encrypted { .. });
        write_framing(&mut out, fields, encrypted);
        write_header(&mut out, &inner.header);
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

    fn plain_header(&self) -> Option<&Header> {
        match &self.ratchet_part().header {
            WireHeader::Plain(h) => Some(h),
            WireHeader::Encrypted { .. } => None,
        }
    }

    /// Whether the ratchet header is encrypted (types `0x04`, `0x05`, `0x06`; SPEC.md §4.8).
    pub fn is_header_encrypted(&self) -> bool {
        self.plain_header().is_none()
    }

    /// The sender's ratchet public key (`DHs` of the header); `None` when the header is
    /// encrypted.
    pub fn ratchet_key(&self) -> Option<X25519PublicKey> {
        self.plain_header()
            .map(|h| X25519PublicKey::from_validated(h.dh))
    }

    /// The message number `N` in its sending chain; `None` when the header is encrypted.
    pub fn message_number(&self) -> Option<u32> {
        self.plain_header().map(|h| h.n)
    }

    /// The length `PN` of the sender's previous sending chain; `None` when the header is
    /// encrypted.
    pub fn previous_chain_length(&self) -> Option<u32> {
        self.plain_header().map(|h| h.pn)
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
    pub fn base_key(&self) -> X25519PublicKey {
        X25519PublicKey::from_validated(self.fields.base_key)
    }

    /// The id of the responder's signed prekey the initiator used.
    pub fn signed_prekey_id(&self) -> SignedPreKeyId {
        self.fields.signed_prekey_id
    }

    /// The id of the responder's one-time prekey the initiator used, if any.
    pub fn one_time_prekey_id(&self) -> Option<OneTimePreKeyId> {
        self.fields.one_time_prekey_id
    }

    /// Whether this is a PQXDH initial message (type `0x03` or `0x06`).
    pub fn is_post_quantum(&self) -> bool {
        self.fields.post_quantum.is_some()
    }

    /// Whether the session it starts is header-encrypted (type `0x05` or `0x06`).
    pub fn is_header_encrypted(&self) -> bool {
        matches!(self.inner.header, WireHeader::Encrypted { .. })
    }

    /// The id of the responder's post-quantum prekey the initiator used (PQXDH only).
    pub fn post_quantum_prekey_id(&self) -> Option<PqPreKeyId> {
        self.fields.post_quantum.map(|(id, _)| id)
    }

    /// The identifier of the session this message belongs to, given the responder's own
    /// identity key (SPEC.md §3.5).
    pub fn session_id(&self, responder: &IdentityKey) -> SessionId {
        SessionId::derive(&self.fields.identity, responder, &self.fields.base_key)
    }
}

/// Reads the ratchet part: the header (in the clear or encrypted), then the ciphertext.
fn read_ratchet_part<'a>(
    mut r: Reader<'a>,
    whole: &'a [u8],
    encrypted: bool,
) -> Result<NormalMessage<'a>, Error> {
    let header = if encrypted {
        let aad_len = whole.len() - r.remaining();
        let sealed = r
            .take(ENCRYPTED_HEADER_LENGTH)?
            .try_into()
            // `take` returns exactly the bytes asked for.
            .map_err(|_| Error::Internal)?;
        WireHeader::Encrypted { sealed, aad_len }
    } else {
        let dh = r.array()?;
        x25519_public_from_bytes(&dh)?;
        let pn = r.u32()?;
        let n = r.u32()?;
        WireHeader::Plain(Header { dh, pn, n })
    };
    if r.remaining() < TAG_LENGTH {
        return Err(Error::Truncated);
    }
    let prefix_len = whole.len() - r.remaining();
    Ok(NormalMessage {
        header,
        prefix: &whole[..prefix_len],
        body: r.rest(),
    })
}

/// The length of the framing (up to the ciphertext) for these fields and header kind.
pub(crate) fn prefix_length(fields: Option<&InitialFields<'_>>, header_encrypted: bool) -> usize {
    let post_quantum = fields.is_some_and(|f| f.post_quantum.is_some());
    match (fields.is_some(), post_quantum, header_encrypted) {
        (false, _, false) => NORMAL_PREFIX_LENGTH,
        (false, _, true) => HE_NORMAL_PREFIX_LENGTH,
        (true, false, false) => INITIAL_PREFIX_LENGTH,
        (true, false, true) => HE_INITIAL_PREFIX_LENGTH,
        (true, true, false) => PQ_INITIAL_PREFIX_LENGTH,
        (true, true, true) => HE_PQ_INITIAL_PREFIX_LENGTH,
    }
}

/// Writes the version, the type and, for an initial message, its key-agreement fields:
/// everything before the ratchet header.
pub(crate) fn write_framing(
    out: &mut Vec<u8>,
    fields: Option<&InitialFields<'_>>,
    header_encrypted: bool,
) {
    out.put_u8(WIRE_VERSION);
    let post_quantum = fields.is_some_and(|f| f.post_quantum.is_some());
    out.put_u8(message_type(
        fields.is_some(),
        post_quantum,
        header_encrypted,
    ));
    if let Some(f) = fields {
        out.put(f.identity.as_bytes());
        out.put(&f.base_key);
        out.put_u64(f.signed_prekey_id.to_u64());
        out.put_optional(
            f.one_time_prekey_id
                .map(|id| id.to_u64().to_be_bytes())
                .as_ref()
                .map(|b| &b[..]),
            8,
        );
        #[cfg(feature = "pqxdh")]
        if let Some((id, ciphertext)) = f.post_quantum {
            out.put_u64(id.to_u64());
            out.put(ciphertext);
        }
    }
}

/// Writes the ratchet header, in the clear or sealed.
pub(crate) fn write_header(out: &mut Vec<u8>, header: &WireHeader<'_>) {
    match header {
        WireHeader::Plain(h) => {
            out.put(&h.dh);
            out.put_u32(h.pn);
            out.put_u32(h.n);
        }
        WireHeader::Encrypted { sealed, .. } => out.put(&sealed[..]),
    }
}

/// Writes the framing of a message with a cleartext header, up to the ciphertext.
#[cfg(test)]
pub(crate) fn write_prefix(out: &mut Vec<u8>, fields: Option<&InitialFields<'_>>, header: &Header) {
    write_framing(out, fields, false);
    write_header(out, &WireHeader::Plain(*header));
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
        assert_eq!(m.message_number(), Some(7));
        assert_eq!(m.previous_chain_length(), Some(3));
        assert_eq!(m.ratchet_key().map(|k| k.to_bytes()), Some([9u8; 32]));
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
        v[0] = 1;
        assert_eq!(Message::parse(&v), Err(Error::UnsupportedVersion(1)));
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
