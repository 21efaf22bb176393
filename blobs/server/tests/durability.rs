//! Crash safety: the server is killed with SIGKILL in the middle of 100 concurrent uploads
//! (and deletes), restarted on the same data directory, and must have every acknowledged
//! change intact and nothing partial visible.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use reqwest::Method;

fn body_of(i: usize) -> Vec<u8> {
    // 64 KiB to about 1.5 MiB, different bytes for every blob.
    let len = 64 * 1024 + (i * 15_731) % (1400 * 1024);
    (0..len).map(|j| ((i * 31 + j * 7) % 253) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_100_uploads_loses_nothing_acknowledged() {
    sigkill_during_100_uploads(&["--durability", "fsync"]).await;
}

/// The same with the default, `auto`: each upload shares the syncs or fsyncs its own files by
/// how long the last sync took.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_100_uploads_by_default_loses_nothing_acknowledged() {
    sigkill_during_100_uploads(&[]).await;
}

/// The same with group commit: filesystem syncs shared by the uploads in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_100_grouped_uploads_loses_nothing_acknowledged() {
    sigkill_during_100_uploads(&["--durability", "group"]).await;
}

async fn sigkill_during_100_uploads(args: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start_in(tmp.path(), args);
    for i in 0..20 {
        assert_eq!(
            put(&s, &format!("/blobs/alice/old{i:02}"), b"to be deleted").await,
            StatusCode::OK
        );
    }

    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let deleted: Arc<Mutex<Vec<usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = s.url(&format!("/blobs/alice/new{i:03}"));
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let body = body_of(i);
            // Sent in slices with pauses, so that many uploads are mid-body at the kill.
            let chunks: Vec<Vec<u8>> = body.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
            let stream = futures::stream::unfold(chunks.into_iter(), |mut it| async move {
                let c = it.next()?;
                tokio::time::sleep(Duration::from_millis(2)).await;
                Some((Ok::<_, std::io::Error>(c), it))
            });
            let r = client()
                .put(url)
                .header("Authorization", alice())
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await;
            if let Ok(r) = r
                && r.status() == StatusCode::OK
            {
                acked.lock().unwrap().push(i);
            }
        }));
    }
    {
        let deleted = deleted.clone();
        let base = s.url("/blobs/alice/");
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let r = client()
                    .delete(format!("{base}old{i:02}"))
                    .header("Authorization", alice())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => deleted.lock().unwrap().push(i),
                    _ => break,
                }
            }
        }));
    }
    let t0 = std::time::Instant::now();
    while acked.lock().unwrap().len() < 30 {
        assert!(t0.elapsed() < Duration::from_secs(30), "uploads too slow");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let deleted = deleted.lock().unwrap().clone();
    assert!(
        acked.len() >= 30 && acked.len() < 100,
        "the kill came mid-way: {} acked",
        acked.len()
    );
    drop(s);

    let s = start_in(tmp.path(), args);
    // Every acknowledged upload is intact, byte for byte.
    for &i in &acked {
        let r = get(&s, &format!("/blobs/alice/new{i:03}")).await;
        assert_eq!(r.status(), StatusCode::OK, "acknowledged new{i:03} is gone");
        assert!(
            r.bytes().await.unwrap().as_ref() == body_of(i).as_slice(),
            "new{i:03} damaged"
        );
    }
    // Whatever else is listed is complete too; nothing partial is visible.
    let listed: Vec<String> = serde_json::from_value(get_json(&s, "/blobs/alice/").await).unwrap();
    let mut sizes: HashMap<String, usize> = HashMap::new();
    for id in &listed {
        let body = get(&s, &format!("/blobs/alice/{id}")).await.bytes().await.unwrap();
        if let Some(i) = id.strip_prefix("new") {
            let i: usize = i.parse().unwrap();
            assert!(body.as_ref() == body_of(i).as_slice(), "{id} is listed but partial");
        } else {
            assert_eq!(body.as_ref(), b"to be deleted");
        }
        sizes.insert(id.clone(), body.len());
    }
    // Acknowledged deletes stayed deleted; every old blob is either there or tombstoned.
    let tombstones: Vec<String> = serde_json::from_value(get_json(&s, "/blobs/alice/?deleted=true").await).unwrap();
    for i in 0..20 {
        let id = format!("old{i:02}");
        let live = listed.contains(&id);
        let dead = tombstones.contains(&id);
        assert!(live != dead, "{id}: listed {live}, tombstoned {dead}");
        if deleted.contains(&i) {
            assert!(dead, "acknowledged delete of {id} undone");
        }
    }
    // Usage is exact after the crash.
    let usage = get_json(&s, "/usage/alice").await;
    assert_eq!(usage["used_bytes"], serde_json::json!(sizes.values().sum::<usize>()));
    assert_eq!(std::fs::read_dir(s.data().join(".tmp")).unwrap().count(), 0);
    // And the server takes new writes of the ids that were in flight.
    let missing = (0..100).find(|i| !listed.contains(&format!("new{i:03}"))).unwrap();
    assert_eq!(
        put(&s, &format!("/blobs/alice/new{missing:03}"), b"retry").await,
        StatusCode::OK
    );
    let r = send(&s, Method::GET, &format!("/blobs/alice/new{missing:03}"), None).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"retry");
}

