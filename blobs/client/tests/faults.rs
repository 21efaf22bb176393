//! Transfers through a fault-injecting proxy to the real server: retries with backoff and
//! their limit, resumed downloads (after a dropped, stalled or truncated connection, and
//! after a restart), blobs damaged in transit or on the server.

mod common;

use std::time::Duration;

use blobs_client::{BlobFormat, ClientError, Config, Event, FailureKind, Priority, RetryPolicy, SyncStatus, read_all};
use blobs_crypto::v2::SEALED_CHUNK_LEN;
use common::proxy::{Fault, Proxy};
use common::{Events, StoreKind, fast_config, manager, manager_with, noise, open_store, server_in};

const HEAD: u64 = blobs_crypto::PREAMBLE_B64_LEN as u64 + 1;

struct Setup {
    dir: tempfile::TempDir,
    server: common::Server,
    proxy: Proxy,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    let proxy = Proxy::start(server.addr).await;
    Setup { dir, server, proxy }
}

impl Setup {
    /// A device that talks to the server through the proxy.
    fn device(&self, name: &str, config: Config) -> blobs_client::BlobManager {
        manager_with(
            &self.proxy.url(),
            open_store(StoreKind::Sqlcipher, &self.dir.path().join(name)),
            config,
        )
    }

    /// Uploads directly (not through the proxy).
    async fn seed(&self, id: &str, data: &[u8], format: BlobFormat) {
        let m = manager_with(
            &self.server.url(),
            open_store(StoreKind::Sqlcipher, &self.dir.path().join(format!("seed-{id}.db"))),
            Config {
                format,
                ..fast_config()
            },
        );
        m.put("default", id, data.to_vec()).await.unwrap();
    }

    fn gets(&self, id: &str) -> Vec<common::proxy::Logged> {
        self.proxy.requests("GET", &format!("/{id}?"))
    }
}

