//! The `blobs-server` binary over loopback: every route, status code and hostile input of the
//! skeleton API.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use blobs_server::auth::header_value;
use reqwest::StatusCode;

struct Running {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TOKENS: &str = "# test users\nalice:alice-token\nbob:bob-token\n";

fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), TOKENS).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_blobs-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(dir.path().join("tokens"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = blobs_server::parse_listening_line(&line).unwrap_or_else(|| panic!("bad first line {line:?}"));
    assert!(addr.ip().is_loopback());
    Running { child, addr, dir }
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn alice() -> String {
    header_value("alice", "alice-token")
}

async fn put(s: &Running, path: &str, body: &'static [u8]) -> StatusCode {
    client()
        .put(s.url(path))
        .header("Authorization", alice())
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn get_json(s: &Running, path: &str) -> serde_json::Value {
    let r = client()
        .get(s.url(path))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn upload_download_list_delete_round_trip() {
    let s = start();
    let blob: &[u8] = b"0123456789abcdef-this-blob-ends-with-a-sixteen-byte-tag";
    assert_eq!(put(&s, "/blobs/alice/b1", blob).await, StatusCode::OK);
    assert_eq!(put(&s, "/blobs/alice/b1", blob).await, StatusCode::CONFLICT);

    let r = client()
        .get(s.url("/blobs/alice/b1"))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], blob.len().to_string().as_str());
    assert_eq!(
        r.headers()["tag"].to_str().unwrap(),
        blobs_crypto::tag_header(blob).unwrap()
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), blob);

    assert_eq!(get_json(&s, "/blobs/alice/").await, serde_json::json!(["b1"]));
    assert_eq!(
        get_json(&s, "/blobs/alice/?only_count=true").await,
        serde_json::json!({"count": 1})
    );

    let del = client()
        .delete(s.url("/blobs/alice/b1"))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::OK);
    let again = client()
        .delete(s.url("/blobs/alice/b1"))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let gone = client()
        .get(s.url("/blobs/alice/b1"))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(get_json(&s, "/blobs/alice/").await, serde_json::json!([]));
    assert_eq!(
        get_json(&s, "/blobs/alice/?deleted=true").await,
        serde_json::json!(["b1"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?only_count=1").await,
        serde_json::json!({"count": 0})
    );

    // Re-uploading clears the tombstone.
    assert_eq!(put(&s, "/blobs/alice/b1", b"again").await, StatusCode::OK);
    assert_eq!(get_json(&s, "/blobs/alice/?deleted=true").await, serde_json::json!([]));
    assert_eq!(get_json(&s, "/blobs/alice/").await, serde_json::json!(["b1"]));
}

#[tokio::test]
async fn short_blobs_have_no_tag_and_do_not_fail() {
    let s = start();
    assert_eq!(put(&s, "/blobs/alice/tiny", b"").await, StatusCode::OK);
    let r = client()
        .get(s.url("/blobs/alice/tiny"))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("tag").is_none());
    assert_eq!(r.headers()["content-length"], "0");
}

#[tokio::test]
async fn namespaces_are_separate() {
    let s = start();
    assert_eq!(put(&s, "/blobs/alice/same?namespace=MX", b"mail").await, StatusCode::OK);
    assert_eq!(put(&s, "/blobs/alice/same", b"attachment").await, StatusCode::OK);
    assert_eq!(
        put(&s, "/blobs/alice/other?namespace=MX", b"mail2").await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX").await,
        serde_json::json!(["other", "same"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=default").await,
        serde_json::json!(["same"])
    );
    let r = client()
        .get(s.url("/blobs/alice/same?namespace=MX"))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"mail");
}

#[tokio::test]
async fn listing_orders_by_date_and_rejects_unknown_orders() {
    let s = start();
    for id in ["c", "a", "b"] {
        assert_eq!(put(&s, &format!("/blobs/alice/{id}"), b"x").await, StatusCode::OK);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        get_json(&s, "/blobs/alice/?order_by=date").await,
        serde_json::json!(["c", "a", "b"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?order_by=%2Bdate").await,
        serde_json::json!(["c", "a", "b"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?order_by=-date").await,
        serde_json::json!(["b", "a", "c"])
    );
    for bad in [
        "/blobs/alice/?order_by=size",
        "/blobs/alice/?only_count=maybe",
        "/blobs/alice/?filter_flag=PENDING",
    ] {
        let r = client()
            .get(s.url(bad))
            .header("Authorization", alice())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn credentials_are_checked_per_user() {
    let s = start();
    assert_eq!(put(&s, "/blobs/alice/mine", b"secret").await, StatusCode::OK);
    let cases: Vec<(Option<String>, StatusCode)> = vec![
        (None, StatusCode::UNAUTHORIZED),
        (Some(header_value("alice", "wrong")), StatusCode::UNAUTHORIZED),
        (Some(header_value("carol", "alice-token")), StatusCode::UNAUTHORIZED),
        (Some("Token !!!not-base64!!!".into()), StatusCode::UNAUTHORIZED),
        (Some("Basic YWxpY2U6YWxpY2UtdG9rZW4=".into()), StatusCode::UNAUTHORIZED),
        (Some("Token".into()), StatusCode::UNAUTHORIZED),
        (Some(header_value("bob", "bob-token")), StatusCode::FORBIDDEN),
    ];
    for (auth, expected) in cases {
        for (method, path) in [
            (reqwest::Method::GET, "/blobs/alice/mine"),
            (reqwest::Method::PUT, "/blobs/alice/new"),
            (reqwest::Method::DELETE, "/blobs/alice/mine"),
            (reqwest::Method::GET, "/blobs/alice/"),
        ] {
            let mut req = client().request(method.clone(), s.url(path));
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), expected, "{method} {path} with {auth:?}");
            if expected == StatusCode::UNAUTHORIZED {
                assert_eq!(r.headers()["www-authenticate"], "Token");
            }
        }
    }
    // Nothing above changed alice's blobs.
    assert_eq!(get_json(&s, "/blobs/alice/").await, serde_json::json!(["mine"]));
}

#[tokio::test]
async fn hostile_names_never_reach_the_filesystem() {
    let s = start();
    let long = "x".repeat(201);
    let bad_paths = [
        "/blobs/alice/..".to_owned(),
        "/blobs/alice/%2e%2e".to_owned(),
        "/blobs/alice/a%2Fb".to_owned(),
        "/blobs/alice/a%0A".to_owned(),
        "/blobs/alice/a.flags".to_owned(),
        "/blobs/alice/ok?namespace=..".to_owned(),
        "/blobs/alice/ok?namespace=%2Ftmp".to_owned(),
        format!("/blobs/alice/{long}"),
    ];
    for path in &bad_paths {
        for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
            let r = client()
                .request(method.clone(), s.url(path))
                .header("Authorization", alice())
                .body("x")
                .send()
                .await
                .unwrap();
            assert!(
                r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::NOT_FOUND,
                "{method} {path} gave {}",
                r.status()
            );
        }
    }
    // The only things on disk are the temp area and nothing of alice's.
    let data = s.dir.path().join("data");
    let entries: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from(".tmp")]);
}

#[tokio::test]
async fn concurrent_uploads_of_one_id_have_exactly_one_winner() {
    let s = start();
    let url = s.url("/blobs/alice/contested");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let body = format!("writer-{i:02}-").repeat(1000);
                let status = client()
                    .put(url)
                    .header("Authorization", alice())
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap()
                    .status();
                (status, body)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => winners.push(body),
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = client()
        .get(url)
        .header("Authorization", alice())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), winners[0].as_bytes());
    let tmp = s.dir.path().join("data/.tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0, "temp files left behind");
}

#[tokio::test]
async fn version_and_capabilities_are_public() {
    let s = start();
    let r = client().get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["blobs"], true);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), TOKENS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blobs-server"))
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(dir.path().join("tokens"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.to_lowercase().contains("in use"), "{err}");
}

#[test]
fn a_bad_token_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "alice:ok\nthis line has no colon\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blobs-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2: expected `user:token`", tokens.display())),
        "{err}"
    );
}
