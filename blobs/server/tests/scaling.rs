//! Several `blobs-server` processes on one Garage cluster behave as one server, and a Garage
//! node that dies does not lose anything a server acknowledged.

mod common;

use common::cluster::{self, Cluster};
use common::*;
use reqwest::Method;
use serde_json::json;

async fn deliver(s: &Running, id: &str, body: &[u8]) -> StatusCode {
    client()
        .put(s.services_url(&format!("/incoming/alice/{id}")))
        .header("Authorization", mx())
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

async fn reserve(s: &Running, id: &str) -> StatusCode {
    send(
        s,
        Method::POST,
        &format!("/blobs/alice/{id}?namespace=MX&expect=PENDING"),
        Some(br#"["PROCESSING"]"#.to_vec()),
    )
    .await
    .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_bucket_behave_as_one() {
    let Some(b) = Backend::s3() else { return };
    let (one, two) = (b.start(), b.start());

    // Written through one, everything else through the other.
    assert_eq!(put(&one, "/blobs/alice/x", b"from one").await, StatusCode::OK);
    assert_eq!(
        get(&two, "/blobs/alice/x").await.bytes().await.unwrap().as_ref(),
        b"from one"
    );
    assert_eq!(get_json(&two, "/blobs/alice/").await, json!(["x"]));
    assert_eq!(
        post_flags(&two, "/blobs/alice/x", r#"["PROCESSED"]"#).await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&one, "/blobs/alice/x?only_flags=1").await,
        json!(["PROCESSED"])
    );
    assert_eq!(
        get_json(&one, "/blobs/alice/?filter_flag=PROCESSED").await,
        json!(["x"])
    );
    assert_eq!(
        send(&two, Method::DELETE, "/blobs/alice/x", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(get(&one, "/blobs/alice/x").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get_json(&one, "/blobs/alice/?deleted=true").await, json!(["x"]));
    assert_eq!(get_json(&one, "/usage/alice").await["used_bytes"], json!(0));

    // The same id created through both at once: exactly one wins, and its bytes are stored.
    for round in 0..8 {
        let path = format!("/blobs/alice/c{round}");
        let (a, z) = tokio::join!(put(&one, &path, b"one's"), put(&two, &path, b"two's"));
        let mut statuses = [a, z];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "round {round}");
        let stored = get(&two, &path).await.bytes().await.unwrap();
        let winner: &[u8] = if a == StatusCode::OK { b"one's" } else { b"two's" };
        assert_eq!(stored.as_ref(), winner, "round {round}");
    }
    assert_eq!(get_json(&one, "/blobs/alice/?only_count=1").await, json!({"count": 8}));

    // One incoming item reserved by consumers behind both servers at once: one wins.
    for round in 0..8 {
        let id = format!("m{round}");
        assert_eq!(deliver(&one, &id, b"mail").await, StatusCode::OK);
        let (a, z) = tokio::join!(reserve(&one, &id), reserve(&two, &id));
        let mut statuses = [a, z];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "round {round}");
        assert_eq!(
            get_json(&two, &format!("/blobs/alice/{id}?namespace=MX&only_flags=1")).await,
            json!(["PROCESSING"])
        );
    }
}

/// Garage 2.5 ignores `If-None-Match: *` and `If-Match` on PUT: both writes below succeed.
/// This is why the S3 backend's compare-and-set is etcd's; should Garage start honouring
/// them, this test fails and `docs/scaling.md` needs another look.
#[tokio::test]
async fn garage_ignores_conditional_puts() {
    if !cluster::available() {
        return;
    }
    let c = Cluster::shared();
    let s3 = |path: &str| format!("{}/{}/{path}", c.env["SOLEDAD_S3_ENDPOINT"], c.env["SOLEDAD_S3_BUCKET"]);
    assert!(s3("").starts_with("http://127.0.0.1:"));
    let put = |header: Option<&str>, body: &str| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args([
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                "--aws-sigv4",
                "aws:amz:garage:s3",
            ])
            .arg("--user")
            .arg(format!(
                "{}:{}",
                c.env["AWS_ACCESS_KEY_ID"], c.env["AWS_SECRET_ACCESS_KEY"]
            ))
            .args(["-X", "PUT", "--data-binary", body]);
        if let Some(h) = header {
            cmd.args(["-H", h]);
        }
        let out = cmd.arg(s3("cond-probe")).output().expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let codes = [
        put(None, "first"),
        // Should be 412: the object exists.
        put(Some("If-None-Match: *"), "second"),
        // Should be 412: the ETag does not match.
        put(Some("If-Match: \"no-such-etag\""), "third"),
    ]
    .join(" ");
    assert_eq!(codes.trim(), "200 200 200", "Garage answered {codes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_garage_node_loses_nothing_acknowledged() {
    if !cluster::available() {
        return;
    }
    // Its own cluster: a node of it is killed.
    let c = Cluster::start();
    let (args, env) = c.server_args("fault");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tmp = tempfile::tempdir().unwrap();
    let s = start_in_env(tmp.path(), &args, &env);
    let body = |i: usize| format!("blob {i} ").repeat(100 + i * 37).into_bytes();
    let total = 60;
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for batch in 0..total / 6 {
        if batch == 3 {
            // Node 3 holds a replica of everything (3 nodes, replication factor 3) and is
            // not the one the server talks to.
            c.stop_node(3);
        }
        let puts = (batch * 6..batch * 6 + 6).map(|i| {
            let s = &s;
            async move { (i, put(s, &format!("/blobs/alice/f{i}"), &body(i)).await) }
        });
        for (i, status) in futures::future::join_all(puts).await {
            if status == StatusCode::OK {
                acknowledged.push(i);
            } else {
                // Anything refused must say so with a status a client retries on.
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "blob {i}");
                refused += 1;
            }
        }
    }
    // With 2 of 3 nodes a write still reaches its quorum.
    assert_eq!(acknowledged.len(), total, "{refused} refused");
    for i in acknowledged {
        let r = get(&s, &format!("/blobs/alice/f{i}")).await;
        assert_eq!(r.status(), StatusCode::OK, "blob {i}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), body(i).as_slice(), "blob {i}");
    }
    assert_eq!(
        get_json(&s, "/blobs/alice/?only_count=1").await,
        json!({"count": total})
    );
}

/// A quota reservation's lease outlives its time to live while it is renewed, and ends when
/// renewal stops (what a slow upload and a dead server need), against the real etcd.
#[tokio::test]
async fn a_renewed_lease_outlives_its_time_to_live_and_ends_without_renewal() {
    if !cluster::available() {
        return;
    }
    let c = Cluster::shared();
    let etcd = blobs_server::s3::etcd::Etcd::new(c.env["SOLEDAD_ETCD"].split(',').map(str::to_owned).collect());
    let lease = etcd.grant(2).await.unwrap();
    let renewal = etcd.spawn_keep_alive(lease, 2);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(etcd.time_to_live(lease).await.unwrap() > 0, "the renewed lease ended");
    renewal.abort();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        etcd.time_to_live(lease).await.unwrap(),
        -1,
        "the lease outlived its renewal"
    );
    assert_eq!(
        etcd.keep_alive(lease).await.unwrap(),
        0,
        "an ended lease cannot be renewed"
    );
}
