//! Storage encodings seen from outside: the bytes of a session, loading that checks the
//! encoding is canonical (loading then storing gives back the very same bytes), the
//! transactional-rejection check, and a reader of the ratchet fields of a stored session
//! (SPEC.md §7.1), which is how tests see the header of a header-encrypted message and the
//! skipped keys a session holds.

use curve25519_dalek::montgomery::MontgomeryPoint;
use doubleratchet::{Error, IdentityKey, Session};

use crate::wire::{header, Header};

/// The session's full storage encoding as a plain vector, to compare states byte for byte.
pub fn stored(session: &Session) -> Vec<u8> {
    session.to_bytes().to_vec()
}

/// Loads `bytes` as a session of the device whose identity key is `local`, and checks that
/// storing it again gives the same bytes.
#[track_caller]
pub fn load(bytes: &[u8], local: &IdentityKey) -> Session {
    let session = Session::from_bytes(bytes, local).unwrap();
    assert_eq!(
        &session.to_bytes()[..],
        bytes,
        "re-encoding a loaded session changed its bytes"
    );
    session
}

/// Stores and loads a session (what an app does between two messages).
#[track_caller]
pub fn reload(session: &Session) -> Session {
    load(&session.to_bytes(), session.local_identity())
}

/// Asserts that `session` rejects `message` with exactly `expected` and that its storage
/// encoding is byte-identical afterwards.
#[track_caller]
pub fn assert_rejected(session: &mut Session, message: &[u8], expected: Error) {
    let before = stored(session);
    assert_eq!(session.decrypt(message), Err(expected));
    assert!(
        stored(session).as_slice() == before.as_slice(),
        "session changed by a rejected message ({expected:?})"
    );
}

/// The ratchet fields of a stored session, read from its storage encoding (SPEC.md §7.1,
/// types `0x20`, `0x25` and `0x28`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatchetView {
    /// The public key of `DHs`, recomputed from the stored secret (X25519 of the base
    /// point): the ratchet key of the session's messages in its current sending chain.
    pub dhs_public: [u8; 32],
    /// `DHr`: the ratchet key of the current receiving chain.
    pub dhr: [u8; 32],
    /// Whether a sending chain key is stored.
    pub has_cks: bool,
    /// Whether a receiving chain key is stored.
    pub has_ckr: bool,
    /// `Ns`.
    pub ns: u32,
    /// `Nr`.
    pub nr: u32,
    /// `PN`.
    pub pn: u32,
    /// The stored skipped keys' indices `(ratchet key, N)`, oldest first.
    pub skipped: Vec<([u8; 32], u32)>,
    /// Header-encrypted sessions: the ratchet keys of the chains whose header keys are
    /// stored for their skipped keys, oldest first. Empty otherwise.
    pub header_key_chains: Vec<[u8; 32]>,
}

/// A cursor over a stored encoding that panics on anything unexpected: the input and the
/// position of the next byte.
pub struct Cursor<'a>(pub &'a [u8], pub usize);

impl Cursor<'_> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> &[u8] {
        let out = &self.0[self.1..self.1 + n];
        self.1 += n;
        out
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    /// The next big-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }

    /// The next big-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }

    fn key(&mut self) -> [u8; 32] {
        self.take(32).try_into().unwrap()
    }

    /// A key whose presence `present` says (a bit of the state flags): read if present.
    fn key_if(&mut self, present: bool) -> bool {
        if present {
            self.take(32);
        }
        present
    }

    fn optional(&mut self) -> bool {
        match self.u8() {
            0 => {
                assert_eq!(self.take(32), [0; 32]);
                false
            }
            1 => {
                self.take(32);
                true
            }
            other => panic!("optional flag {other}"),
        }
    }
}

/// Length of an ML-KEM-768 ciphertext (SPEC.md §2), stored while a PQXDH initiator awaits
/// its first reply. Spelled out so that this reader works without the `pqxdh` feature.
const KEM_CIPHERTEXT: usize = 1088;

/// State flags of a stored session (SPEC.md §7.1, byte 2): the initiator awaits its reply
/// (the pending fields are stored).
pub const STATE_AWAITING_REPLY: u8 = 0x02;
/// State flags: the pending fields hold a one-time prekey id.
pub const STATE_ONE_TIME_PREKEY: u8 = 0x04;
/// State flags: `CKs` is stored.
pub const STATE_SENDING_CHAIN: u8 = 0x08;
/// State flags: `CKr` is stored.
pub const STATE_RECEIVING_CHAIN: u8 = 0x10;

