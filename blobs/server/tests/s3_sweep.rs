//! `blobs-server sweep-s3`: bytes in the bucket that no index entry points to, left by a
//! server that died between an upload and its index entry, are deleted; nothing that is in
//! use, or that a live server deletes itself, is.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use blobs_server::s3::etcd::{Etcd, Op};
use common::cluster;
use common::*;
use object_store::{ObjectStoreExt as _, PutPayload};
use reqwest::Method;

fn sweep(s: &Running, b: &Backend, extra: &[&str]) -> Output {
    let (args, env) = b.args();
    let out = Command::new(env!("CARGO_BIN_EXE_blobs-server"))
        .arg("sweep-s3")
        .args(&args)
        .arg("--tokens")
        .arg(s.dir.join("tokens"))
        .args(extra)
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// What a sweep printed; its summary line must contain `summary`.
fn printed(out: &Output, summary: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(summary), "expected {summary:?} in:\n{text}");
    text
}

fn etcd(cluster: &cluster::Cluster) -> Etcd {
    Etcd::new(cluster.env["SOLEDAD_ETCD"].split(',').map(String::from).collect())
}

/// The leases of the servers registered under `prefix`, in hex.
async fn registrations(etcd: &Etcd, prefix: &str) -> Vec<String> {
    etcd.get_prefix(format!("{prefix}/s/").as_bytes())
        .await
        .unwrap()
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).rsplit('/').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_deletes_only_bytes_nothing_points_to_and_no_server_will_delete() {
    let Some(b) = Backend::s3() else { return };
    let Backend::S3 { cluster, prefix } = &b else {
        unreachable!()
    };
    let s = b.start();
    assert_eq!(put(&s, "/blobs/alice/kept", b"in use").await, StatusCode::OK);
    assert_eq!(put(&s, "/blobs/alice/draft", b"first draft").await, StatusCode::OK);
    let r = send(
        &s,
        Method::PUT,
        "/blobs/alice/draft?overwrite=true",
        Some(b"second".to_vec()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(put(&s, "/blobs/alice/gone", b"deleted").await, StatusCode::OK);
    assert_eq!(
        send(&s, Method::DELETE, "/blobs/alice/gone", None).await.status(),
        StatusCode::OK
    );

    let e = &cluster.env;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&e["SOLEDAD_S3_ENDPOINT"])
        .with_bucket_name(&e["SOLEDAD_S3_BUCKET"])
        .with_region(&e["SOLEDAD_S3_REGION"])
        .with_access_key_id(&e["AWS_ACCESS_KEY_ID"])
        .with_secret_access_key(&e["AWS_SECRET_ACCESS_KEY"])
        .with_allow_http(true)
        .build()
        .unwrap();
    // What a server that died after its upload, before its index entry, leaves behind: the
    // bytes of new blobs (here without a registration, as written before they existed).
    let orphans = [
        format!("{prefix}/data/alice/default/never-indexed/v1"),
        format!("{prefix}/data/bob/MX/no-user-indexed/v9"),
    ];
    // Of a blob written just now: as the replaced version of a blob would be, so kept.
    let second_version = format!("{prefix}/data/alice/default/kept/a-second-version");
    // Of another server, which lives: its bytes may be an upload in flight, however old
    // they look.
    let etcd = etcd(cluster);
    let lease = etcd.grant(60).await.unwrap();
    let registration = format!("{prefix}/s/{lease:x}");
    let register = Op::Put {
        key: registration.as_bytes(),
        value: b"",
        lease: Some(lease),
    };
    etcd.txn(&[], &[register]).await.unwrap();
    let uploading = format!("{prefix}/data/alice/default/uploading/{lease:x}-v2");
    for key in orphans.iter().chain([&second_version, &uploading]) {
        store
            .put(&key.as_str().into(), PutPayload::from_static(b"orphan!"))
            .await
            .unwrap();
    }
    let in_bucket = || async {
        let mut keys = blobs_server::s3::backend::list_objects(&store, &format!("{prefix}/data"))
            .await
            .unwrap();
        keys.sort();
        keys
    };
    let before = in_bucket().await;
    // kept, both drafts, gone (until the server deletes it after its grace period), the
    // orphans, the second version and the other server's upload.
    assert_eq!(before.len(), 8, "{before:?}");

    // A young orphan may be an upload about to be indexed: the default minimum age keeps it.
    printed(
        &sweep(&s, &b, &[]),
        "8 objects, 2 referenced, 6 kept (of a live server, younger than 1h or of a blob changed lately), 0 orphans",
    );

    let text = printed(
        &sweep(&s, &b, &["--min-age", "0s", "--dry-run"]),
        "2 orphans of 14 bytes, 0 deleted",
    );
    for key in &orphans {
        assert!(text.contains(&format!("would delete {key}\n")), "{text}");
    }
    assert_eq!(in_bucket().await, before, "a dry run deletes nothing");

    // The replaced draft and the deleted blob were changed just now: a download that read
    // their old entries may still be reading them, and the server deletes them itself. The
    // second version of `kept` cannot be told from such bytes yet.
    printed(
        &sweep(&s, &b, &["--min-age", "0s"]),
        "8 objects, 2 referenced, 4 kept (of a live server, younger than 0s or of a blob changed lately), 2 orphans of 14 bytes, 2 deleted",
    );
    let after = in_bucket().await;
    assert_eq!(after.len(), 6, "{after:?}");
    assert!(orphans.iter().all(|k| !after.contains(k)), "{after:?}");
    assert!(
        after.contains(&second_version) && after.contains(&uploading),
        "{after:?}"
    );
    assert_eq!(
        get(&s, "/blobs/alice/kept").await.bytes().await.unwrap().as_ref(),
        b"in use"
    );
    assert_eq!(
        get(&s, "/blobs/alice/draft").await.bytes().await.unwrap().as_ref(),
        b"second"
    );

    // Once the other server's registration has ended (it died), its bytes go.
    etcd.revoke(lease).await.unwrap();
    let text = printed(&sweep(&s, &b, &["--min-age", "0s"]), "1 orphans of 7 bytes, 1 deleted");
    assert!(text.contains(&format!("deleted {uploading}\n")), "{text}");
}

/// An upload whose server's registration ended before its index entry was written (the
/// server cut off from etcd for longer than its lease, while a sweep may have taken its
/// bytes) fails and is not recorded; the server registers again for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_registration_ended_is_not_recorded() {
    let Some(b) = Backend::s3() else { return };
    let Backend::S3 { cluster, prefix } = &b else {
        unreachable!()
    };
    let s = b.start();
    let etcd = etcd(cluster);
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    tx.unbounded_send(Ok(b"the first half, ".to_vec())).unwrap();
    let upload = tokio::spawn(
        client()
            .put(s.url("/blobs/alice/slow"))
            .header("Authorization", alice())
            .body(reqwest::Body::wrap_stream(rx))
            .send(),
    );
    // The server registers before the upload's first byte reaches the bucket.
    let mut first = Vec::new();
    for _ in 0..100 {
        first = registrations(&etcd, prefix).await;
        if !first.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first.len(), 1, "{first:?}");
    etcd.revoke(i64::from_str_radix(&first[0], 16).unwrap()).await.unwrap();
    tx.unbounded_send(Ok(b"the second half".to_vec())).unwrap();
    drop(tx);
    let status = upload.await.unwrap().unwrap().status();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&s, "/blobs/alice/slow").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get_json(&s, "/blobs/alice/").await, serde_json::json!([]));

    assert_eq!(put(&s, "/blobs/alice/next", b"x").await, StatusCode::OK);
    let again = registrations(&etcd, prefix).await;
    assert!(again.len() == 1 && again != first, "{first:?} then {again:?}");
}

#[test]
fn a_sweep_of_the_filesystem_backend_says_it_has_no_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(dir.path(), &["sweep-s3"]);
    assert!(err.contains("sweep-s3 needs the S3 backend"), "{err}");
}

/// A server that stops cleanly (SIGTERM) ends its registration as it exits, instead of
/// leaving it to expire with its lease (up to 60 s during which a sweep must keep the bytes of
/// a server that is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_cleanly_ends_its_registration() {
    let Some(b) = Backend::s3() else { return };
    let Backend::S3 { cluster, prefix } = &b else {
        unreachable!()
    };
    let mut s = b.start();
    let etcd = etcd(cluster);
    // The first upload registers the server.
    assert_eq!(put(&s, "/blobs/alice/one", b"x").await, StatusCode::OK);
    assert_eq!(registrations(&etcd, prefix).await.len(), 1);
    let pid = i32::try_from(s.child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || s.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        registrations(&etcd, prefix).await,
        Vec::<String>::new(),
        "revoked at exit"
    );
}
