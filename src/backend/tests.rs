//! Known answers of the interface's primitives not covered elsewhere (X25519, HKDF and the
//! AEAD have their RFC vectors in `rfc_vectors` and `aead`), and the check that keeps every
//! routed primitive behind this module.

extern crate std;

use std::path::Path;
use std::string::String;
use std::vec::Vec;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// RFC 4231 test cases 2 (a key shorter than the hash) and 6 (a key longer than the block).
#[test]
fn hmac_sha256_rfc_4231() {
    let short = Active::hmac_sha256_once(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        short[..],
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")[..]
    );
    let long = Active::hmac_sha256_once(
        &[0xaa; 131],
        b"Test Using Larger Than Block-Size Key - Hash Key First",
    );
    assert_eq!(
        long[..],
        hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")[..]
    );
    // Incremental updates and a cloned keyed state give the same tags.
    let keyed = hmac_sha256(b"Jefe");
    let mut split = keyed.clone();
    split.update(b"what do ya want ");
    split.update(b"for nothing?");
    let mut out = [0u8; 32];
    split.finalize_into(&mut out);
    assert_eq!(out, *short);
}

/// FIPS 180-4 example "abc", given in one part and in three.
#[test]
fn sha256_known_answer() {
    let expected = hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(sha256(&[b"abc"])[..], expected[..]);
    assert_eq!(sha256(&[b"a", b"", b"bc"])[..], expected[..]);
}

/// The public key is the DH with the base point, and the DH of the all-zero point is
/// refused.
#[test]
fn x25519_public_and_contributory_check() {
    let secret = [0x42u8; 32];
    let mut base = [0u8; 32];
    base[0] = 9;
    assert_eq!(*x25519(&secret, &base).unwrap(), x25519_public(&secret));
    assert_eq!(
        x25519(&secret, &[0u8; 32]).map(|_| ()),
        Err(Error::NonContributoryKey)
    );
}

/// What code outside `src/backend/` must not contain: the crates of the routed primitives
/// (AWS-LC's included, whatever it is used for) and the X25519 operations of
/// `x25519-dalek` (its key types may still hold bytes).
const FORBIDDEN: &[&str] = &[
    "aws_lc_rs",
    "aws_lc_sys",
    "hmac::",
    "hkdf::",
    "aes_gcm_siv",
    "Aes256GcmSiv",
    "sha2::Sha256",
    "Sha256::",
    "<Sha256>",
    "{Sha256",
    " Sha256}",
    "x25519_dalek::x25519",
    ".diffie_hellman(",
    "EphemeralSecret",
    "ReusableSecret",
    "SharedSecret",
    "mul_clamped",
    "mul_base",
];