/// The offset of a stored session's padding byte (SPEC.md §7.1, v2): right after
/// `max_stored_skipped`. Type `0x28` has a flags byte after the state flags, and an
/// initiator awaiting its reply keeps its pending fields (prekey ids, and for PQXDH the
/// post-quantum prekey id and KEM ciphertext) before the limits.
#[track_caller]
pub fn padding_offset(stored: &[u8]) -> usize {
    assert_eq!(stored[0], 0x02, "stored session version");
    let (flags, post_quantum) = match stored[1] {
        0x20 => (0, false),
        0x25 => (0, true),
        0x28 => match stored[3] {
            0x02 => (1, false),
            0x03 => (1, true),
            other => panic!("flags {other:#04x}"),
        },
        other => panic!("not a stored session: type {other:#04x}"),
    };
    // Version, type, state flags (+ flags), the remote identity and `EK_A`.
    let pending = 3 + flags + 2 * 32;
    pending + pending_length(stored[2], post_quantum) + 8
}

/// The length of the pending fields the state flags announce.
fn pending_length(state: u8, post_quantum: bool) -> usize {
    if state & STATE_AWAITING_REPLY == 0 {
        return 0;
    }
    let one_time = if state & STATE_ONE_TIME_PREKEY != 0 {
        8
    } else {
        0
    };
    let pq = if post_quantum { 8 + KEM_CIPHERTEXT } else { 0 };
    8 + one_time + pq
}

/// Reads [`RatchetView`] from a stored session; panics on anything but a well-formed
/// encoding that the layout of SPEC.md §7.1 accounts for to the last byte.
pub fn ratchet_view(bytes: &[u8]) -> RatchetView {
    let mut r = Cursor(bytes, 0);
    // The layout below is that of storage version 0x02 (profile v2).
    assert_eq!(r.u8(), 0x02, "version");
    let kind = r.u8();
    let state = r.u8();
    let (post_quantum, header_encrypted) = match kind {
        0x20 => (false, false),
        0x25 => (true, false),
        0x28 => match r.u8() {
            0x02 => (false, true),
            0x03 => (true, true),
            flags => panic!("flags {flags:#04x}"),
        },
        other => panic!("not a stored session: type {other:#04x}"),
    };
    r.take(2 * 32); // remote identity, EK_A
    r.take(pending_length(state, post_quantum));
    r.take(4 + 4); // limits
    assert!(matches!(r.u8(), 0x00 | 0x01), "padding policy");
    r.take(32); // RK
    let dhs_secret = r.key();
    let dhr = r.key();
    let has_cks = r.key_if(state & STATE_SENDING_CHAIN != 0);
    let has_ckr = r.key_if(state & STATE_RECEIVING_CHAIN != 0);
    let (ns, nr, pn) = (r.u32(), r.u32(), r.u32());
    let count = r.u32() as usize;
    let skipped = (0..count)
        .map(|_| {
            let dh = r.key();
            let n = r.u32();
            r.take(32);
            (dh, n)
        })
        .collect();
    let mut header_key_chains = Vec::new();
    if header_encrypted {
        r.optional(); // HKs
        r.optional(); // HKr
        r.take(64); // NHKs, NHKr
        let h = r.u32() as usize;
        for _ in 0..h {
            r.take(32);
            header_key_chains.push(r.key());
        }
    }
    assert_eq!(r.1, bytes.len(), "bytes after the layout of SPEC.md §7.1");
    RatchetView {
        dhs_public: MontgomeryPoint::mul_base_clamped(dhs_secret).to_bytes(),
        dhr,
        has_cks,
        has_ckr,
        ns,
        nr,
        pn,
        skipped,
        header_key_chains,
    }
}

/// [`ratchet_view`] of a live session.
pub fn view(session: &Session) -> RatchetView {
    ratchet_view(&session.to_bytes())
}

/// The header `(ratchet key, N, PN)` of the message `sender` has just encrypted, read from
/// the sender's stored state: the only way to see it in header-encrypted mode. For a
/// message with a cleartext header, also checks that it agrees with the header on the wire.
#[track_caller]
pub fn sent_header(sender: &Session, message: &[u8]) -> Header {
    let v = view(sender);
    assert!(v.has_cks && v.ns > 0, "the sender has not just sent");
    let sent = (v.dhs_public, v.ns - 1, v.pn);
    if !sender.is_header_encrypted() {
        assert_eq!(header(message), sent);
    }
    sent
}
