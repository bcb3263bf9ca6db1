//! A party's sessions with one contact, managed as SPEC.md §6.3-§6.4 describe.

use doubleratchet::{Error, Message, PreKeyBundle, Session, SessionId};
use rand_chacha::ChaCha20Rng;

use crate::fixtures::Party;
use crate::storage::stored;
use doubleratchet::SessionOptions;

/// A party's sessions with one contact: initial messages are routed by session id (an
/// unknown id creates a session through the prekey store), normal messages are tried on the
/// sessions newest first, and messages are sent on the *sending session*: the first one,
/// which a decryption on another session S replaces when S has the smaller session id or
/// also decrypted the previous message.
pub struct Peer {
    /// The party's identity and prekey store.
    pub party: Party,
    /// Oldest first.
    pub sessions: Vec<Session>,
    /// Index of the session messages are sent on.
    pub sending: Option<usize>,
    /// Index of the session that most recently decrypted a message.
    pub last_received: Option<usize>,
}

impl Peer {
    /// A new party without sessions.
    pub fn new(rng: &mut ChaCha20Rng) -> Peer {
        Peer {
            party: Party::new(rng),
            sessions: Vec::new(),
            sending: None,
            last_received: None,
        }
    }

    /// SPEC.md §6.4: after session `i` decrypted a message, keep or switch the sending
    /// session.
    fn received_on(&mut self, i: usize) {
        let switch = match self.sending {
            None => true,
            Some(current) => {
                current != i
                    && (self.sessions[i].id() < self.sessions[current].id()
                        || self.last_received == Some(i))
            }
        };
        if switch {
            self.sending = Some(i);
        }
        self.last_received = Some(i);
    }

    /// Starts a session from the contact's bundle.
    pub fn initiate(&mut self, bundle: &PreKeyBundle, rng: &mut ChaCha20Rng) {
        let s =
            Session::initiate(&self.party.identity, bundle, &SessionOptions::new(), rng).unwrap();
        self.sessions.push(s);
        self.sending = Some(self.sessions.len() - 1);
    }

    /// The index of the session messages are sent on.
    pub fn sending_index(&self) -> Option<usize> {
        self.sending
    }

    /// The session messages are sent on.
    pub fn sending_session(&self) -> Option<&Session> {
        self.sending_index().map(|i| &self.sessions[i])
    }

    /// Whether the peer has a session to send on.
    pub fn can_send(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// Encrypts on the sending session.
    pub fn send(&mut self, plaintext: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
        let i = self.sending_index().expect("no session to send on");
        self.sessions[i].encrypt(plaintext, rng).unwrap()
    }

    /// Routes and decrypts one incoming message. Checks along the way that every failed
    /// attempt left its session byte-identical, which is what makes trying safe.
    pub fn receive(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match Message::parse(message)? {
            Message::Initial(m) => {
                let id: SessionId = m.session_id(self.party.identity.public_key());
                match self.sessions.iter().position(|s| s.id() == id) {
                    Some(i) => {
                        let pt = self.sessions[i].decrypt(message)?;
                        self.received_on(i);
                        Ok(pt)
                    }
                    None => {
                        let accepted = self.party.accept(message)?;
                        assert_eq!(accepted.session.id(), id);
                        self.sessions.push(accepted.session);
                        self.received_on(self.sessions.len() - 1);
                        Ok(accepted.plaintext)
                    }
                }
            }
            Message::Normal(_) => self.receive_normal(message),
            // A message type added after this code was written: not for these sessions.
            _ => Err(Error::UnexpectedType(message[1])),
        }
    }

    fn receive_normal(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let mut last_error = Error::DecryptionFailed;
        for i in (0..self.sessions.len()).rev() {
            let before = stored(&self.sessions[i]);
            match self.sessions[i].decrypt(message) {
                Ok(pt) => {
                    self.received_on(i);
                    return Ok(pt);
                }
                Err(e) => {
                    assert!(
                        stored(&self.sessions[i]).as_slice() == before.as_slice(),
                        "failed trial decryption changed session {i}"
                    );
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }
}