/// `x25519-dalek`'s `PublicKey::from(&secret)` is X25519 with the base point. Its key
/// types may still carry bytes outside this module (`PublicKey::from(bytes)`), so a call
/// is refused when its argument is a reference or names a secret without a path (a path,
/// as in `PublicKey::from(backend::x25519_public(..))`, is a function of this crate).
fn derives_a_public_key(code: &str) -> bool {
    code.match_indices("PublicKey::from(").any(|(at, call)| {
        let rest = &code[at + call.len()..];
        let mut depth = 1usize;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let arg = rest[..end].trim();
        arg.starts_with('&') || (arg.to_lowercase().contains("secret") && !arg.contains("::"))
    })
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_public_key_heuristic() {
    assert!(derives_a_public_key("let p = PublicKey::from(&secret);"));
    assert!(derives_a_public_key("PublicKey::from(id.dh_secret())"));
    assert!(derives_a_public_key(
        "x: PublicKey::from(keys.signed_prekey.secret().clone()),"
    ));
    assert!(!derives_a_public_key("Ok(PublicKey::from(*bytes))"));
    assert!(!derives_a_public_key(
        "PublicKey::from(backend::x25519_public(secret.as_bytes()))"
    ));
    assert!(!derives_a_public_key(
        "PublicKey::from(verifying.to_montgomery().to_bytes())"
    ));
}

/// Every X25519, HMAC, HKDF, SHA-256 and AEAD call of the protocol code goes through this
/// module: no other file under `src/` names those primitives' crates or calls X25519.
/// Comment lines are skipped, so module docs may name the crates.
#[test]
fn crypto_only_through_the_backend() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let backend = src.join("backend");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "the scan must see the sources");
    let mut found: Vec<String> = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&backend)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for pattern in FORBIDDEN.iter().filter(|p| code.contains(*p)) {
                found.push(std::format!("{}:{}: {pattern}", file.display(), n + 1));
            }
            if derives_a_public_key(code) {
                found.push(std::format!(
                    "{}:{}: PublicKey::from(secret)",
                    file.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(found.is_empty(), "crypto outside src/backend/:\n{found:#?}");
}

/// With the `aws-lc` feature both implementations are compiled in: AWS-LC's primitives are
/// checked against the default implementation's directly, on random and edge inputs. (The
/// vectors and golden files, which the test suite checks under both backends, show the
/// outputs byte-identical in use; these tests cover inputs no protocol run makes.)
#[cfg(feature = "aws-lc")]
mod aws_lc_against_rustcrypto {
    use rand_chacha::rand_core::{Rng as _, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use std::vec;

    use super::super::awslc::{x25519_aws_lc, x25519_public_aws_lc, AwsLc};
    use super::super::rustcrypto::RustCrypto;
    use super::*;

    /// p = 2^255 - 19, little-endian.
    const P: [u8; 32] = {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        p
    };

    /// `x + k` modulo 2^256, little-endian.
    fn add(x: &[u8; 32], k: u8) -> [u8; 32] {
        let mut out = *x;
        let mut carry = u16::from(k);
        for byte in &mut out {
            let sum = u16::from(*byte) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        out
    }

    /// `x` with bit 255 set.
    fn high(x: &[u8; 32]) -> [u8; 32] {
        let mut out = *x;
        out[31] |= 0x80;
        out
    }

    fn bytes32(value: &str) -> [u8; 32] {
        hex(value).try_into().unwrap()
    }

    /// The canonical u-coordinates of the points of small order (1, 2, 4, 8) on the curve
    /// and its twist (RFC 7748 §6.1, and the list on Bernstein's Curve25519 page): 0, 1,
    /// the two points of order 8, and p - 1. X25519 of any of them is all zero.
    fn low_order() -> [[u8; 32]; 5] {
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut minus_one = P;
        minus_one[0] -= 1;
        [
            [0u8; 32],
            one,
            bytes32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            bytes32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            minus_one,
        ]
    }

    /// Every u-coordinate whose X25519 must be all zero: the canonical ones, their
    /// non-canonical forms below 2^255 (0 + p and 1 + p; the others + p exceed 2^255), and
    /// all of these with bit 255 set (which X25519 ignores).
    fn all_zero_inputs() -> Vec<[u8; 32]> {
        let mut points: Vec<[u8; 32]> = low_order().to_vec();
        points.extend([P, add(&P, 1)]);
        let with_high_bit: Vec<[u8; 32]> = points.iter().map(high).collect();
        points.extend(with_high_bit);
        points
    }

    /// Inputs that are not reduced or not canonical but give a non-zero output: each
    /// value from p + 2 up to 2^255 - 1, the low-order points + p with bit 255 set (which
    /// the mask turns into other points: what libsodium's old blocklist held), 2^255 - 1
    /// and 2^256 - 1.
    fn odd_inputs() -> Vec<[u8; 32]> {
        let mut points: Vec<[u8; 32]> = (2..19).map(|k| add(&P, k)).collect();
        for point in &low_order()[2..] {
            let mut sum = *point;
            let mut carry = 0u16;
            for (byte, p) in sum.iter_mut().zip(P) {
                let total = u16::from(*byte) + u16::from(p) + carry;
                *byte = total as u8;
                carry = total >> 8;
            }
            points.push(sum);
        }
        points.push([0xff; 32]);
        points
    }

    /// AWS-LC itself (not the fallback) computes what x25519-dalek computes, for an input
    /// whose output is not all zero.
    fn same_x25519(secret: &[u8; 32], public: &[u8; 32]) {
        let theirs = RustCrypto::x25519(secret, public).unwrap();
        let ours = x25519_aws_lc(secret, public);
        if *theirs == [0u8; 32] {
            assert!(ours.is_none(), "AWS-LC returned an all-zero X25519");
        } else {
            assert_eq!(
                ours.as_deref(),
                Some(&*theirs),
                "X25519({secret:02x?}, {public:02x?})"
            );
        }
        assert_eq!(*AwsLc::x25519(secret, public).unwrap(), *theirs);
    }

    fn same_public(secret: &[u8; 32]) {
        let theirs = RustCrypto::x25519_public(secret);
        assert_eq!(x25519_public_aws_lc(secret), Some(theirs));
        assert_eq!(AwsLc::x25519_public(secret), theirs);
    }

    #[test]
    fn x25519_random_inputs() {
        let mut rng = ChaCha20Rng::seed_from_u64(19_02);
        for i in 0..300 {
            let mut secret = [0u8; 32];
            let mut public = [0u8; 32];
            rng.fill_bytes(&mut secret);
            rng.fill_bytes(&mut public);
            if i % 2 == 0 {
                // Half of them with bit 255 clear, half with it set.
                public[31] &= 0x7f;
            } else {
                public[31] |= 0x80;
            }
            same_x25519(&secret, &public);
            same_public(&secret);
            // A public key is the DH with the base point, and both sides agree.
            let peer = AwsLc::x25519_public(&public);
            assert_eq!(
                *AwsLc::x25519(&secret, &peer).unwrap(),
                *RustCrypto::x25519(&public, &AwsLc::x25519_public(&secret)).unwrap()
            );
        }
    }

    #[test]
    fn x25519_edge_scalars_and_coordinates() {
        let mut rng = ChaCha20Rng::seed_from_u64(19_03);
        let mut base = [0u8; 32];
        base[0] = 9;
        let mut scalars = vec![[0u8; 32], [0xff; 32], base];
        for _ in 0..4 {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            scalars.push(s);
        }
        let mut inputs = all_zero_inputs();
        inputs.extend(odd_inputs());
        inputs.extend([base, high(&base)]);
        for secret in &scalars {
            same_public(secret);
            for public in &inputs {
                same_x25519(secret, public);
            }
        }
    }

    /// A low-order point is `NonContributoryKey` through the shared check, as on the
    /// default backend (AWS-LC itself refuses it; the fallback gives the all-zero output
    /// that the check turns into the error). Nothing else is refused (`same_x25519` checks
    /// that AWS-LC computes every other output itself).
    #[test]
    fn non_contributory_parity() {
        let mut rng = ChaCha20Rng::seed_from_u64(19_04);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        for public in all_zero_inputs() {
            assert_eq!(*RustCrypto::x25519(&secret, &public).unwrap(), [0u8; 32]);
            assert!(x25519_aws_lc(&secret, &public).is_none());
            assert_eq!(*AwsLc::x25519(&secret, &public).unwrap(), [0u8; 32]);
            assert_eq!(
                x25519(&secret, &public).map(|_| ()),
                Err(Error::NonContributoryKey),
                "{public:02x?}"
            );
        }
        for public in odd_inputs() {
            assert!(x25519(&secret, &public).is_ok(), "{public:02x?}");
        }
    }

    /// `x25519_many` (one import of the scalar for several DHs) gives, for every element,
    /// what `x25519` gives, low-order points included, and the shared check refuses a batch
    /// with one all-zero output.
    #[test]
    fn x25519_many_matches_single() {
        let mut rng = ChaCha20Rng::seed_from_u64(19_05);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let mut publics = odd_inputs();
        publics.extend(all_zero_inputs());
        for _ in 0..20 {
            let mut public = [0u8; 32];
            rng.fill_bytes(&mut public);
            publics.push(public);
        }
        for pair in publics.windows(3) {
            let many = AwsLc::x25519_many(&secret, [&pair[0], &pair[1], &pair[2]]).unwrap();
            let default = RustCrypto::x25519_many(&secret, [&pair[0], &pair[1], &pair[2]]);
            for (i, public) in pair.iter().enumerate() {
                let single = RustCrypto::x25519(&secret, public).unwrap();
                assert_eq!(*many[i], *single, "{public:02x?}");
                assert_eq!(*default.as_ref().unwrap()[i], *single);
            }
            let checked = x25519_many(&secret, [&pair[0], &pair[1], &pair[2]]).map(|_| ());
            let expected = pair.iter().try_for_each(|p| x25519(&secret, p).map(|_| ()));
            assert_eq!(checked, expected);
        }
    }

    /// Seal under one implementation, open under the other, for random keys, nonces,
    /// associated data and every length from 0 to 300, then a few larger ones (both sides
    /// of the open's stack backup, and 64 KiB + 7).
    #[test]
    fn gcm_siv_random_inputs() {
        let mut rng = ChaCha20Rng::seed_from_u64(19_05);
        let lengths = (0..=300).chain([511, 512, 513, 4096, 65_536 + 7]);
        for len in lengths {
            let (key, nonce, aad, plaintext) = random_case(&mut rng, len);
            let mut ours = plaintext.clone();
            let mut theirs = plaintext.clone();
            let tag = AwsLc::aead_seal(&key, &nonce, &aad, &mut ours).unwrap();
            let expected = RustCrypto::aead_seal(&key, &nonce, &aad, &mut theirs).unwrap();
            assert_eq!((tag, &ours), (expected, &theirs), "length {len}");
            AwsLc::aead_open(&key, &nonce, &aad, &mut theirs, &tag).unwrap();
            RustCrypto::aead_open(&key, &nonce, &aad, &mut ours, &tag).unwrap();
            assert_eq!(ours, plaintext);
            assert_eq!(theirs, plaintext);
        }
    }

    fn random_case(rng: &mut ChaCha20Rng, len: usize) -> ([u8; 32], [u8; 12], Vec<u8>, Vec<u8>) {
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut nonce);
        let mut aad = vec![0u8; (rng.next_u32() % 200) as usize];
        rng.fill_bytes(&mut aad);
        let mut plaintext = vec![0u8; len];
        rng.fill_bytes(&mut plaintext);
        (key, nonce, aad, plaintext)
    }

    /// An open to attempt: key, nonce, associated data, ciphertext, tag.
    type OpenCase = ([u8; 32], [u8; 12], Vec<u8>, Vec<u8>, [u8; 16]);

    /// A failed open leaves the ciphertext in the buffer under both implementations,
    /// whatever was wrong (tag, ciphertext, associated data, nonce, key), on both sides of
    /// the stack backup.
    #[test]
    fn gcm_siv_failed_open_keeps_the_ciphertext() {
        let mut rng = ChaCha20Rng::seed_from_u64(19_06);
        for len in [0, 1, 16, 17, 72, 300, 512, 513, 5000] {
            let (key, nonce, aad, mut ciphertext) = random_case(&mut rng, len);
            let tag = AwsLc::aead_seal(&key, &nonce, &aad, &mut ciphertext).unwrap();
            let mut bad_tag = tag;
            bad_tag[15] ^= 0x80;
            let mut bad_nonce = nonce;
            bad_nonce[0] ^= 1;
            let mut bad_key = key;
            bad_key[31] ^= 1;
            let mut bad_aad = aad.clone();
            bad_aad.push(0);
            let mut cases: Vec<OpenCase> = vec![
                (key, nonce, aad.clone(), ciphertext.clone(), bad_tag),
                (bad_key, nonce, aad.clone(), ciphertext.clone(), tag),
                (key, bad_nonce, aad.clone(), ciphertext.clone(), tag),
                (key, nonce, bad_aad, ciphertext.clone(), tag),
            ];
            if len > 0 {
                let mut flipped = ciphertext.clone();
                flipped[len / 2] ^= 4;
                cases.push((key, nonce, aad.clone(), flipped, tag));
            }
            for (key, nonce, aad, input, tag) in cases {
                for open in [AwsLc::aead_open, RustCrypto::aead_open] {
                    let mut buf = input.clone();
                    assert_eq!(
                        open(&key, &nonce, &aad, &mut buf, &tag),
                        Err(Error::DecryptionFailed)
                    );
                    assert_eq!(buf, input, "length {len}");
                }
            }
        }
    }

    /// The feature selects AWS-LC for the whole crate.
    #[test]
    fn aws_lc_is_active() {
        assert_eq!(
            core::any::type_name::<Active>(),
            core::any::type_name::<AwsLc>()
        );
    }

    /// HMAC (the fused `KDF_CK` pair too), HKDF and SHA-256 are RustCrypto's under both
    /// backends.
    #[test]
    fn delegated_primitives() {
        let mut okm = [[0u8; 80]; 2];
        AwsLc::hkdf_sha256(b"salt", b"ikm", b"info", &mut okm[0]).unwrap();
        RustCrypto::hkdf_sha256(b"salt", b"ikm", b"info", &mut okm[1]).unwrap();
        assert_eq!(okm[0], okm[1]);
        assert_eq!(
            *AwsLc::hmac_sha256_once(b"k", b"m"),
            *RustCrypto::hmac_sha256_once(b"k", b"m")
        );
        assert_eq!(AwsLc::sha256(&[b"a", b"b"]), RustCrypto::sha256(&[b"ab"]));
        let mut pairs = [[[0u8; 32]; 2]; 2];
        let [ours, theirs] = &mut pairs;
        let [ours_first, ours_second] = ours;
        AwsLc::hmac_sha256_byte_pair(&[7; 32], (1, 2), ours_first, ours_second);
        let [theirs_first, theirs_second] = theirs;
        RustCrypto::hmac_sha256_byte_pair(&[7; 32], (1, 2), theirs_first, theirs_second);
        assert_eq!(pairs[0], pairs[1]);
    }
}
