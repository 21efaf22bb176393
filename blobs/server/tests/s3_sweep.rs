//! `blobs-server sweep-s3`: bytes in the bucket that no index entry points to, left by a
//! server that died between an upload and its index entry, are deleted; nothing that is in
//! use, or that a live server deletes itself, is.

mod common;

use std::process::{Command, Output};

use common::*;
use object_store::{ObjectStoreExt as _, PutPayload};
use reqwest::Method;

fn sweep(s: &Running, b: &Backend, extra: &[&str]) -> Output {
    let (args, env) = b.args();
    Command::new(env!("CARGO_BIN_EXE_blobs-server"))
        .arg("sweep-s3")
        .args(&args)
        .arg("--tokens")
        .arg(s.dir.join("tokens"))
        .args(extra)
        .envs(env)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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

    // What a server that died after its upload, before its index entry, leaves behind: the
    // bytes of new blobs, and a second version of a blob that exists.
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
    let orphans = [
        format!("{prefix}/data/alice/default/never-indexed/v1"),
        format!("{prefix}/data/bob/MX/no-user-indexed/v9"),
    ];
    // Of a blob written just now: as the replaced version of a blob would be, so kept.
    let second_version = format!("{prefix}/data/alice/default/kept/a-second-version");
    for key in orphans.iter().chain([&second_version]) {
        store
            .put(&key.as_str().into(), PutPayload::from_static(b"orphan!"))
            .await
            .unwrap();
    }
    let in_bucket = || async {
        let mut keys = blobs_server::s3_backend::list_objects(&store, &format!("{prefix}/data"))
            .await
            .unwrap();
        keys.sort();
        keys
    };
    let before = in_bucket().await;
    // kept, both drafts, gone (until the server deletes it after its grace period), the
    // orphans and the second version.
    assert_eq!(before.len(), 7, "{before:?}");

    // A young orphan may be an upload about to be indexed: the default minimum age keeps it.
    let out = sweep(&s, &b, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout(&out)
            .contains("7 objects, 2 referenced, 5 kept (younger than 1h or of a blob changed lately), 0 orphans"),
        "{}",
        stdout(&out)
    );

    let out = sweep(&s, &b, &["--min-age", "0s", "--dry-run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for key in &orphans {
        assert!(
            stdout(&out).contains(&format!("would delete {key}\n")),
            "{}",
            stdout(&out)
        );
    }
    assert!(
        stdout(&out).contains("2 orphans of 14 bytes, 0 deleted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(in_bucket().await, before, "a dry run deletes nothing");

    // The replaced draft and the deleted blob were changed just now: a download that read
    // their old entries may still be reading them, and the server deletes them itself. The
    // second version of `kept` cannot be told from such bytes yet.
    let out = sweep(&s, &b, &["--min-age", "0s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout(&out).contains("7 objects, 2 referenced, 3 kept (younger than 0s or of a blob changed lately), 2 orphans of 14 bytes, 2 deleted"),
        "{}",
        stdout(&out)
    );
    let after = in_bucket().await;
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(orphans.iter().all(|k| !after.contains(k)), "{after:?}");
    assert!(after.contains(&second_version), "{after:?}");
    assert_eq!(
        get(&s, "/blobs/alice/kept").await.bytes().await.unwrap().as_ref(),
        b"in use"
    );
    assert_eq!(
        get(&s, "/blobs/alice/draft").await.bytes().await.unwrap().as_ref(),
        b"second"
    );
}

#[test]
fn a_sweep_of_the_filesystem_backend_says_it_has_no_bucket() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "alice:alice-token\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blobs-server"))
        .args(["sweep-s3", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(dir.path().join("tokens"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sweep-s3 needs the S3 backend"), "{err}");
}
