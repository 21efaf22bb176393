//! Blob format throughput on one core, beside the raw AES-256-GCM implementations available
//! to Rust here, all in one run: `cargo bench -p blobs-crypto --bench formats`.
//! Results and their reading are in `blobs/client/BENCHMARKS.md`.

use std::hint::black_box;

use aes_gcm::aead::consts::U16;
use aes_gcm::aes::Aes256;
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use blobs_crypto::{BlobSecret, v1, v2};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SIZES: [usize; 3] = [64 * 1024, 1 << 20, 10 << 20];

fn secret() -> BlobSecret {
    BlobSecret::new(vec![3u8; 96]).unwrap()
}

fn raw_seals(c: &mut Criterion) {
    let key = [7u8; 32];
    let mut g = c.benchmark_group("raw-aes-256-gcm-seal");
    for size in SIZES {
        let mut buf = vec![1u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let lc = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
        g.bench_function(format!("aws-lc-rs-iv12/{size}"), |b| {
            b.iter(|| {
                let tag = lc
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key([9; 12]), Aad::empty(), &mut buf)
                    .unwrap();
                let _ = black_box(tag);
            })
        });
        let rc = AesGcm::<Aes256, U16>::new(&key.into());
        g.bench_function(format!("rustcrypto-iv16/{size}"), |b| {
            b.iter(|| {
                black_box(
                    rc.encrypt_inout_detached(&[9u8; 16].into(), &[], buf.as_mut_slice().into())
                        .unwrap(),
                )
            })
        });
        let mut out = vec![0u8; size + 16];
        g.bench_function(format!("openssl-iv16/{size}"), |b| {
            b.iter(|| {
                let mut cr = openssl::symm::Crypter::new(
                    openssl::symm::Cipher::aes_256_gcm(),
                    openssl::symm::Mode::Encrypt,
                    &key,
                    Some(&[9u8; 16]),
                )
                .unwrap();
                let n = cr.update(&buf, &mut out).unwrap();
                cr.finalize(&mut out[n..]).unwrap();
                let mut tag = [0u8; 16];
                cr.get_tag(&mut tag).unwrap();
                black_box((&out, tag));
            })
        });
    }
    g.finish();
}

fn formats(c: &mut Criterion) {
    let s = secret();
    for size in SIZES {
        let plain = vec![5u8; size];
        let blob1 = v1::encrypt(&s, "bench", &plain).unwrap();
        let blob2 = v2::encrypt(&s, "bench", &plain).unwrap();
        let mut g = c.benchmark_group(format!("blob-formats/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("v1-encrypt", |b| {
            b.iter(|| black_box(v1::encrypt(&s, "bench", &plain).unwrap()))
        });
        g.bench_function("v1-decrypt", |b| {
            b.iter(|| black_box(v1::decrypt(&s, "bench", &blob1, None).unwrap()))
        });
        g.bench_function("v2-encrypt", |b| {
            b.iter(|| black_box(v2::encrypt(&s, "bench", &plain).unwrap()))
        });
        g.bench_function("v2-decrypt", |b| {
            b.iter(|| black_box(v2::decrypt(&s, "bench", &blob2).unwrap()))
        });
        // As the client runs them: 64 KiB pieces through one reused buffer, so memory stays
        // bounded and allocation is not what is measured.
        let mut out = Vec::with_capacity(4 * v2::SEALED_CHUNK_LEN);
        g.bench_function("v1-encrypt-stream", |b| {
            b.iter(|| {
                let (mut enc, _) = v1::Encryptor::new(&s, "bench", size as u64).unwrap();
                for piece in plain.chunks(PIECE) {
                    out.clear();
                    enc.update(piece, &mut out).unwrap();
                    black_box(&out);
                }
                out.clear();
                enc.finish(&mut out).unwrap();
            })
        });
        g.bench_function("v1-decrypt-stream", |b| {
            let parts = v1::split(&blob1).unwrap();
            b.iter(|| {
                let mut dec = v1::Decryptor::new(&s, "bench", &parts.preamble, &parts.raw_preamble, None).unwrap();
                for piece in parts.body.chunks(PIECE) {
                    out.clear();
                    dec.update(piece, &mut out).unwrap();
                    black_box(&out);
                }
                dec.finish().unwrap();
            })
        });
        g.bench_function("v2-encrypt-stream", |b| {
            b.iter(|| {
                let (mut enc, _) = v2::Encryptor::new(&s, "bench", size as u64).unwrap();
                for piece in plain.chunks(PIECE) {
                    out.clear();
                    enc.update(piece, &mut out).unwrap();
                    black_box(&out);
                }
                out.clear();
                enc.finish(&mut out).unwrap();
            })
        });
        g.bench_function("v2-decrypt-stream", |b| {
            let parts = v1::split(&blob2).unwrap();
            b.iter(|| {
                let mut dec = v2::Decryptor::new(&s, "bench", &parts).unwrap();
                for piece in parts.body.chunks(v2::SEALED_CHUNK_LEN) {
                    out.clear();
                    dec.update(piece, &mut out).unwrap();
                    black_box(&out);
                }
                dec.finish().unwrap();
            })
        });
        g.finish();
    }
}

/// Plaintext handed to a streaming encryptor at once.
const PIECE: usize = 64 * 1024;

criterion_group!(benches, raw_seals, formats);
criterion_main!(benches);
