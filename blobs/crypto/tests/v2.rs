//! Format v2: streaming, padding, and every way a blob can be damaged.

use blobs_crypto::open::{self, SchemePolicy};
use blobs_crypto::v1::{self, Nonces};
use blobs_crypto::v2::{self, CHUNK_LEN, Decryptor, Encryptor, SEALED_CHUNK_LEN};
use blobs_crypto::{BlobSecret, FormatError, Method, PREAMBLE_B64_LEN, Preamble, Scheme};

fn secret() -> BlobSecret {
    BlobSecret::new(vec![b'S'; 128]).unwrap()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

const HEAD: usize = PREAMBLE_B64_LEN + 1;
const EDGES: [usize; 12] = [
    0,
    1,
    4087,
    4088,
    4089,
    CHUNK_LEN - 8,
    CHUNK_LEN - 7,
    CHUNK_LEN,
    2 * CHUNK_LEN - 8,
    2 * CHUNK_LEN + 1,
    1 << 20,
    3_000_001,
];

#[test]
fn round_trips_across_chunk_and_bucket_edges() {
    let s = secret();
    for len in EDGES {
        let plain = data(len);
        let blob = v2::encrypt(&s, "edge", &plain).unwrap();
        assert_eq!(blob.len() as u64, v2::blob_len(len as u64), "length formula at {len}");
        assert_eq!(v2::decrypt(&s, "edge", &blob).unwrap(), plain, "at {len}");
        assert_eq!(
            open::decrypt(&s, "edge", &blob, None, SchemePolicy::SymkeyOnly).unwrap(),
            plain
        );
    }
}

#[test]
fn streaming_in_any_pieces_gives_the_same_bytes() {
    let s = secret();
    let plain = data(300_000);
    let nonces = Nonces {
        iv: [4; 16],
        timestamp: 1,
    };
    let whole = v2::encrypt_with(&s, "st", &plain, nonces).unwrap();
    for piece in [1usize, 7, 4096, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 3, 1 << 20] {
        let (mut enc, mut out) = Encryptor::with_nonces(&s, "st", plain.len() as u64, nonces).unwrap();
        for p in plain.chunks(piece) {
            enc.update(p, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        assert_eq!(out, whole, "encrypting in pieces of {piece}");

        let parts = v1::split(&whole).unwrap();
        let mut dec = Decryptor::new(&s, "st", &parts).unwrap();
        let mut back = Vec::new();
        for p in parts.body.chunks(piece) {
            dec.update(p, &mut back).unwrap();
        }
        dec.finish().unwrap();
        assert_eq!(back, plain, "decrypting in pieces of {piece}");
    }
}

#[test]
fn the_server_learns_only_the_bucket() {
    let s = secret();
    let a = v2::encrypt(&s, "a", &data(10_000)).unwrap();
    let b = v2::encrypt(&s, "b", &data(10_200)).unwrap();
    assert_eq!(a.len(), b.len(), "sizes in one bucket are indistinguishable");
    let tiny = v2::encrypt(&s, "t", b"hi").unwrap();
    let empty = v2::encrypt(&s, "e", b"").unwrap();
    assert_eq!(tiny.len(), empty.len());
    // The preamble's size field holds the bucket, not the length.
    assert_eq!(v1::split(&a).unwrap().preamble.content_size, Some(10_240));
}

#[test]
fn every_damaged_chunk_is_detected() {
    let s = secret();
    let plain = data(3 * CHUNK_LEN + 100);
    let blob = v2::encrypt(&s, "dmg", &plain).unwrap();
    for chunk in 0..4 {
        for offset in [0usize, 1000, SEALED_CHUNK_LEN - 1] {
            let at = HEAD + chunk * SEALED_CHUNK_LEN + offset;
            if at >= blob.len() {
                continue;
            }
            let mut bad = blob.clone();
            bad[at] ^= 0x80;
            assert_eq!(
                v2::decrypt(&s, "dmg", &bad),
                Err(FormatError::Authentication),
                "chunk {chunk} offset {offset}"
            );
        }
    }
    // A flipped preamble byte (the timestamp, say) breaks every chunk's associated data.
    let mut p = v1::split(&blob).unwrap().preamble;
    p.timestamp += 1;
    let mut bad = p.to_base64().unwrap().into_bytes();
    bad.extend_from_slice(&blob[PREAMBLE_B64_LEN..]);
    assert_eq!(v2::decrypt(&s, "dmg", &bad), Err(FormatError::Authentication));
}

#[test]
fn truncation_and_reordering_are_detected() {
    let s = secret();
    let blob = v2::encrypt(&s, "tr", &data(3 * CHUNK_LEN)).unwrap();
    // Cut at a chunk boundary: the last chunk received was not sealed as last.
    let cut = &blob[..HEAD + 2 * SEALED_CHUNK_LEN];
    assert_eq!(v2::decrypt(&s, "tr", cut), Err(FormatError::Truncated));
    // Cut inside a chunk.
    assert_eq!(
        v2::decrypt(&s, "tr", &blob[..blob.len() - 5]),
        Err(FormatError::Truncated)
    );
    // Chunks 1 and 2 swapped.
    let mut swapped = blob[..HEAD + SEALED_CHUNK_LEN].to_vec();
    swapped.extend_from_slice(&blob[HEAD + 2 * SEALED_CHUNK_LEN..HEAD + 3 * SEALED_CHUNK_LEN]);
    swapped.extend_from_slice(&blob[HEAD + SEALED_CHUNK_LEN..HEAD + 2 * SEALED_CHUNK_LEN]);
    swapped.extend_from_slice(&blob[HEAD + 3 * SEALED_CHUNK_LEN..]);
    assert_eq!(swapped.len(), blob.len());
    assert_eq!(v2::decrypt(&s, "tr", &swapped), Err(FormatError::Authentication));
    // Trailing garbage.
    let mut long = blob.clone();
    long.push(0);
    assert!(matches!(
        v2::decrypt(&s, "tr", &long),
        Err(FormatError::SizeMismatch { .. })
    ));
}

#[test]
fn a_download_resumes_from_its_last_verified_chunk() {
    let s = secret();
    let plain = data(5 * CHUNK_LEN + 123);
    let blob = v2::encrypt(&s, "rs", &plain).unwrap();
    let parts = v1::split(&blob).unwrap();
    // The connection drops in the middle of chunk 3.
    let mut dec = Decryptor::new(&s, "rs", &parts).unwrap();
    let mut got = Vec::new();
    dec.update(&parts.body[..3 * SEALED_CHUNK_LEN + 500], &mut got).unwrap();
    let progress = dec.progress();
    assert_eq!(progress.next_chunk, 3);
    assert_eq!(got.len() as u64, progress.plaintext_done);
    assert_eq!(&got[..], &plain[..got.len()], "only verified plaintext was emitted");
    // After a restart: only the preamble and the progress were kept.
    let mut dec = Decryptor::resume(&s, "rs", &parts.preamble, &parts.raw_preamble, progress).unwrap();
    dec.update(&parts.body[progress.body_offset() as usize..], &mut got)
        .unwrap();
    dec.finish().unwrap();
    assert_eq!(got, plain);
}

#[test]
fn ids_keys_and_schemes_are_checked() {
    let s = secret();
    let blob = v2::encrypt(&s, "mine", &data(1000)).unwrap();
    assert!(matches!(
        v2::decrypt(&s, "theirs", &blob),
        Err(FormatError::IdMismatch { .. })
    ));
    let other = BlobSecret::new(vec![b'T'; 128]).unwrap();
    assert_eq!(v2::decrypt(&other, "mine", &blob), Err(FormatError::Authentication));

    // A server that swaps in an "external" blob does not get it accepted as user data.
    let forged = Preamble {
        scheme: Scheme::External,
        method: Method::Pgp,
        timestamp: 0,
        iv: [0; 16],
        doc_id: "mine".into(),
        rev: "ImmutableRevision".into(),
        content_size: Some(7),
    };
    let mut fake = forged.to_base64().unwrap().into_bytes();
    fake.extend_from_slice(b" not encrypted at all");
    assert!(matches!(
        open::decrypt(&s, "mine", &fake, None, SchemePolicy::SymkeyOnly),
        Err(FormatError::SchemeNotAllowed { .. })
    ));
    // In the incoming box, external blobs are what the MX delivers.
    assert_eq!(
        open::decrypt(&s, "mine", &fake, None, SchemePolicy::AllowExternal).unwrap(),
        b"not encrypted at all"
    );
}

#[test]
fn v1_streams_like_it_encrypts_in_one_piece() {
    let s = secret();
    let plain = data(200_000);
    let nonces = Nonces {
        iv: [8; 16],
        timestamp: 2,
    };
    let whole = v1::encrypt_with(&s, "v1", &plain, nonces).unwrap();
    let (mut enc, mut out) = v1::Encryptor::with_nonces(&s, "v1", plain.len() as u64, nonces).unwrap();
    for p in plain.chunks(9999) {
        enc.update(p, &mut out).unwrap();
    }
    enc.finish(&mut out).unwrap();
    assert_eq!(out, whole);
    let parts = v1::split(&whole).unwrap();
    let mut dec = v1::Decryptor::new(&s, "v1", &parts.preamble, &parts.raw_preamble, None).unwrap();
    let mut back = Vec::new();
    for p in parts.body.chunks(3) {
        dec.update(p, &mut back).unwrap();
    }
    dec.finish().unwrap();
    assert_eq!(back, plain);
    // More or less plaintext than announced is refused.
    let (mut enc, mut out) = v1::Encryptor::new(&s, "v1", 10).unwrap();
    assert!(enc.update(&[0; 11], &mut out).is_err());
    let (mut enc, mut out) = v2::Encryptor::new(&s, "v2", 10).unwrap();
    enc.update(&[0; 9], &mut out).unwrap();
    assert!(enc.finish(&mut out).is_err());
}
