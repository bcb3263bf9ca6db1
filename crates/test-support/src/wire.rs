//! Readers and writers of message header fields, for messages with a cleartext header.

use doubleratchet::Message;

use crate::layout;

/// A message header: the sender's ratchet key, `N`, `PN`.
pub type Header = ([u8; 32], u32, u32);

/// Offset of the ratchet header (the sender's ratchet key) in a message of either type.
pub fn header_offset(message: &[u8]) -> usize {
    if message[1] == layout::TYPE_INITIAL {
        layout::INITIAL_DH
    } else {
        layout::NORMAL_DH
    }
}

/// Reads a big-endian u32 at `at`.
pub fn get_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

/// Writes a big-endian u32 at `at`.
pub fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Reads a big-endian u64 (a prekey id) at `at`.
pub fn get_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Writes a big-endian u64 (a prekey id) at `at`.
pub fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// A copy of `message` with its header fields replaced where given (a forgery: the header
/// is authenticated, so such a message can only fail to decrypt).
pub fn forge_header(
    message: &[u8],
    dh: Option<[u8; 32]>,
    pn: Option<u32>,
    n: Option<u32>,
) -> Vec<u8> {
    let mut out = message.to_vec();
    let h = header_offset(message);
    if let Some(dh) = dh {
        out[h..h + 32].copy_from_slice(&dh);
    }
    if let Some(pn) = pn {
        put_u32(&mut out, h + 32, pn);
    }
    if let Some(n) = n {
        put_u32(&mut out, h + 36, n);
    }
    out
}

/// The `N` of a message of either type.
pub fn message_number(message: &[u8]) -> u32 {
    get_u32(message, header_offset(message) + 36)
}

/// The `PN` of a message of either type.
pub fn previous_chain_length(message: &[u8]) -> u32 {
    get_u32(message, header_offset(message) + 32)
}

/// The sender's ratchet key of a message of either type.
pub fn ratchet_key(message: &[u8]) -> [u8; 32] {
    let h = header_offset(message);
    let mut k = [0u8; 32];
    k.copy_from_slice(&message[h..h + 32]);
    k
}

/// Whether the message is an initial (prekey) message.
pub fn is_initial(message: &[u8]) -> bool {
    matches!(Message::parse(message).unwrap(), Message::Initial(_))
}

/// The header fields of a message, through the crate's parser: sender's ratchet key, `N`,
/// `PN`.
pub fn header(message: &[u8]) -> Header {
    let parsed = Message::parse(message).unwrap();
    (
        parsed.ratchet_key().unwrap().to_bytes(),
        parsed.message_number().unwrap(),
        parsed.previous_chain_length().unwrap(),
    )
}
