//! The published test vectors of the primitives, run through this crate's own wrappers:
//!
//! * RFC 7748 §5.2 (X25519 function, including the 1 and 1 000 iteration vectors) and
//!   §6.1 (Diffie-Hellman) through [`crate::keys::diffie_hellman`] and
//!   [`crate::keys::x25519_public`], hence through the crypto interface (`backend`);
//! * RFC 8032 §7.1 Ed25519 TEST 1, 2 and 3 through [`IdentityKeyPair::from_seed`]
//!   (public key), [`IdentityKeyPair::sign`] (signature) and the strict verification that
//!   [`PreKeyBundle::verify`] performs;
//! * RFC 5869 Appendix A test cases 1-3 (HKDF-SHA-256) through
//!   [`crate::ratchet::kdf::hkdf_sha256`], the PRK through the interface's HMAC.
//!
//! The hex values are copied from the RFCs.

use alloc::vec::Vec;

use ed25519_dalek::Signature;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::error::Error;
use crate::keys::{diffie_hellman, x25519_public, IdentityKey, IdentityKeyPair, SignedPreKey};
use crate::ratchet::kdf::hkdf_sha256;
use crate::x3dh::PreKeyBundle;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn hex32(s: &str) -> [u8; 32] {
    hex(s).try_into().unwrap()
}

fn hex64(s: &str) -> [u8; 64] {
    hex(s).try_into().unwrap()
}

/// `X25519(k, u)` through the crate's checked DH.
fn x25519(k: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    *diffie_hellman(&StaticSecret::from(k), &PublicKey::from(u)).unwrap()
}

// ---------------------------------------------------------------------------------------
// RFC 7748
// ---------------------------------------------------------------------------------------

#[test]
fn rfc7748_5_2_x25519_function() {
    // (input scalar, input u-coordinate, output u-coordinate)
    let vectors = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        // The input u-coordinate has its top bit set, which X25519 must ignore.
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for (scalar, u, out) in vectors {
        assert_eq!(x25519(hex32(scalar), hex32(u)), hex32(out));
    }
}

