//! One user cannot starve the others: a user whose slow uploads fill their share of the write
//! slots waits (then gets 503), while another user's uploads, downloads and flag changes go
//! on, on the real server over loopback.

mod common;

use std::time::{Duration, Instant};

use common::{StatusCode, alice, client, header_value, start_with};
use futures::channel::mpsc::{UnboundedSender, unbounded};

fn bob() -> String {
    header_value("bob", "bob-token")
}

/// An upload whose body arrives only as the test sends it: it holds its slots until then.
fn slow_upload(
    url: String,
    auth: String,
) -> (
    UnboundedSender<Result<Vec<u8>, std::io::Error>>,
    tokio::task::JoinHandle<reqwest::Response>,
) {
    let (more, body) = unbounded::<Result<Vec<u8>, std::io::Error>>();
    more.unbounded_send(Ok(vec![1; 10])).unwrap();
    let task = tokio::spawn(async move {
        client()
            .put(url)
            .header("Authorization", auth)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap()
    });
    (more, task)
}

#[tokio::test]
async fn a_user_with_slow_uploads_holds_only_their_share() {
    // Four slots for everyone, two for any one user.
    let s = start_with(&[
        "--max-concurrent-writes",
        "4",
        "--max-writes-per-user",
        "2",
        "--write-wait",
        "1s",
    ]);
    let put = |path: &str, auth: String, body: &'static [u8]| {
        let req = client().put(s.url(path)).header("Authorization", auth).body(body);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(put("/blobs/bob/kept", bob(), b"kept").await.status(), StatusCode::OK);

    // Alice trickles four uploads, twice her share and as many as all the slots.
    let holders: Vec<_> = (0..4)
        .map(|i| slow_upload(s.url(&format!("/blobs/alice/slow-{i}")), alice()))
        .collect();
    // Once her share is full, another upload of hers waits `write_wait` and gets 503.
    let mut probes = 0;
    loop {
        probes += 1;
        assert!(probes <= 20, "alice's slow uploads never filled her share");
        let asked = Instant::now();
        let r = put(&format!("/blobs/alice/probe-{probes}"), alice(), b"p").await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.headers()["retry-after"], "1");
            assert!(asked.elapsed() >= Duration::from_millis(950), "{:?}", asked.elapsed());
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Meanwhile Bob uploads two blobs at once (the two slots Alice cannot take), downloads,
    // changes flags and deletes. (Without the shares, Alice's uploads would hold all four
    // slots and Bob's would get 503 after `write_wait`.)
    let (a, b) = tokio::join!(
        put("/blobs/bob/new-1", bob(), b"one"),
        put("/blobs/bob/new-2", bob(), b"two")
    );
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let got = client()
        .get(s.url("/blobs/bob/new-1"))
        .header("Authorization", bob())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"one");
    let flagged = client()
        .post(s.url("/blobs/bob/kept"))
        .header("Authorization", bob())
        .body(r#"["PENDING"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(flagged.status(), StatusCode::OK);
    let deleted = client()
        .delete(s.url("/blobs/bob/new-2"))
        .header("Authorization", bob())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);

    // The two uploads past her share get their 503 after `write_wait` whenever their requests
    // arrived; only then are the other two finished, so that a freed share cannot go to a
    // late one (the order does not depend on how fast the machine is).
    let waited = Instant::now();
    while holders.iter().filter(|(_, task)| task.is_finished()).count() < 2 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the uploads past her share never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Alice's uploads end: two were written, the two past her share waited and got 503.
    let mut statuses = Vec::new();
    for (more, task) in holders {
        let _ = more.unbounded_send(Ok(vec![2; 10]));
        drop(more);
        statuses.push(task.await.unwrap().status());
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE
        ]
    );
    // With her share free again, her next upload goes through at once.
    assert_eq!(put("/blobs/alice/after", alice(), b"a").await.status(), StatusCode::OK);
}

#[test]
fn a_share_larger_than_the_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = common::refused(
        dir.path(),
        &["--max-concurrent-writes", "4", "--max-writes-per-user", "5"],
    );
    assert!(
        err.contains("max_writes_per_user") && err.contains("max_concurrent_writes (4)"),
        "{err}"
    );
}

/// One client holds every connection slot, first with connections that send the start of a
/// request's head and then nothing, then with idle keep-alive connections; another user still
/// gets in each time, because the server closes idle connections when the slots run out
/// (long before the header and idle timeouts, here a minute and two).
#[tokio::test]
async fn idle_and_slow_connections_cannot_keep_others_out() {
    use std::io::{Read, Write};
    let s = start_with(&[
        "--max-connections",
        "4",
        "--header-timeout",
        "60s",
        "--idle-timeout",
        "120s",
    ]);
    let connect = || {
        let c = std::net::TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c
    };
    // Bob's request on a connection of its own (the others hold all four slots).
    let bob_gets_in = || async {
        let asked = Instant::now();
        let r = client()
            .get(s.url("/blobs/bob/"))
            .header("Authorization", bob())
            .header("Connection", "close")
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("bob was kept out for {:?}: {e}", asked.elapsed()));
        assert_eq!(r.status(), StatusCode::OK);
    };
    // How many of `held` the server closed (a read ends instead of waiting).
    let closed = |held: &mut Vec<std::net::TcpStream>| {
        held.iter_mut()
            .map(|c| {
                c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).is_ok()
            })
            .filter(|&ended| ended)
            .count()
    };

    // Four connections that start a request's head and send nothing more.
    let mut slow: Vec<_> = (0..4)
        .map(|_| {
            let mut c = connect();
            c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ").unwrap();
            c
        })
        .collect();
    bob_gets_in().await;
    assert!(closed(&mut slow) >= 1, "no slow connection was closed");
    drop(slow);

    // Four keep-alive connections, each after one answered request, left idle.
    let mut idle: Vec<_> = (0..4)
        .map(|_| {
            let mut c = connect();
            write!(
                c,
                "GET /blobs/alice/ HTTP/1.1\r\nHost: a\r\nAuthorization: {}\r\n\r\n",
                alice()
            )
            .unwrap();
            let mut answer = [0u8; 12];
            c.read_exact(&mut answer).unwrap();
            assert_eq!(&answer, b"HTTP/1.1 200");
            c
        })
        .collect();
    bob_gets_in().await;
    assert!(closed(&mut idle) >= 1, "no idle connection was closed");
}
