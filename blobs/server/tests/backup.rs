//! Online backups while the server keeps serving, restored into fresh servers and compared
//! blob by blob, flag by flag, tombstone by tombstone.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn token(user: &str) -> String {
    header_value(user, &format!("{user}-token"))
}

/// Everything a client can observe of one user's namespace.
async fn state_of(s: &Running, user: &str, ns: &str) -> Value {
    let auth = token(user);
    let get = |path: String| {
        let auth = auth.clone();
        let url = s.url(&path);
        async move {
            let r = client().get(url).header("Authorization", auth).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            r
        }
    };
    let json_of =
        |r: reqwest::Response| async move { serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap() };
    let ids = json_of(get(format!("/blobs/{user}/?namespace={ns}&order_by=date")).await).await;
    let tombstones = json_of(get(format!("/blobs/{user}/?namespace={ns}&order_by=-date&deleted=1")).await).await;
    let mut blobs = serde_json::Map::new();
    for id in ids.as_array().unwrap() {
        let id = id.as_str().unwrap();
        let r = get(format!("/blobs/{user}/{id}?namespace={ns}")).await;
        let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (tag, etag) = (header("tag"), header("etag"));
        let body = r.bytes().await.unwrap();
        let flags = json_of(get(format!("/blobs/{user}/{id}?namespace={ns}&only_flags=1")).await).await;
        blobs.insert(
            id.to_owned(),
            json!({"len": body.len(), "sum": fnv(&body), "tag": tag, "etag": etag, "flags": flags}),
        );
    }
    json!({"ids": ids, "tombstones": tombstones, "blobs": blobs})
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

async fn fetch_backup(s: &Running, path: &str, dest: &std::path::Path) {
    let r = client()
        .get(s.services_url(path))
        .header("Authorization", header_value("backup", "backup-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    std::fs::write(dest, r.bytes().await.unwrap()).unwrap();
}

fn restore(data: &std::path::Path, archive: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_blobs-server"))
        .arg("restore")
        .arg("--data-dir")
        .arg(data)
        .arg("--from")
        .arg(archive)
        .args(extra)
        .output()
        .unwrap()
}

async fn deliver(s: &Running, id: &str) {
    let r = client()
        .put(s.services_url(&format!("/incoming/alice/{id}")))
        .header("Authorization", mx())
        .body(format!("pgp message {id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn online_backup_restores_every_blob_flag_and_tombstone() {
    let s = start();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 239) as u8).collect();
    put(&s, "/blobs/alice/big", &big).await;
    for i in 0..30 {
        put(
            &s,
            &format!("/blobs/alice/b{i:02}"),
            format!("blob {i} with a tag-sized tail").as_bytes(),
        )
        .await;
    }
    for i in 0..5 {
        send(&s, Method::DELETE, &format!("/blobs/alice/b{i:02}"), None).await;
    }
    put(&s, "/blobs/alice/draft", b"first draft").await;
    put(&s, "/blobs/alice/draft?overwrite=1", b"second draft, longer").await;
    post_flags(&s, "/blobs/alice/b10", r#"["FAILED"]"#).await;
    put(&s, "/blobs/alice/b10?namespace=n2", b"other namespace").await;
    for i in 0..6 {
        deliver(&s, &format!("m{i}")).await;
    }
    post_flags(&s, "/blobs/alice/m1?namespace=MX&expect=PENDING", r#"["PROCESSING"]"#).await;
    post_flags(&s, "/blobs/alice/m2?namespace=MX", r#"["PROCESSED"]"#).await;
    send(&s, Method::DELETE, "/blobs/alice/m3?namespace=MX", None).await;
    let bob = client()
        .put(s.url("/blobs/bob/bobs"))
        .header("Authorization", token("bob"))
        .body("bob's blob")
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), StatusCode::OK);

    // A writer keeps going during the backups; each upload starts after the previous one
    // was acknowledged, so a consistent snapshot holds a prefix of them.
    let stop = Arc::new(Mutex::new(false));
    let writer = {
        let (stop, url) = (stop.clone(), s.url("/blobs/alice/"));
        tokio::spawn(async move {
            let mut n = 0;
            while !*stop.lock().unwrap() {
                let r = client()
                    .put(format!("{url}w{n:04}?namespace=live"))
                    .header("Authorization", alice())
                    .body(format!("live write {n}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let archives = tempfile::tempdir().unwrap();
    let all = archives.path().join("all.tar");
    let alice_only = archives.path().join("alice.tar");
    fetch_backup(&s, "/backup", &all).await;
    fetch_backup(&s, "/backup/alice", &alice_only).await;
    *stop.lock().unwrap() = true;
    let written = writer.await.unwrap();
    assert!(written > 0);
    // Snapshots leave nothing behind.
    assert_eq!(std::fs::read_dir(s.data().join(".snapshots")).unwrap().count(), 0);

    // Restore everything into a fresh data directory and compare.
    let fresh = tempfile::tempdir().unwrap();
    let out = restore(&fresh.path().join("data"), &all, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("restored 2 user(s)"), "{report}");
    let r = start_in(fresh.path(), &[]);
    for (user, ns) in [
        ("alice", "default"),
        ("alice", "MX"),
        ("alice", "n2"),
        ("bob", "default"),
    ] {
        assert_eq!(
            state_of(&s, user, ns).await,
            state_of(&r, user, ns).await,
            "{user}/{ns}"
        );
    }
    let mx = state_of(&r, "alice", "MX").await;
    assert_eq!(mx["blobs"]["m1"]["flags"], json!(["PROCESSING"]));
    assert_eq!(mx["tombstones"], json!(["m3"]));
    // The live namespace holds a prefix of the writes: one point in time.
    let live = state_of(&r, "alice", "live").await;
    let ids: Vec<String> = serde_json::from_value(live["ids"].clone()).unwrap();
    let expected: Vec<String> = (0..ids.len()).map(|n| format!("w{n:04}")).collect();
    assert_eq!(ids, expected);
    assert!(ids.len() <= written);
    assert_eq!(
        get_json(&r, "/usage/alice").await["namespaces"]["default"],
        get_json(&s, "/usage/alice").await["namespaces"]["default"]
    );
    drop(r);

    // One user's backup restores that user only, and refuses to overwrite without --replace.
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let out = restore(&data, &alice_only, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = restore(&data, &alice_only, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user alice already has blobs here"));
    let out = restore(&data, &all, &["--user", "alice", "--replace"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = restore(&data, &alice_only, &["--user", "bob"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("user bob is not in this backup"));
    let r = start_in(fresh.path(), &[]);
    assert_eq!(
        state_of(&s, "alice", "default").await,
        state_of(&r, "alice", "default").await
    );
    let bob = client()
        .get(r.url("/blobs/bob/"))
        .header("Authorization", token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(bob.bytes().await.unwrap().as_ref(), b"[]");
    // A running server's directory cannot be restored into.
    let out = restore(&data, &all, &["--user", "bob"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown users have no backup.
    let r404 = client()
        .get(s.services_url("/backup/carol"))
        .header("Authorization", header_value("backup", "backup-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r404.status(), StatusCode::NOT_FOUND);
}

#[test]
fn hostile_archives_are_refused_and_change_nothing() {
    let manifest = br#"{"format":"blobs-server-backup/v1","server_version":"x","created_unix":0,"users":["alice"]}"#;
    type Entries<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(&str, Entries, &str)> = vec![
        (
            "escape",
            vec![("blobs-backup.json", manifest), ("../../evil", b"x")],
            "not a path of the blobs layout",
        ),
        (
            "wrong shard",
            vec![("blobs-backup.json", manifest), ("alice/default/x/xyz/xyz/abc", b"x")],
            "not a path",
        ),
        (
            "side file",
            vec![("blobs-backup.json", manifest), ("alice/default/a/a/a/a.lock", b"x")],
            "not a path",
        ),
        (
            "bad flags",
            vec![
                ("blobs-backup.json", manifest),
                ("alice/default/a/a/a/a.flags", b"[\"DONE\"]"),
            ],
            "invalid flag",
        ),
        (
            "no manifest",
            vec![("alice/default/a/a/a/a", b"x")],
            "not a blobs-server backup",
        ),
    ];
    for (name, entries, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_entry_type(tar::EntryType::Regular);
            // Bypass the builder's own path checks: write the raw name.
            h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            tar.append(&h, data).unwrap();
        }
        tar.finish().unwrap();
        drop(tar);
        let data = dir.path().join("data");
        let out = restore(&data, &archive, &[]);
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(!data.join("alice").exists(), "{name}");
        assert!(!dir.path().join("evil").exists());
    }
}