fn range_start(r: &common::proxy::Logged) -> Option<u64> {
    r.range
        .as_deref()?
        .strip_prefix("bytes=")?
        .trim_end_matches('-')
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_with_backoff_then_succeed() {
    let s = setup().await;
    s.seed("b", &noise(1, 10_000), BlobFormat::V2).await;
    s.proxy.add(
        "GET",
        "/b?",
        Fault::Status {
            code: 503,
            headers: "Retry-After: 0\r\n",
        },
        2,
    );
    s.proxy.add("PUT", "/up?", Fault::Status { code: 500, headers: "" }, 1);
    let m = s.device("m.db", fast_config());
    let mut events = Events::of(&m);
    assert_eq!(m.get("default", "b").await.unwrap(), noise(1, 10_000));
    m.put("default", "up", noise(2, 5000)).await.unwrap();
    let retries: Vec<(String, Option<Duration>)> = events
        .drain()
        .iter()
        .filter_map(|e| match e {
            Event::TransferFailed { id, retry_in, .. } => Some((id.clone(), *retry_in)),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 3, "{retries:?}");
    assert!(retries.iter().all(|(_, r)| r.is_some()));
    assert_eq!(s.gets("b").len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_attempt_limit_a_blob_fails_alone_and_the_next_sync_retries_it() {
    let s = setup().await;
    for i in 0..5 {
        s.seed(&format!("ok{i}"), &noise(i, 3000), BlobFormat::V2).await;
    }
    s.seed("flaky", &noise(9, 3000), BlobFormat::V2).await;
    s.proxy.add("GET", "/flaky?", Fault::Refuse, 100);
    let m = s.device("m.db", fast_config());
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 5);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, "flaky");
    assert_eq!(s.gets("flaky").len(), 4, "the attempt limit");
    let st = m.state("default", "flaky").await.unwrap().unwrap();
    assert_eq!(
        (st.status, st.failure),
        (SyncStatus::FailedDownload, Some(FailureKind::Transport))
    );
    s.proxy.clear();
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 1, "{:?}", r.failed);
    assert_eq!(m.get("default", "flaky").await.unwrap(), noise(9, 3000));

    // Uploads likewise: FAILED_UPLOAD, then retried by the next sync.
    s.proxy.add("PUT", "/u?", Fault::Refuse, 100);
    m.stage("default", "u", noise(3, 100)).await.unwrap();
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.failed.len(), 1);
    assert_eq!(
        m.state("default", "u").await.unwrap().unwrap().status,
        SyncStatus::FailedUpload
    );
    s.proxy.clear();
    assert_eq!(m.sync("default").await.unwrap().transferred, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_resumes_where_it_broke() {
    let s = setup().await;
    let data = noise(5, 600_000);
    s.seed("big", &data, BlobFormat::V2).await;
    s.seed("old", &data, BlobFormat::V1).await;
    s.seed("reset", &data, BlobFormat::V2).await;
    for (id, fault) in [
        ("big", Fault::Truncate { after: 300_000 }),
        ("old", Fault::Truncate { after: 250_000 }),
        // A reset may also discard what the client had not read yet.
        ("reset", Fault::Drop { after: 300_000 }),
    ] {
        s.proxy.add("GET", format!("/{id}?"), fault, 1);
    }
    let m = s.device("m.db", fast_config());
    assert_eq!(m.get("default", "big").await.unwrap(), data);
    assert_eq!(m.get("default", "old").await.unwrap(), data);
    assert_eq!(m.get("default", "reset").await.unwrap(), data);
    assert_eq!(s.gets("reset").len(), 2);
    // v2 resumes at the first chunk it had not verified.
    let gets = s.gets("big");
    assert_eq!(gets.len(), 2);
    let start = range_start(&gets[1]).expect("a range request");
    assert_eq!((start - HEAD) % SEALED_CHUNK_LEN as u64, 0);
    assert!(start > HEAD + 3 * SEALED_CHUNK_LEN as u64, "{start}");
    assert!(start <= 300_000);
    // v1 keeps what it received (ciphertext) and asks for the rest.
    let gets = s.gets("old");
    assert_eq!(gets.len(), 2);
    assert_eq!(range_start(&gets[1]), Some(250_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_response_times_out_and_resumes() {
    let s = setup().await;
    let data = noise(6, 400_000);
    s.seed("slow", &data, BlobFormat::V2).await;
    s.proxy.add(
        "GET",
        "/slow?",
        Fault::Stall {
            after: 200_000,
            pause: Duration::from_secs(10),
        },
        1,
    );
    let m = manager_with(
        &s.proxy.url(),
        open_store(StoreKind::Sqlcipher, &s.dir.path().join("m.db")),
        fast_config(),
    );
    let started = std::time::Instant::now();
    assert_eq!(m.get("default", "slow").await.unwrap(), data);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the read timeout (2 s) ended the stall"
    );
    let gets = s.gets("slow");
    assert_eq!(gets.len(), 2);
    assert!(range_start(&gets[1]).unwrap() > HEAD);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_resumes_after_a_restart() {
    let s = setup().await;
    let data = noise(7, 1_000_000);
    s.seed("resume", &data, BlobFormat::V2).await;
    s.proxy.add("GET", "/resume?", Fault::Truncate { after: 500_000 }, 1);
    let path = s.dir.path().join("m.db");
    {
        // One attempt only: the blob goes FAILED_DOWNLOAD and the process "ends".
        let m = manager_with(
            &s.proxy.url(),
            open_store(StoreKind::Sqlcipher, &path),
            Config {
                retry: RetryPolicy {
                    max_attempts: 1,
                    ..fast_config().retry
                },
                ..fast_config()
            },
        );
        assert!(m.fetch_missing("default").await.unwrap().failed.len() == 1);
        assert_eq!(
            m.state("default", "resume").await.unwrap().unwrap().status,
            SyncStatus::FailedDownload
        );
    }
    let m = manager_with(&s.proxy.url(), open_store(StoreKind::Sqlcipher, &path), fast_config());
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 1, "{:?}", r.failed);
    assert_eq!(
        read_all(m.store().as_ref(), "default", "resume").unwrap().unwrap(),
        data
    );
    let gets = s.gets("resume");
    assert_eq!(gets.len(), 2);
    let start = range_start(&gets[1]).expect("the restarted download asked for a range");
    assert!(start > 400_000, "{start}: the verified chunks were kept");

    // If the blob changed meanwhile, If-Range makes the server send the new one whole.
    s.proxy.add("GET", "/changing?", Fault::Drop { after: 200_000 }, 1);
    s.seed("changing", &noise(1, 500_000), BlobFormat::V2).await;
    let one = Config {
        retry: RetryPolicy {
            max_attempts: 1,
            ..fast_config().retry
        },
        ..fast_config()
    };
    let m = s.device("c.db", one.clone());
    assert!(m.get("default", "changing").await.is_err());
    let writer = manager(&s.server, "writer.db");
    writer.replace("default", "changing", noise(2, 500_000)).await.unwrap();
    m.sync("default").await.unwrap();
    assert_eq!(m.get("default", "changing").await.unwrap(), noise(2, 500_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_byte_corrupted_in_transit_fails_its_chunk_and_only_that_is_fetched_again() {
    let s = setup().await;
    let data = noise(8, 700_000);
    s.seed("bent", &data, BlobFormat::V2).await;
    let bad = HEAD + 5 * SEALED_CHUNK_LEN as u64 + 100;
    s.proxy.add("GET", "/bent?", Fault::Corrupt { at: bad }, 1);
    let m = s.device("m.db", fast_config());
    let mut events = Events::of(&m);
    assert_eq!(m.get("default", "bent").await.unwrap(), data);
    assert!(
        events
            .drain()
            .iter()
            .any(|e| matches!(e, Event::VerificationFailed { failures: 1, .. }))
    );
    let gets = s.gets("bent");
    assert_eq!(gets.len(), 2);
    assert_eq!(range_start(&gets[1]), Some(HEAD + 5 * SEALED_CHUNK_LEN as u64));
    let st = m.state("default", "bent").await.unwrap().unwrap();
    assert_eq!((st.status, st.verify_failures), (SyncStatus::Synced, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_corrupted_on_the_server_becomes_unusable_until_its_copy_changes() {
    let s = setup().await;
    for (id, format) in [("v2blob", BlobFormat::V2), ("v1blob", BlobFormat::V1)] {
        s.seed(id, &noise(3, 200_000), format).await;
        let path = s.server.blob_path("default", id);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 5000;
        bytes[at] ^= 0x80;
        std::fs::write(&path, bytes).unwrap();
    }
    s.seed("fine", &noise(4, 1000), BlobFormat::V2).await;
    let m = s.device("m.db", fast_config());
    let mut events = Events::of(&m);
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 1);
    assert_eq!(r.failed.len(), 2);
    for (id, e) in &r.failed {
        assert!(matches!(e, ClientError::InvalidBlob { .. }), "{id}: {e}");
        let st = m.state("default", id).await.unwrap().unwrap();
        assert_eq!(
            (st.status, st.failure),
            (SyncStatus::FailedDownload, Some(FailureKind::Verification))
        );
        assert_eq!(st.verify_failures, 3);
        assert!(
            m.store().content("default", id).unwrap().is_none(),
            "nothing unverified is kept"
        );
    }
    let seen = events.drain();
    for id in ["v1blob", "v2blob"] {
        let fails = seen
            .iter()
            .filter(|e| matches!(e, Event::VerificationFailed { id: i, .. } if i == id))
            .count();
        assert_eq!(fails, 3, "{id}");
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Unusable { id: i, .. } if i == id))
        );
    }
    assert!(matches!(
        m.get("default", "v2blob").await,
        Err(ClientError::Unusable(_))
    ));

    // The next sync does not silently try again: the server's copy is the same.
    let before = s.gets("v2blob").len();
    let r = m.sync("default").await.unwrap();
    assert!(r.failed.is_empty() && r.transferred == 0, "{r:?}");
    assert_eq!(s.gets("v2blob").len(), before);
    assert_eq!(
        m.state("default", "v2blob").await.unwrap().unwrap().status,
        SyncStatus::FailedDownload
    );

    // Once the server holds a new copy, it is fetched and used.
    manager(&s.server, "fixer.db")
        .replace("default", "v2blob", noise(5, 1234))
        .await
        .unwrap();
    let r = m.sync("default").await.unwrap();
    assert_eq!(r.transferred, 1, "{:?}", r.failed);
    assert_eq!(
        m.get_with("default", "v2blob", Priority::Urgent).await.unwrap(),
        noise(5, 1234)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_claiming_another_scheme_is_refused_outside_external_namespaces() {
    let s = setup().await;
    // What a malicious server could put in place of an attachment: an "external" blob
    // that carries plaintext.
    let preamble = blobs_crypto::Preamble {
        scheme: blobs_crypto::Scheme::External,
        method: blobs_crypto::Method::Pgp,
        timestamp: 0,
        iv: [0; 16],
        doc_id: "swap".into(),
        rev: "0".into(),
        content_size: Some(5),
    };
    let mut blob = preamble.to_base64().unwrap().into_bytes();
    blob.extend_from_slice(b" HELLO");
    let raw = common::remote_to(&s.server.url());
    raw.put("default", "swap", blob.clone().into()).await.unwrap();
    raw.put("MX", "swap", blob.into()).await.unwrap();
    let m = s.device("m.db", fast_config());
    match m.get("default", "swap").await {
        Err(ClientError::InvalidBlob {
            source: blobs_crypto::FormatError::SchemeNotAllowed { .. },
            ..
        }) => {}
        other => panic!("expected a refused scheme, got {other:?}"),
    }
    assert_eq!(m.get("MX", "swap").await.unwrap(), b"HELLO");
}
