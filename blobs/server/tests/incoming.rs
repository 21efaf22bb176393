//! The services listener: incoming-box deliveries, reservations and their expiry.

mod common;

use blobs_crypto::{Method as Cipher, Preamble, Scheme};
use common::*;
use reqwest::Method;
use serde_json::json;

async fn deliver(s: &Running, user: &str, id: &str, body: &[u8], auth: Option<String>) -> StatusCode {
    let mut req = client()
        .put(s.services_url(&format!("/incoming/{user}/{id}")))
        .body(body.to_vec());
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.unwrap().status()
}

on_both_backends!(
    deliveries_land_in_mx_with_an_external_preamble_and_pending,
    deliveries_land_in_mx_with_an_external_preamble_and_pending_s3,
    deliveries_land_in_mx_with_an_external_preamble_and_pending_case
);
async fn deliveries_land_in_mx_with_an_external_preamble_and_pending_case(b: Backend) {
    let s = b.start();
    let message = b"-----BEGIN PGP MESSAGE-----\nhQEMA...\n-----END PGP MESSAGE-----\n";
    assert_eq!(deliver(&s, "alice", "msg1", message, Some(mx())).await, StatusCode::OK);
    assert_eq!(
        deliver(&s, "alice", "msg1", message, Some(mx())).await,
        StatusCode::CONFLICT
    );

    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX&filter_flag=PENDING&order_by=%2Bdate").await,
        json!(["msg1"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/msg1?namespace=MX&only_flags=1").await,
        json!(["PENDING"])
    );
    let stored = get(&s, "/blobs/alice/msg1?namespace=MX").await.bytes().await.unwrap();
    let space = stored.iter().position(|&b| b == b' ').unwrap();
    let (preamble, _) = Preamble::from_base64(&stored[..space]).unwrap();
    assert_eq!(preamble.scheme, Scheme::External);
    assert_eq!(preamble.method, Cipher::Pgp);
    assert_eq!(preamble.doc_id, "msg1");
    assert_eq!(preamble.rev, "0");
    assert_eq!(preamble.iv, [0; 16]);
    assert_eq!(preamble.content_size, Some(message.len() as u64));
    assert_eq!(&stored[space + 1..], message);
    // Nothing in the user's default namespace.
    assert_eq!(get_json(&s, "/blobs/alice/").await, json!([]));

    // A delivery without Content-Length gets the exact size too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(b"part one ".to_vec()), Ok(b"part two".to_vec())];
    let r = client()
        .put(s.services_url("/incoming/alice/msg2"))
        .header("Authorization", mx())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stored = get(&s, "/blobs/alice/msg2?namespace=MX").await.bytes().await.unwrap();
    let (preamble, _) = Preamble::from_base64(&stored[..736]).unwrap();
    assert_eq!(preamble.content_size, Some(17));
    assert_eq!(&stored[737..], b"part one part two");
}

on_both_backends!(
    deliveries_need_a_service_token_and_a_real_user,
    deliveries_need_a_service_token_and_a_real_user_s3,
    deliveries_need_a_service_token_and_a_real_user_case
);
async fn deliveries_need_a_service_token_and_a_real_user_case(b: Backend) {
    let s = b.start_with(&["--quota", "2000"]);
    let body = b"pgp".to_vec();
    let cases = [
        ("alice", "m", None, StatusCode::UNAUTHORIZED),
        ("alice", "m", Some(alice()), StatusCode::UNAUTHORIZED),
        (
            "alice",
            "m",
            Some(header_value("mx", "wrong")),
            StatusCode::UNAUTHORIZED,
        ),
        ("carol", "m", Some(mx()), StatusCode::NOT_FOUND),
        ("alice", "a.b", Some(mx()), StatusCode::BAD_REQUEST),
        ("alice", "a%0Ab", Some(mx()), StatusCode::BAD_REQUEST),
        ("..", "m", Some(mx()), StatusCode::NOT_FOUND),
    ];
    for (user, id, auth, expected) in cases {
        let got = deliver(&s, user, id, &body, auth.clone()).await;
        assert_eq!(got, expected, "{user}/{id} with {auth:?}");
    }
    // Deliveries count against the quota, preamble included.
    assert_eq!(
        deliver(&s, "alice", "big", &[0u8; 1300], Some(mx())).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    assert_eq!(
        deliver(&s, "alice", "fits", &[0u8; 1000], Some(mx())).await,
        StatusCode::OK
    );
    assert_eq!(get_json(&s, "/usage/alice").await["used_bytes"], json!(1737));
    // The incoming route exists only on the services listener.
    let r = client()
        .put(s.url("/incoming/alice/x"))
        .header("Authorization", mx())
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Services see health and metrics; only the backup service may take backups.
    let h = client().get(s.services_url("/health")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    let m = client()
        .get(s.services_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(r#"listener="services",route="/incoming/{user}/{blob_id}",method="PUT",status="200""#),
        "{m}"
    );
    let b = client()
        .get(s.services_url("/backup"))
        .header("Authorization", mx())
        .send()
        .await
        .unwrap();
    assert_eq!(b.status(), StatusCode::FORBIDDEN);
    let b = client().get(s.services_url("/backup")).send().await.unwrap();
    assert_eq!(b.status(), StatusCode::UNAUTHORIZED);
}

on_both_backends!(
    two_consumers_never_reserve_the_same_item,
    two_consumers_never_reserve_the_same_item_s3,
    two_consumers_never_reserve_the_same_item_case
);
async fn two_consumers_never_reserve_the_same_item_case(b: Backend) {
    let s = b.start();
    for i in 0..20 {
        assert_eq!(
            deliver(&s, "alice", &format!("m{i:02}"), b"pgp", Some(mx())).await,
            StatusCode::OK
        );
    }
    let consumers: Vec<_> = (0..4)
        .map(|c| {
            let base = s.url("/blobs/alice/");
            tokio::spawn(async move {
                let raw = client()
                    .get(format!("{base}?namespace=MX&filter_flag=PENDING&order_by=%2Bdate"))
                    .header("Authorization", alice())
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let pending: Vec<String> = serde_json::from_slice(&raw).unwrap();
                let mut won = Vec::new();
                // Consumers walk the list from different ends to collide as much as possible.
                let order: Vec<_> = if c % 2 == 0 {
                    pending
                } else {
                    pending.into_iter().rev().collect()
                };
                for id in order {
                    let r = client()
                        .post(format!("{base}{id}?namespace=MX&expect=PENDING"))
                        .header("Authorization", alice())
                        .body(r#"["PROCESSING"]"#)
                        .send()
                        .await
                        .unwrap();
                    match r.status() {
                        StatusCode::OK => won.push(id),
                        StatusCode::CONFLICT => {}
                        other => panic!("reservation got {other}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in consumers {
        all.extend(c.await.unwrap());
    }
    all.sort();
    let expected: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(all, expected, "every item reserved exactly once");
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX&filter_flag=PROCESSING&only_count=1").await,
        json!({"count": 20})
    );
    // A consumer finishes an item: PROCESSED, then delete.
    assert_eq!(
        post_flags(
            &s,
            "/blobs/alice/m00?namespace=MX&expect=PROCESSING",
            r#"["PROCESSED"]"#
        )
        .await,
        StatusCode::OK
    );
    let d = send(&s, Method::DELETE, "/blobs/alice/m00?namespace=MX", None).await;
    assert_eq!(d.status(), StatusCode::OK);
}

on_both_backends!(
    reservations_of_a_crashed_consumer_expire,
    reservations_of_a_crashed_consumer_expire_s3,
    reservations_of_a_crashed_consumer_expire_case
);
async fn reservations_of_a_crashed_consumer_expire_case(b: Backend) {
    let s = b.start_with(&["--processing-timeout", "1s"]);
    assert_eq!(deliver(&s, "alice", "stuck", b"pgp", Some(mx())).await, StatusCode::OK);
    assert_eq!(
        post_flags(
            &s,
            "/blobs/alice/stuck?namespace=MX&expect=PENDING",
            r#"["PROCESSING"]"#
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX&filter_flag=PENDING").await,
        json!([])
    );
    // Renewing within the timeout keeps it.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        post_flags(
            &s,
            "/blobs/alice/stuck?namespace=MX&expect=PROCESSING",
            r#"["PROCESSING"]"#
        )
        .await,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX&filter_flag=PENDING").await,
        json!([])
    );
    // The consumer dies; after the timeout the item is offered again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX&filter_flag=PENDING").await,
        json!(["stuck"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/stuck?namespace=MX&only_flags=1").await,
        json!(["PENDING"])
    );
    assert_eq!(
        post_flags(
            &s,
            "/blobs/alice/stuck?namespace=MX&expect=PENDING",
            r#"["PROCESSING"]"#
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/stuck?namespace=MX&only_flags=1").await,
        json!(["PROCESSING"])
    );
}

#[tokio::test]
async fn a_delivery_to_an_id_on_disk_but_not_in_the_index_is_refused_and_changes_nothing() {
    let s = start();
    // Loads alice's index, so that what is placed below is not in it.
    assert_eq!(deliver(&s, "alice", "first", b"x", Some(mx())).await, StatusCode::OK);
    let path = s
        .data()
        .join(blobs_server::fs::layout::relative_blob_path("alice", "MX", "taken"));
    let flags = blobs_server::fs::layout::with_suffix(&path, blobs_server::fs::layout::FLAGS_SUFFIX);
    // A blob on disk that the index does not know, as something outside the server can leave.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"the earlier bytes").unwrap();
    std::fs::write(&flags, r#"["PROCESSED"]"#).unwrap();

    assert_eq!(
        deliver(&s, "alice", "taken", b"new bytes", Some(mx())).await,
        StatusCode::CONFLICT
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"the earlier bytes");
    assert_eq!(std::fs::read_to_string(&flags).unwrap(), r#"["PROCESSED"]"#);
}