#[tokio::test]
async fn a_second_server_cannot_share_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = start_in(tmp.path(), &[]);
    let err = refused(tmp.path(), &["--listen", "127.0.0.1:0"]);
    assert!(err.contains("in use by another blobs-server"), "{err}");
}

/// Every write path with group commit (new blobs in new shard directories, conflicts,
/// replacement, re-upload over a tombstone, incoming deliveries with their flags), and all of
/// it still there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_serves_every_write_path() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--durability", "group"];
    let s = start_in(tmp.path(), &args);
    // Concurrent uploads share syncs; ids far apart land in new shard directories.
    let uploads: Vec<_> = (0..40)
        .map(|i| {
            let url = s.url(&format!("/blobs/alice/{i:02}-{}", "x".repeat(i % 7)));
            tokio::spawn(async move {
                client()
                    .put(url)
                    .header("Authorization", alice())
                    .body(body_of(i)[..1000 + i].to_vec())
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for u in uploads {
        assert_eq!(u.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(put(&s, "/blobs/alice/00-", b"again").await, StatusCode::CONFLICT);
    assert_eq!(put(&s, "/blobs/alice/draft", b"v1").await, StatusCode::OK);
    assert_eq!(
        put(&s, "/blobs/alice/draft?overwrite=true", b"v2").await,
        StatusCode::OK
    );
    assert_eq!(put(&s, "/blobs/alice/gone", b"first").await, StatusCode::OK);
    assert_eq!(
        send(&s, Method::DELETE, "/blobs/alice/gone", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(put(&s, "/blobs/alice/gone", b"second").await, StatusCode::OK);
    let delivered = client()
        .put(s.services_url("/incoming/alice/mail1"))
        .header("Authorization", mx())
        .body(b"a mail".to_vec())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(delivered, StatusCode::OK);
    drop(s);

    let s = start_in(tmp.path(), &args);
    for i in 0..40 {
        let r = get(&s, &format!("/blobs/alice/{i:02}-{}", "x".repeat(i % 7))).await;
        assert_eq!(r.bytes().await.unwrap().as_ref(), &body_of(i)[..1000 + i]);
    }
    assert_eq!(
        get(&s, "/blobs/alice/draft").await.bytes().await.unwrap().as_ref(),
        b"v2"
    );
    assert_eq!(
        get(&s, "/blobs/alice/gone").await.bytes().await.unwrap().as_ref(),
        b"second"
    );
    let tombstones = get_json(&s, "/blobs/alice/?deleted=true").await;
    assert_eq!(tombstones, serde_json::json!([]), "the re-upload removed the tombstone");
    let pending = get_json(&s, "/blobs/alice/?namespace=MX&filter_flag=PENDING").await;
    assert_eq!(pending, serde_json::json!(["mail1"]));
}

/// A client that sends a whole upload and hangs up without waiting for the answer: the
/// upload is either stored and listed, or absent, never on disk but missing from the index
/// (hyper drops a handler when its client goes away, so the commit must not depend on it).
async fn hung_up_uploads_are_all_or_nothing(args: &[&str]) {
    use std::io::Write as _;
    let s = start_with(args);
    let body = vec![7u8; 256 * 1024];
    for i in 0..30 {
        let head = format!(
            "PUT /blobs/alice/hung{i:02} HTTP/1.1\r\nHost: a\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
            alice(),
            body.len()
        );
        let mut tcp = std::net::TcpStream::connect(s.addr).unwrap();
        tcp.write_all(head.as_bytes()).unwrap();
        tcp.write_all(&body).unwrap();
        // Hung up at different moments: while the body is read, written, synced. (The first
        // waits long, which lets the server warm up; without it, every hang-up came while
        // reading and none reached the commit.)
        std::thread::sleep(Duration::from_micros(if i == 0 {
            300_000
        } else {
            300 * (i % 15) as u64
        }));
        tcp.shutdown(std::net::Shutdown::Both).unwrap();
    }
    // Let every upload that is going to finish, finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listed: Vec<String> = serde_json::from_value(get_json(&s, "/blobs/alice/").await).unwrap();
    for i in 0..30 {
        let id = format!("hung{i:02}");
        let status = get(&s, &format!("/blobs/alice/{id}")).await.status();
        assert_eq!(
            status == StatusCode::OK,
            listed.contains(&id),
            "{id}: GET {status}, listed {}",
            listed.contains(&id)
        );
    }
    // And the ids can be used: stored ones conflict, absent ones are free.
    for i in 0..30 {
        let id = format!("hung{i:02}");
        let want = if listed.contains(&id) {
            StatusCode::CONFLICT
        } else {
            StatusCode::OK
        };
        assert_eq!(put(&s, &format!("/blobs/alice/{id}"), b"again").await, want, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hung_up_uploads_are_all_or_nothing_with_fsync() {
    hung_up_uploads_are_all_or_nothing(&["--durability", "fsync"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hung_up_uploads_are_all_or_nothing_by_default() {
    hung_up_uploads_are_all_or_nothing(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hung_up_uploads_are_all_or_nothing_with_group_commit() {
    hung_up_uploads_are_all_or_nothing(&["--durability", "group"]).await;
}

/// Puts a non-empty directory where the server will remove a file after its change became
/// visible, so that the removal fails the way an I/O error would.
fn block_removal_of(path: &std::path::Path) {
    std::fs::remove_file(path).unwrap();
    std::fs::create_dir(path).unwrap();
    std::fs::write(path.join("in the way"), b"").unwrap();
}

fn path_of(s: &Running, id: &str, suffix: &str) -> std::path::PathBuf {
    let blob = s
        .data()
        .join(blobs_server::fs::layout::relative_blob_path("alice", "default", id));
    blobs_server::fs::layout::with_suffix(&blob, suffix)
}

/// A step that fails after an upload's link (here the removal of the old tombstone; in
/// production a directory sync) gets no 200, yet the blob is on disk under its name: the
/// server answers for it as it is, not as if it were absent, until and after a restart.
#[tokio::test]
async fn an_upload_that_fails_after_its_link_is_not_acknowledged_but_served() {
    for args in [&["--durability", "fsync"][..], &["--durability", "group"][..], &[][..]] {
        let dir = tempfile::tempdir().unwrap();
        let s = start_in(dir.path(), args);
        assert_eq!(put(&s, "/blobs/alice/doc", b"first").await, StatusCode::OK);
        assert_eq!(
            send(&s, Method::DELETE, "/blobs/alice/doc", None).await.status(),
            StatusCode::OK
        );
        block_removal_of(&path_of(&s, "doc", blobs_server::fs::layout::TOMBSTONE_SUFFIX));

        let r = send(&s, Method::PUT, "/blobs/alice/doc", Some(b"second".to_vec())).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{args:?}");
        let r = get(&s, "/blobs/alice/doc").await;
        assert_eq!(r.status(), StatusCode::OK, "{args:?}: the blob is on disk");
        assert_eq!(&r.bytes().await.unwrap()[..], b"second");
        assert_eq!(
            get_json(&s, "/blobs/alice/").await,
            serde_json::json!(["doc"]),
            "{args:?}"
        );
        assert_eq!(
            get_json(&s, "/blobs/alice/?only_count=1").await,
            serde_json::json!({"count": 1}),
            "{args:?}"
        );
        assert_eq!(
            put(&s, "/blobs/alice/doc", b"third").await,
            StatusCode::CONFLICT,
            "{args:?}"
        );
        // The server is not stuck: other uploads go on.
        assert_eq!(put(&s, "/blobs/alice/other", b"x").await, StatusCode::OK, "{args:?}");
        drop(s);
        let s = start_in(dir.path(), args);
        let r = get(&s, "/blobs/alice/doc").await;
        assert_eq!(r.status(), StatusCode::OK, "{args:?}: after a restart");
        assert_eq!(&r.bytes().await.unwrap()[..], b"second");
    }
}

/// The same for a deletion whose last steps fail: the blob is gone from its name, so the
/// server no longer lists it nor tries to delete it again.
#[tokio::test]
async fn a_deletion_that_fails_after_its_rename_is_not_acknowledged_but_counts() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(dir.path(), &[]);
    assert_eq!(put(&s, "/blobs/alice/doc", b"bytes").await, StatusCode::OK);
    assert_eq!(
        post_flags(&s, "/blobs/alice/doc", r#"["PROCESSED"]"#).await,
        StatusCode::OK
    );
    block_removal_of(&path_of(&s, "doc", blobs_server::fs::layout::FLAGS_SUFFIX));

    let r = send(&s, Method::DELETE, "/blobs/alice/doc", None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(get(&s, "/blobs/alice/doc").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get_json(&s, "/blobs/alice/").await, serde_json::json!([]));
    assert_eq!(
        get_json(&s, "/blobs/alice/?deleted=true").await,
        serde_json::json!(["doc"])
    );
    assert_eq!(
        send(&s, Method::DELETE, "/blobs/alice/doc", None).await.status(),
        StatusCode::NOT_FOUND
    );

    // The flags the deletion failed to remove are not the next blob's, even after a restart.
    let flags = path_of(&s, "doc", blobs_server::fs::layout::FLAGS_SUFFIX);
    std::fs::remove_dir_all(&flags).unwrap();
    std::fs::write(&flags, r#"["PROCESSED"]"#).unwrap();
    assert_eq!(put(&s, "/blobs/alice/doc", b"new bytes").await, StatusCode::OK);
    let dir = s.dir.clone();
    drop(s);
    let s = start_in(&dir, &[]);
    assert_eq!(
        get_json(&s, "/blobs/alice/doc?only_flags=1").await,
        serde_json::json!([])
    );
}
