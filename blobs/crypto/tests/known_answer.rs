//! The known-answer vector of the blobs spec (section 3.3), computed independently of this
//! crate: if any byte of the format drifts, these fail.

use blobs_crypto::v1::{self, Nonces};
use blobs_crypto::{BlobSecret, FormatError, PREAMBLE_B64_LEN, tag_header};
use sha2::{Digest, Sha256};

const BLOB_SHA256: &str = "4db8fc0371c803973baffbb808dc3ca422ad0600d8b7035f7331709aed4d9ed9";

fn secret() -> BlobSecret {
    BlobSecret::new(vec![b'A'; 96]).unwrap()
}

fn nonces() -> Nonces {
    let mut iv = [0u8; 16];
    for (i, b) in iv.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    Nonces {
        iv,
        timestamp: 1_500_000_000,
    }
}

fn known_blob() -> Vec<u8> {
    v1::encrypt_with(&secret(), "blob_id", b"save me", nonces()).unwrap()
}

#[test]
fn per_blob_key_matches() {
    assert_eq!(
        hex::encode(secret().blob_key("blob_id").0),
        "2d8e869a215ea14ecbeed68f6a4ff5d5b41798b62b5e232bbbb9f5a58284ae96"
    );
}

#[test]
fn blob_is_byte_exact() {
    let blob = known_blob();
    assert_eq!(blob.len(), 760);
    assert!(blob.starts_with(b"EzcBAgAAAAAAL2hZAAAAAAECAwQFBgcICQoLDA0O"));
    assert_eq!(blob[PREAMBLE_B64_LEN], b' ');

    let parts = v1::split(&blob).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&parts.raw_preamble)),
        "ddf240d060dbce679c69250fafd2f6a7ade1773bcce8b9134b9fab496f83d9e2"
    );
    let (ciphertext, tag) = parts.body.split_at(parts.body.len() - 16);
    assert_eq!(hex::encode(ciphertext), "b384d83d843786");
    assert_eq!(hex::encode(tag), "d9c1dda9084920c7d5435165245ca881");
    assert_eq!(tag_header(&blob).unwrap(), "2cHdqQhJIMfVQ1FlJFyogQ==");
    assert_eq!(hex::encode(Sha256::digest(&blob)), BLOB_SHA256);
}

#[test]
fn known_blob_decrypts() {
    let blob = known_blob();
    let tag: [u8; 16] = blob[blob.len() - 16..].try_into().unwrap();
    let plain = v1::decrypt(&secret(), "blob_id", &blob, Some(&tag)).unwrap();
    assert_eq!(plain, b"save me");
}

#[test]
fn every_tampered_byte_is_detected() {
    let blob = known_blob();
    for i in 0..blob.len() {
        if i == PREAMBLE_B64_LEN {
            continue; // the separator: changing it is a parse error, checked below
        }
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        assert!(
            v1::decrypt(&secret(), "blob_id", &bad, None).is_err(),
            "flipping byte {i} went unnoticed"
        );
    }
}

#[test]
fn truncation_wrong_id_and_wrong_key_are_refused() {
    let blob = known_blob();
    assert_eq!(
        v1::decrypt(&secret(), "blob_id", &blob[..blob.len() - 1], None),
        Err(FormatError::Authentication)
    );
    assert_eq!(
        v1::decrypt(&secret(), "blob_id", &blob[..740], None),
        Err(FormatError::Truncated)
    );
    assert!(matches!(
        v1::decrypt(&secret(), "other_id", &blob, None),
        Err(FormatError::IdMismatch { .. })
    ));
    let other = BlobSecret::new(vec![b'B'; 96]).unwrap();
    assert_eq!(
        v1::decrypt(&other, "blob_id", &blob, None),
        Err(FormatError::Authentication)
    );
    assert_eq!(
        v1::decrypt(&secret(), "blob_id", &blob, Some(&[0; 16])),
        Err(FormatError::TagHeaderMismatch)
    );
}

#[test]
fn round_trips_sizes_around_the_rounding_edges() {
    let s = secret();
    for len in [0usize, 1, 4095, 4096, 4097, 65_536, 1_000_000] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let blob = v1::encrypt(&s, "edge", &plain).unwrap();
        assert_eq!(blob.len(), len + v1::OVERHEAD);
        assert_eq!(v1::decrypt(&s, "edge", &blob, None).unwrap(), plain);
    }
}