#[test]
fn rfc7748_5_2_iterated() {
    // k = u = 9; repeatedly (k, u) = (X25519(k, u), k).
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for i in 1..=1000 {
        let next = x25519(k, u);
        u = k;
        k = next;
        if i == 1 {
            assert_eq!(
                k,
                hex32("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
            );
        }
    }
    assert_eq!(
        k,
        hex32("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
    );
}

#[test]
fn rfc7748_6_1_diffie_hellman() {
    let alice_private = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let alice_public = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let bob_private = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let bob_public = hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

    let mut base = [0u8; 32];
    base[0] = 9;
    assert_eq!(x25519(alice_private, base), alice_public);
    assert_eq!(x25519(bob_private, base), bob_public);
    assert_eq!(
        x25519_public(&StaticSecret::from(alice_private)).to_bytes(),
        alice_public
    );
    assert_eq!(
        x25519_public(&StaticSecret::from(bob_private)).to_bytes(),
        bob_public
    );
    assert_eq!(x25519(alice_private, bob_public), shared);
    assert_eq!(x25519(bob_private, alice_public), shared);
}

#[test]
fn diffie_hellman_rejects_all_zero_output() {
    // A small-order input gives the all-zero output, which the wrapper refuses.
    let secret = StaticSecret::from(hex32(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    assert!(matches!(
        diffie_hellman(&secret, &PublicKey::from([0u8; 32])),
        Err(Error::NonContributoryKey)
    ));
}

// ---------------------------------------------------------------------------------------
// RFC 8032
// ---------------------------------------------------------------------------------------

struct Ed25519Vector {
    name: &'static str,
    secret_key: &'static str,
    public_key: &'static str,
    message: &'static str,
    signature: &'static str,
}

const RFC8032_7_1: [Ed25519Vector; 3] = [
    Ed25519Vector {
        name: "TEST 1",
        secret_key: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public_key: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message: "",
        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    Ed25519Vector {
        name: "TEST 2",
        secret_key: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public_key: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message: "72",
        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    Ed25519Vector {
        name: "TEST 3",
        secret_key: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public_key: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message: "af82",
        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
];

#[test]
fn rfc8032_7_1_public_keys() {
    for v in &RFC8032_7_1 {
        let pair = IdentityKeyPair::from_seed(&hex32(v.secret_key));
        assert_eq!(
            pair.public_key().to_bytes(),
            hex32(v.public_key),
            "{}",
            v.name
        );
        // The public key is accepted by the strict identity-key parser.
        let parsed = IdentityKey::from_bytes(&hex32(v.public_key)).unwrap();
        assert_eq!(&parsed, pair.public_key(), "{}", v.name);
        // Its X25519 form (SPEC.md §2.1) is the public key of the identity's DH secret.
        assert_eq!(
            x25519_public(pair.dh_secret()).as_bytes(),
            parsed.x25519().as_bytes(),
            "{}",
            v.name
        );
    }
}

#[test]
fn rfc8032_7_1_signatures() {
    for v in &RFC8032_7_1 {
        let pair = IdentityKeyPair::from_seed(&hex32(v.secret_key));
        assert_eq!(pair.sign(&hex(v.message)), hex64(v.signature), "{}", v.name);
    }
}

#[test]
fn rfc8032_7_1_strict_verification() {
    // The check PreKeyBundle::verify performs: verify_strict under the parsed identity key.
    for v in &RFC8032_7_1 {
        let key = IdentityKey::from_bytes(&hex32(v.public_key)).unwrap();
        let message = hex(v.message);
        let signature = hex64(v.signature);
        let verify = |m: &[u8], s: &[u8; 64]| {
            key.verifying_key()
                .verify_strict(m, &Signature::from_bytes(s))
                .is_ok()
        };
        assert!(verify(&message, &signature), "{}", v.name);
        // Any flipped bit of R or S, or of the message, is rejected.
        for i in [0, 31, 32, 63] {
            let mut bad = signature;
            bad[i] ^= 0x01;
            assert!(!verify(&message, &bad), "{}: signature byte {i}", v.name);
        }
        let mut longer = message.clone();
        longer.push(0);
        assert!(!verify(&longer, &signature), "{}: message", v.name);
    }
}

#[test]
fn rfc8032_keys_sign_prekey_bundles() {
    // Each RFC key, as an identity, signs a signed prekey; the bundle verifies, and a
    // bundle whose signature is altered does not.
    for (i, v) in RFC8032_7_1.iter().enumerate() {
        let identity = IdentityKeyPair::from_seed(&hex32(v.secret_key));
        let spk = SignedPreKey::from_secret(
            &identity,
            7.into(),
            StaticSecret::from(hex32(
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            )),
        );
        let mut encoded = [0u8; 33];
        encoded[0] = 0x05;
        encoded[1..].copy_from_slice(spk.public_key().as_bytes());
        assert_eq!(spk.signature(), identity.sign(&encoded), "{}", v.name);
        let bundle = PreKeyBundle::new(&identity, &spk, None);
        assert_eq!(bundle.verify(), Ok(()), "{}", v.name);
        let mut bytes = bundle.to_bytes();
        bytes[70 + (i * 29) % 64] ^= 0x40;
        let forged = PreKeyBundle::from_bytes(&bytes).unwrap();
        assert_eq!(forged.verify(), Err(Error::InvalidSignature), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------------------
// RFC 5869
// ---------------------------------------------------------------------------------------

struct HkdfVector {
    name: &'static str,
    ikm: &'static str,
    salt: &'static str,
    info: &'static str,
    prk: &'static str,
    okm: &'static str,
}

const RFC5869_A_1: HkdfVector = HkdfVector {
    name: "A.1 (Test Case 1)",
    ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    salt: "000102030405060708090a0b0c",
    info: "f0f1f2f3f4f5f6f7f8f9",
    prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
    okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
};

const RFC5869_A_2: HkdfVector = HkdfVector {
    name: "A.2 (Test Case 2)",
    ikm: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
    salt: "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
    info: "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
    prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
    okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
};

const RFC5869_A_3: HkdfVector = HkdfVector {
    name: "A.3 (Test Case 3)",
    ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    salt: "",
    info: "",
    prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
    okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
};

/// The PRK is not visible through the wrapper; computing it as RFC 5869 defines it,
/// `PRK = HMAC(salt, IKM)` (an empty salt being the same HMAC key as 32 zero bytes), guards
/// the transcription of the vector itself.
fn check_prk(v: &HkdfVector) {
    use crate::backend::{Active, Crypto};
    let prk = Active::hmac_sha256_once(&hex(v.salt), &hex(v.ikm));
    assert_eq!(&prk[..], &hex(v.prk)[..], "{} PRK", v.name);
}

#[test]
fn rfc5869_a_1() {
    let v = &RFC5869_A_1;
    check_prk(v);
    let okm = hkdf_sha256::<42>(&hex(v.salt), &hex(v.ikm), &hex(v.info));
    assert_eq!(&okm[..], &hex(v.okm)[..], "{}", v.name);
}

#[test]
fn rfc5869_a_2() {
    let v = &RFC5869_A_2;
    check_prk(v);
    let okm = hkdf_sha256::<82>(&hex(v.salt), &hex(v.ikm), &hex(v.info));
    assert_eq!(&okm[..], &hex(v.okm)[..], "{}", v.name);
}

#[test]
fn rfc5869_a_3() {
    // Zero-length salt and info: the wrapper's empty salt acts as HashLen zero bytes.
    let v = &RFC5869_A_3;
    check_prk(v);
    let okm = hkdf_sha256::<42>(&hex(v.salt), &hex(v.ikm), &hex(v.info));
    assert_eq!(&okm[..], &hex(v.okm)[..], "{}", v.name);
    let zero_salt = hkdf_sha256::<42>(&[0u8; 32], &hex(v.ikm), &hex(v.info));
    assert_eq!(
        &zero_salt[..],
        &hex(v.okm)[..],
        "{} with 32 zero bytes of salt",
        v.name
    );
}
