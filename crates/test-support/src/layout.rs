//! Byte offsets of the wire formats (SPEC.md §5.2-§5.4), for editing messages and bundles
//! byte by byte. Plain (cleartext-header) messages; prekey ids are u64.

/// Type byte of a normal message.
pub const TYPE_NORMAL: u8 = 0x01;
/// Type byte of an initial message.
pub const TYPE_INITIAL: u8 = 0x02;

/// Normal message: the sender's ratchet key.
pub const NORMAL_DH: usize = 2;
/// Normal message: `PN`.
pub const NORMAL_PN: usize = 34;
/// Normal message: `N`.
pub const NORMAL_N: usize = 38;
/// Normal message: the ciphertext.
pub const NORMAL_BODY: usize = 42;

/// Initial message: `IK_A`.
pub const INITIAL_IK: usize = 2;
/// Initial message: `EK_A`.
pub const INITIAL_EK: usize = 34;
/// Initial message: the signed prekey id.
pub const INITIAL_SPK_ID: usize = 66;
/// Initial message: whether a one-time prekey id follows.
pub const INITIAL_OPK_FLAG: usize = 74;
/// Initial message: the one-time prekey id.
pub const INITIAL_OPK_ID: usize = 75;
/// Initial message: the sender's ratchet key (start of the ratchet header).
pub const INITIAL_DH: usize = 83;
/// Initial message: `PN`.
pub const INITIAL_PN: usize = 115;
/// Initial message: `N`.
pub const INITIAL_N: usize = 119;
/// Initial message: the ciphertext.
pub const INITIAL_BODY: usize = 123;

/// Prekey bundle: the identity key.
pub const BUNDLE_IK: usize = 2;
/// Prekey bundle: the signed prekey id.
pub const BUNDLE_SPK_ID: usize = 34;
/// Prekey bundle: the signed prekey.
pub const BUNDLE_SPK: usize = 42;
/// Prekey bundle: the signed prekey's signature.
pub const BUNDLE_SIGNATURE: usize = 74;
/// Prekey bundle: whether a one-time prekey follows.
pub const BUNDLE_OPK_FLAG: usize = 138;
/// Prekey bundle: the one-time prekey id.
pub const BUNDLE_OPK_ID: usize = 139;
/// Prekey bundle: the one-time prekey.
pub const BUNDLE_OPK: usize = 147;
/// Length of a classical bundle.
pub const BUNDLE_END: usize = 179;

/// Tag length of every ciphertext.
pub const TAG: usize = 16;
