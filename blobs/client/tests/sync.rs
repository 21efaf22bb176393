//! The BlobManager against a real blobs server on loopback and real store files: syncing,
//! every sync state, the server's answers (404, 409, 412, 507), drafts, priorities,
//! throttling and events.

mod common;

use std::time::{Duration, Instant};

use blobs_client::{
    BlobFormat, ClientError, Config, Direction, Event, FailureKind, Priority, PutOptions, SyncStatus, read_all,
};
use common::proxy::{Fault, Proxy};
use common::{Events, StoreKind, fast_config, manager, manager_with, noise, open_store, payload, server_in, walk};

async fn fresh() -> (tempfile::TempDir, common::Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    (dir, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_devices_sync_through_the_server_in_both_formats_and_both_stores() {
    let (dir, server) = fresh().await;
    let laptop = manager_with(
        &server.url(),
        open_store(StoreKind::Fs, &dir.path().join("laptop")),
        Config {
            format: BlobFormat::V1,
            ..fast_config()
        },
    );
    laptop.put("default", "direct", payload(0, 70_000)).await.unwrap();
    for i in 1..=20 {
        laptop
            .stage("default", &format!("staged{i}"), payload(i, 1000 * i))
            .await
            .unwrap();
    }
    assert_eq!(
        laptop
            .states(Some("default"), Some(SyncStatus::PendingUpload))
            .await
            .unwrap()
            .len(),
        20
    );
    let sent = laptop.sync("default").await.unwrap();
    assert_eq!(sent.transferred, 20, "{:?}", sent.failed);
    assert!(
        laptop
            .states(Some("default"), Some(SyncStatus::PendingUpload))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        laptop.state("default", "direct").await.unwrap().unwrap().status,
        SyncStatus::Synced
    );

    // The phone writes v2 and reads the laptop's v1.
    let phone = manager(&server, "phone.db");
    phone.put("default", "from-phone", payload(99, 5000)).await.unwrap();
    let fetched = phone.sync("default").await.unwrap();
    assert_eq!(fetched.transferred, 21, "{:?}", fetched.failed);
    assert_eq!(phone.get("default", "direct").await.unwrap(), payload(0, 70_000));
    for i in 1..=20 {
        assert_eq!(
            phone.get("default", &format!("staged{i}")).await.unwrap(),
            payload(i, 1000 * i)
        );
    }
    // And the laptop reads the phone's v2.
    let back = laptop.sync("default").await.unwrap();
    assert_eq!(back.transferred, 1);
    assert_eq!(laptop.get("default", "from-phone").await.unwrap(), payload(99, 5000));
    // Nothing left to do on either side.
    assert_eq!(phone.sync("default").await.unwrap().transferred, 0);
    assert_eq!(laptop.sync("default").await.unwrap().transferred, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_sees_neither_plaintext_nor_exact_sizes() {
    let (dir, server) = fresh().await;
    let laptop = manager(&server, "laptop.db");
    laptop.put("default", "secret", payload(9, 50_000)).await.unwrap();
    laptop.put("default", "near", payload(8, 50_500)).await.unwrap();
    drop(laptop);
    let marker = b"PLAINTEXT-MARKER-000";
    for f in walk(&server.data()).into_iter().chain(walk(dir.path())) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker), "plaintext in {f:?}");
    }
    // v2 pads to a size bucket: two sizes in one bucket give blobs of one size.
    let a = std::fs::metadata(server.blob_path("default", "secret")).unwrap().len();
    let b = std::fs::metadata(server.blob_path("default", "near")).unwrap().len();
    assert_eq!(a, b);
    assert_eq!(a, blobs_crypto::v2::blob_len(50_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_only_blobs_are_never_uploaded() {
    let (_dir, server) = fresh().await;
    let m = manager(&server, "m.db");
    let opts = PutOptions {
        local_only: true,
        upload: true,
        ..PutOptions::default()
    };
    m.put_reader("default", "mine", std::io::Cursor::new(b"private".to_vec()), 7, opts)
        .await
        .unwrap();
    m.stage("default", "shared", b"public".to_vec()).await.unwrap();
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 1);
    assert_eq!(m.sync("default").await.unwrap().transferred, 0);
    assert_eq!(m.remote_list("default").await.unwrap(), ["shared"]);
    assert_eq!(
        m.state("default", "mine").await.unwrap().unwrap().status,
        SyncStatus::LocalOnly
    );
    assert_eq!(m.get("default", "mine").await.unwrap(), b"private");
    // Deleting it never asks the server.
    m.delete("default", "mine").await.unwrap();
    assert!(m.state("default", "mine").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_propagate_and_pending_deletes_are_retried() {
    let (dir, server) = fresh().await;
    let proxy = Proxy::start(server.addr).await;
    let a = manager_with(
        &proxy.url(),
        open_store(StoreKind::Sqlcipher, &dir.path().join("a.db")),
        fast_config(),
    );
    let b = manager(&server, "b.db");
    for id in ["x", "y", "z"] {
        a.put("default", id, payload(1, 3000)).await.unwrap();
    }
    assert_eq!(b.sync("default").await.unwrap().transferred, 3);

    // The server cannot be reached for the delete: the local copy goes, the blob stays
    // PENDING_DELETE.
    proxy.add("DELETE", "/x", Fault::Refuse, 1);
    assert!(a.delete("default", "x").await.is_err());
    let s = a.state("default", "x").await.unwrap().unwrap();
    assert_eq!(s.status, SyncStatus::PendingDelete);
    assert!(a.store().content("default", "x").unwrap().is_none());
    // A later sync deletes it on the server.
    let r = a.sync("default").await.unwrap();
    assert_eq!(r.deleted, 1, "{:?}", r.failed);
    assert!(a.state("default", "x").await.unwrap().is_none());
    assert!(!a.remote_list("default").await.unwrap().contains(&"x".to_owned()));

    // The other device sees the tombstone and removes its copy.
    let mut events = Events::of(&b);
    let r = b.sync("default").await.unwrap();
    assert_eq!(r.removed, 1);
    assert!(b.state("default", "x").await.unwrap().is_none());
    assert!(b.store().content("default", "x").unwrap().is_none());
    assert!(
        events
            .drain()
            .iter()
            .any(|e| matches!(e, Event::RemovedRemotely { id, .. } if id == "x"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_that_finds_nothing_reconciles_instead_of_retrying() {
    let (_dir, server) = fresh().await;
    let m = manager(&server, "m.db");
    let other = manager(&server, "other.db");
    other.put("default", "gone", payload(1, 100)).await.unwrap();
    // Queued for download, then deleted on the server before the download.
    assert_eq!(m.fetch_missing("default").await.unwrap().transferred, 1);
    other.put("default", "gone2", payload(2, 100)).await.unwrap();
    m.store()
        .put_state(&blobs_client::BlobState::new(
            "default",
            "gone2",
            SyncStatus::PendingDownload,
            Priority::Medium,
        ))
        .unwrap();
    other.delete("default", "gone2").await.unwrap();
    let mut events = Events::of(&m);
    let started = Instant::now();
    match m.get("default", "gone2").await {
        Err(ClientError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "a 404 is not retried");
    assert!(m.state("default", "gone2").await.unwrap().is_none());
    assert!(
        events
            .drain()
            .iter()
            .any(|e| matches!(e, Event::RemovedRemotely { .. }))
    );
    // A sync drops pending downloads the listing no longer has.
    m.store()
        .put_state(&blobs_client::BlobState::new(
            "default",
            "never",
            SyncStatus::PendingDownload,
            Priority::Medium,
        ))
        .unwrap();
    let r = m.sync("default").await.unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(m.state("default", "never").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_server_already_has_is_verified_not_resent() {
    let (dir, server) = fresh().await;
    let proxy = Proxy::start(server.addr).await;
    let m = manager_with(
        &proxy.url(),
        open_store(StoreKind::Sqlcipher, &dir.path().join("m.db")),
        fast_config(),
    );
    // Another device (same user, same keys) uploaded this very content already: what a
    // crash between an upload and its record looks like.
    let other = manager(&server, "other.db");
    let data = noise(4, 200_000);
    other.put("default", "listed", data.clone()).await.unwrap();
    other.put("default", "raced", data.clone()).await.unwrap();

    // Known from the listing: verified, never sent.
    m.stage("default", "listed", data.clone()).await.unwrap();
    let r = m.send_missing("default").await.unwrap();
    assert_eq!(r.transferred, 1, "{:?}", r.failed);
    assert_eq!(
        m.state("default", "listed").await.unwrap().unwrap().status,
        SyncStatus::Synced
    );
    assert!(proxy.requests("PUT", "/listed").is_empty());

    // Not listed when it was sent: the 409 leads to the same verification.
    m.put("default", "raced", data.clone()).await.unwrap();
    assert_eq!(
        m.state("default", "raced").await.unwrap().unwrap().status,
        SyncStatus::Synced
    );
    assert_eq!(proxy.requests("PUT", "/raced").len(), 1, "{:#?}", proxy.log());

    // Different content under the same id is a conflict, reported, and not retried while
    // the server keeps that blob.
    other.put("default", "clash", payload(1, 1000)).await.unwrap();
    let mut events = Events::of(&m);
    match m.put("default", "clash", payload(2, 1000)).await {
        Err(ClientError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let s = m.state("default", "clash").await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.failure),
        (SyncStatus::FailedUpload, Some(FailureKind::Conflict))
    );
    assert!(events.drain().iter().any(|e| matches!(e, Event::Conflict { .. })));
    let puts = proxy.requests("PUT", "/clash").len();
    m.send_missing("default").await.unwrap();
    assert_eq!(proxy.requests("PUT", "/clash").len(), puts);
    // The local copy is intact.
    assert_eq!(m.get("default", "clash").await.unwrap(), payload(2, 1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_quota_is_its_own_state_and_is_retried_when_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |c| {
        c.user_quotas.insert(common::USER.into(), 100_000);
    })
    .await;
    let m = manager(&server, "m.db");
    m.put("default", "first", noise(1, 60_000)).await.unwrap();
    let mut events = Events::of(&m);
    match m.put("default", "second", noise(2, 60_000)).await {
        Err(ClientError::QuotaExceeded(_)) => {}
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(
        m.state("default", "second").await.unwrap().unwrap().status,
        SyncStatus::QuotaExceeded
    );
    assert!(events.drain().iter().any(|e| matches!(e, Event::QuotaExceeded { .. })));
    // Still no room: the sync leaves it alone (and does not fail).
    let r = m.sync("default").await.unwrap();
    assert!(r.failed.is_empty() && r.transferred == 0, "{r:?}");
    // Room again: the next sync uploads it.
    m.delete("default", "first").await.unwrap();
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 1, "{:?}", r.failed);
    assert_eq!(
        m.state("default", "second").await.unwrap().unwrap().status,
        SyncStatus::Synced
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_the_server_lost_is_uploaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    let store = open_store(StoreKind::Sqlcipher, &dir.path().join("m.db"));
    let m = manager_with(&server.url(), store.clone(), fast_config());
    m.put("default", "lost", payload(3, 4000)).await.unwrap();
    let path = server.blob_path("default", "lost");
    server.stop().await;
    std::fs::remove_file(path).unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    let m = manager_with(&server.url(), store, fast_config());
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 1, "{:?}", r.failed);
    let fresh = manager(&server, "fresh.db");
    assert_eq!(fresh.get("default", "lost").await.unwrap(), payload(3, 4000));
}

#[tokio::test(flavor = "multi_thread")]
async fn drafts_are_replaced_atomically_and_a_stale_draft_is_a_conflict() {
    let (_dir, server) = fresh().await;
    let a = manager(&server, "a.db");
    let b = manager(&server, "b.db");
    a.put("drafts", "d1", b"version 1".to_vec()).await.unwrap();
    b.sync("drafts").await.unwrap();
    assert_eq!(b.get("drafts", "d1").await.unwrap(), b"version 1");
    // Plain puts do not replace.
    assert!(a.put("drafts", "d1", b"nope".to_vec()).await.is_err());
    a.replace("drafts", "d1", b"version 2, longer".to_vec()).await.unwrap();
    let c = manager(&server, "c.db");
    assert_eq!(c.get("drafts", "d1").await.unwrap(), b"version 2, longer");
    a.replace("drafts", "d1", b"version 3".to_vec()).await.unwrap();
    assert_eq!(
        manager(&server, "d.db").get("drafts", "d1").await.unwrap(),
        b"version 3"
    );
    assert_eq!(server_blob_count(&a, "drafts").await, 1);
    // B still holds version 1: its replace must not clobber A's newer one.
    let mut events = Events::of(&b);
    match b.replace("drafts", "d1", b"stale edit".to_vec()).await {
        Err(ClientError::PreconditionFailed(_)) => {}
        other => panic!("expected a failed precondition, got {other:?}"),
    }
    assert!(events.drain().iter().any(|e| matches!(e, Event::Conflict { .. })));
    assert_eq!(
        b.state("drafts", "d1").await.unwrap().unwrap().failure,
        Some(FailureKind::Conflict)
    );
    assert_eq!(
        manager(&server, "e.db").get("drafts", "d1").await.unwrap(),
        b"version 3"
    );
}

async fn server_blob_count(m: &blobs_client::BlobManager, ns: &str) -> u64 {
    m.remote().count(ns).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn higher_priority_goes_first_and_urgent_gets_overtake_background_work() {
    let (dir, server) = fresh().await;
    let seeder = manager(&server, "seed.db");
    for i in 0..6 {
        seeder
            .put("default", &format!("bg{i}"), noise(i, 150_000))
            .await
            .unwrap();
    }
    seeder.put("default", "headers", payload(7, 2000)).await.unwrap();

    // One transfer at a time, slowly: background work queues up.
    let m = manager_with(
        &server.url(),
        open_store(StoreKind::Sqlcipher, &dir.path().join("m.db")),
        Config {
            concurrency: 1,
            limit_down: Some(1_000_000),
            ..fast_config()
        },
    );
    let mut events = Events::of(&m);
    let background = {
        let m = m.clone();
        tokio::spawn(async move { m.fetch_missing("default").await.unwrap() })
    };
    // Wait for the first background download to start.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events
        .drain()
        .iter()
        .any(|e| matches!(e, Event::TransferStarted { id, .. } if id.starts_with("bg")))
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = m.get_with("default", "headers", Priority::Urgent).await.unwrap();
    assert_eq!(got, payload(7, 2000));
    let done_before: Vec<String> = events
        .drain()
        .iter()
        .filter_map(|e| match e {
            Event::TransferDone { id, .. } if id.starts_with("bg") => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert!(
        done_before.len() <= 1,
        "the urgent get waited for queued work: {done_before:?}"
    );
    let report = background.await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);

    // Priorities order a sync's uploads.
    let up = manager_with(
        &server.url(),
        open_store(StoreKind::Sqlcipher, &dir.path().join("up.db")),
        Config {
            concurrency: 1,
            ..fast_config()
        },
    );
    for (id, p) in [
        ("p-low", Priority::Low),
        ("p-high", Priority::High),
        ("p-medium", Priority::Medium),
    ] {
        let opts = PutOptions {
            priority: p,
            ..PutOptions::default()
        };
        up.put_reader("up", id, std::io::Cursor::new(vec![1u8; 10]), 10, opts)
            .await
            .unwrap();
    }
    let mut events = Events::of(&up);
    up.sync("up").await.unwrap();
    let order: Vec<String> = events
        .drain()
        .iter()
        .filter_map(|e| match e {
            Event::TransferStarted { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["p-high", "p-medium", "p-low"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_global_limit_paces_all_transfers_and_changes_at_run_time() {
    let (dir, server) = fresh().await;
    let m = manager_with(
        &server.url(),
        open_store(StoreKind::Sqlcipher, &dir.path().join("m.db")),
        Config {
            concurrency: 4,
            limit_up: Some(1_000_000),
            ..fast_config()
        },
    );
    for i in 0..4 {
        m.stage("default", &format!("t{i}"), noise(i, 150_000)).await.unwrap();
    }
    // 4 x 150 kB (plus padding) at 1 MB/s together: at least half a second.
    let started = Instant::now();
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 4);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(450), "{took:?}");

    // A limit so low the transfer would take 10 s, lifted while it runs.
    m.set_limits(Some(60_000), None);
    m.stage("default", "slow", noise(9, 600_000)).await.unwrap();
    let started = Instant::now();
    let lift = {
        let m = m.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            m.set_limits(None, None);
        })
    };
    m.sync("default").await.unwrap();
    lift.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(m.limits(), (None, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_events_cover_each_transfer_and_the_sync() {
    let (_dir, server) = fresh().await;
    let m = manager(&server, "m.db");
    for i in 0..3 {
        m.stage("default", &format!("e{i}"), noise(i, 300_000)).await.unwrap();
    }
    let mut events = Events::of(&m);
    m.sync("default").await.unwrap();
    let seen = events.drain().to_vec();
    for i in 0..3 {
        let id = format!("e{i}");
        let progress: Vec<(u64, u64)> = seen
            .iter()
            .filter_map(|e| match e {
                Event::Progress {
                    id: pid,
                    direction: Direction::Upload,
                    done,
                    total,
                    ..
                } if *pid == id => Some((*done, *total)),
                _ => None,
            })
            .collect();
        assert!(progress.len() >= 3, "{id}: {progress:?}");
        assert!(progress.windows(2).all(|w| w[0].0 < w[1].0), "monotonic");
        let (done, total) = *progress.last().unwrap();
        assert_eq!(done, total);
        assert_eq!(total, blobs_crypto::v2::blob_len(300_000));
    }
    let sync: Vec<(usize, usize)> = seen
        .iter()
        .filter_map(|e| match e {
            Event::SyncProgress {
                blobs_done,
                blobs_total,
                ..
            } => Some((*blobs_done, *blobs_total)),
            _ => None,
        })
        .collect();
    assert_eq!(sync, [(1, 3), (2, 3), (3, 3)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn large_blobs_stream_through_files() {
    let (dir, server) = fresh().await;
    let m = manager(&server, "m.db");
    let data = noise(11, 5_000_123);
    let input = dir.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();
    let opts = PutOptions {
        upload: true,
        ..PutOptions::default()
    };
    assert_eq!(
        m.put_file("default", "big", &input, opts).await.unwrap(),
        data.len() as u64
    );
    let other = manager_with(
        &server.url(),
        open_store(StoreKind::Fs, &dir.path().join("other")),
        fast_config(),
    );
    let (n, out) = other
        .get_to("default", "big", Vec::new(), Priority::High)
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(out == data);
    assert!(read_all(other.store().as_ref(), "default", "big").unwrap().unwrap() == data);
    // Bad names never reach the server.
    assert!(matches!(
        m.put("default", "../x", vec![1]).await,
        Err(ClientError::InvalidName { .. })
    ));
}
