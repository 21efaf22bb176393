//! The BlobManager against a real blobs server on loopback and real SQLCipher files.

use std::path::Path;
use std::sync::Arc;

use blobs_client::{BlobManager, ClientError, Credentials, LocalStore, Remote, SqlcipherStore, SyncStatus};
use blobs_crypto::BlobSecret;

struct Env {
    dir: tempfile::TempDir,
    server: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "alice:tok\n").unwrap();
    let config = blobs_server::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("data"),
        dir.path().join("tokens"),
    );
    let server = blobs_server::Server::bind(&config).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    Env {
        dir,
        server: url,
        _shutdown: tx,
    }
}

fn secret() -> BlobSecret {
    BlobSecret::new(vec![7u8; 512]).unwrap()
}

fn manager(env: &Env, store_path: &Path) -> (BlobManager, Arc<SqlcipherStore>) {
    let store = Arc::new(SqlcipherStore::open(store_path, &[42; 32]).unwrap());
    let remote = Remote::new(
        &env.server,
        &Credentials {
            user: "alice".into(),
            token: "tok".into(),
        },
    )
    .unwrap();
    (BlobManager::new(store.clone(), remote, secret(), 4), store)
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    let marker = format!("PLAINTEXT-MARKER-{i:04}-");
    marker.bytes().cycle().take(len).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_devices_sync_through_the_server() {
    let env = server().await;
    let (laptop, laptop_store) = manager(&env, &env.dir.path().join("laptop.db"));
    laptop.put("default", "direct", payload(0, 70_000)).await.unwrap();
    for i in 1..=20 {
        laptop
            .stage("default", &format!("staged{i}"), payload(i, 1000 * i))
            .await
            .unwrap();
    }
    assert_eq!(
        laptop_store
            .ids_with_status("default", SyncStatus::PendingUpload)
            .unwrap()
            .len(),
        20
    );
    let sent = laptop.send_missing("default").await.unwrap();
    assert_eq!(sent.transferred, 20, "{:?}", sent.failed);
    assert!(
        laptop_store
            .ids_with_status("default", SyncStatus::PendingUpload)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        laptop_store.status("default", "direct").unwrap(),
        Some(SyncStatus::Synced)
    );

    let (phone, _) = manager(&env, &env.dir.path().join("phone.db"));
    let fetched = phone.fetch_missing("default").await.unwrap();
    assert_eq!(fetched.transferred, 21, "{:?}", fetched.failed);
    assert_eq!(phone.get("default", "direct").await.unwrap(), payload(0, 70_000));
    for i in 1..=20 {
        assert_eq!(
            phone.get("default", &format!("staged{i}")).await.unwrap(),
            payload(i, 1000 * i)
        );
    }
    // Nothing left to fetch.
    assert_eq!(phone.fetch_missing("default").await.unwrap().transferred, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_and_the_disk_never_see_plaintext() {
    let env = server().await;
    let db = env.dir.path().join("laptop.db");
    let (laptop, _) = manager(&env, &db);
    laptop.put("default", "secret", payload(9, 50_000)).await.unwrap();
    drop(laptop);
    let marker = b"PLAINTEXT-MARKER-0009";
    let contains = |bytes: &[u8]| bytes.windows(marker.len()).any(|w| w == marker);
    for entry in walk(&env.dir.path().join("data")) {
        assert!(
            !contains(&std::fs::read(&entry).unwrap()),
            "plaintext on the server in {entry:?}"
        );
    }
    for entry in walk(env.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("laptop.db"))
    {
        assert!(
            !contains(&std::fs::read(&entry).unwrap()),
            "plaintext in the local store file {entry:?}"
        );
    }
    // The store only opens with its key.
    let wrong = SqlcipherStore::open(&db, &[1; 32])
        .err()
        .expect("a wrong key must not open the store");
    assert!(wrong.to_string().contains("wrong key"), "{wrong}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_blob_is_refused_and_does_not_stop_the_others() {
    let env = server().await;
    let (laptop, _) = manager(&env, &env.dir.path().join("laptop.db"));
    for id in ["good1", "evil", "good2"] {
        laptop.put("default", id, payload(1, 5000)).await.unwrap();
    }
    let evil = walk(&env.dir.path().join("data"))
        .into_iter()
        .find(|p| p.ends_with("evil"))
        .unwrap();
    let mut bytes = std::fs::read(&evil).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(&evil, bytes).unwrap();

    let (phone, phone_store) = manager(&env, &env.dir.path().join("phone.db"));
    let report = phone.fetch_missing("default").await.unwrap();
    assert_eq!(report.transferred, 2);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "evil");
    assert!(
        matches!(report.failed[0].1, ClientError::InvalidBlob { .. }),
        "{:?}",
        report.failed[0].1
    );
    assert_eq!(
        phone_store.get("default", "evil").unwrap(),
        None,
        "an unverified blob was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_typed() {
    let env = server().await;
    let (laptop, _) = manager(&env, &env.dir.path().join("laptop.db"));
    assert!(matches!(
        laptop.get("default", "missing").await,
        Err(ClientError::NotFound(_))
    ));
    assert!(matches!(
        laptop.put("default", "../x", vec![1]).await,
        Err(ClientError::InvalidName { .. })
    ));
    laptop.put("default", "once", vec![1]).await.unwrap();
    assert!(matches!(
        laptop.put("default", "once", vec![2]).await,
        Err(ClientError::Store(blobs_client::StoreError::Exists { .. }))
    ));
    let bad = Remote::new(
        &env.server,
        &Credentials {
            user: "alice".into(),
            token: "wrong".into(),
        },
    )
    .unwrap();
    match bad.list("default").await {
        Err(ClientError::Status { status: 401, .. }) => {}
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        Remote::new(
            "not a url",
            &Credentials {
                user: "alice".into(),
                token: "t".into()
            }
        ),
        Err(ClientError::InvalidUrl { .. })
    ));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
