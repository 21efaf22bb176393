//! The public blobs API of the `blobs-server` binary over loopback: every route, status code
//! and hostile input.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    upload_download_list_delete_round_trip,
    upload_download_list_delete_round_trip_s3,
    upload_download_list_delete_round_trip_case
);
async fn upload_download_list_delete_round_trip_case(b: Backend) {
    let s = b.start();
    let blob: &[u8] = b"0123456789abcdef-this-blob-ends-with-a-sixteen-byte-tag";
    assert_eq!(put(&s, "/blobs/alice/b1", blob).await, StatusCode::OK);
    assert_eq!(put(&s, "/blobs/alice/b1", blob).await, StatusCode::CONFLICT);

    let r = get(&s, "/blobs/alice/b1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], blob.len().to_string().as_str());
    assert_eq!(
        r.headers()["tag"].to_str().unwrap(),
        blobs_crypto::tag_header(blob).unwrap()
    );
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert!(r.headers().contains_key("etag"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), blob);

    // HEAD answers the same headers without a body.
    let head = send(&s, Method::HEAD, "/blobs/alice/b1", None).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], blob.len().to_string().as_str());

    assert_eq!(get_json(&s, "/blobs/alice/").await, json!(["b1"]));
    assert_eq!(get_json(&s, "/blobs/alice/?only_count=true").await, json!({"count": 1}));

    let del = send(&s, Method::DELETE, "/blobs/alice/b1", None).await;
    assert_eq!(del.status(), StatusCode::OK);
    let again = send(&s, Method::DELETE, "/blobs/alice/b1", None).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&s, "/blobs/alice/b1").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get_json(&s, "/blobs/alice/").await, json!([]));
    assert_eq!(get_json(&s, "/blobs/alice/?deleted=true").await, json!(["b1"]));
    // Counts never include tombstones or side files (spec bug 9).
    assert_eq!(get_json(&s, "/blobs/alice/?only_count=1").await, json!({"count": 0}));
    assert_eq!(
        get_json(&s, "/blobs/alice/?deleted=true&only_count=1").await,
        json!({"count": 1})
    );

    // Re-uploading clears the tombstone.
    assert_eq!(put(&s, "/blobs/alice/b1", b"again").await, StatusCode::OK);
    assert_eq!(get_json(&s, "/blobs/alice/?deleted=true").await, json!([]));
    assert_eq!(get_json(&s, "/blobs/alice/").await, json!(["b1"]));
    // On disk: the upstream layout, the blob and no tombstone.
    if s.fs {
        let shard = s.data().join("alice/default/b/b1/b1");
        assert_eq!(std::fs::read(shard.join("b1")).unwrap(), b"again");
        assert!(!shard.join("b1.deleted").exists());
    }
}

on_both_backends!(
    short_and_empty_blobs_have_no_tag_and_do_not_fail,
    short_and_empty_blobs_have_no_tag_and_do_not_fail_s3,
    short_and_empty_blobs_have_no_tag_and_do_not_fail_case
);
async fn short_and_empty_blobs_have_no_tag_and_do_not_fail_case(b: Backend) {
    let s = b.start();
    for (id, body) in [("empty", &b""[..]), ("short", &b"fifteen bytes.."[..])] {
        assert_eq!(put(&s, &format!("/blobs/alice/{id}"), body).await, StatusCode::OK);
        let r = get(&s, &format!("/blobs/alice/{id}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("tag").is_none());
        assert_eq!(r.headers()["content-length"], body.len().to_string().as_str());
        assert_eq!(r.bytes().await.unwrap().as_ref(), body);
    }
}

on_both_backends!(
    namespaces_are_separate,
    namespaces_are_separate_s3,
    namespaces_are_separate_case
);
async fn namespaces_are_separate_case(b: Backend) {
    let s = b.start();
    assert_eq!(put(&s, "/blobs/alice/same?namespace=MX", b"mail").await, StatusCode::OK);
    assert_eq!(put(&s, "/blobs/alice/same", b"attachment").await, StatusCode::OK);
    assert_eq!(
        put(&s, "/blobs/alice/other?namespace=MX", b"mail2").await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX").await,
        json!(["other", "same"])
    );
    assert_eq!(get_json(&s, "/blobs/alice/?namespace=default").await, json!(["same"]));
    let r = get(&s, "/blobs/alice/same?namespace=MX").await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"mail");
    // Deleting in one namespace leaves the other alone.
    let d = send(&s, Method::DELETE, "/blobs/alice/same?namespace=MX", None).await;
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(get(&s, "/blobs/alice/same").await.status(), StatusCode::OK);
    assert_eq!(
        get_json(&s, "/blobs/alice/?namespace=MX&deleted=1").await,
        json!(["same"])
    );
    assert_eq!(get_json(&s, "/blobs/alice/?deleted=1").await, json!([]));
}

on_both_backends!(
    listing_orders_filters_and_pages,
    listing_orders_filters_and_pages_s3,
    listing_orders_filters_and_pages_case
);
async fn listing_orders_filters_and_pages_case(b: Backend) {
    let s = b.start();
    for id in ["c", "a", "d", "b"] {
        assert_eq!(put(&s, &format!("/blobs/alice/{id}"), b"x").await, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(get_json(&s, "/blobs/alice/").await, json!(["a", "b", "c", "d"]));
    assert_eq!(
        get_json(&s, "/blobs/alice/?order_by=date").await,
        json!(["c", "a", "d", "b"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?order_by=%2Bdate").await,
        json!(["c", "a", "d", "b"])
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?order_by=-date").await,
        json!(["b", "d", "a", "c"])
    );

    assert_eq!(post_flags(&s, "/blobs/alice/a", r#"["PENDING"]"#).await, StatusCode::OK);
    assert_eq!(
        post_flags(&s, "/blobs/alice/d", r#"["PENDING","FAILED"]"#).await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/?filter_flag=PENDING&order_by=-date").await,
        json!(["d", "a"])
    );
    assert_eq!(get_json(&s, "/blobs/alice/?filter_flag=FAILED").await, json!(["d"]));
    assert_eq!(
        get_json(&s, "/blobs/alice/?filter_flag=PENDING&only_count=true").await,
        json!({"count": 2})
    );

    // Pages follow the Link header until there is none, in every order.
    for (order, expected) in [
        ("", vec!["a", "b", "c", "d"]),
        ("&order_by=date", vec!["c", "a", "d", "b"]),
        ("&order_by=-date", vec!["b", "d", "a", "c"]),
    ] {
        let mut next = Some(format!("/blobs/alice/?limit=3{order}"));
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(path) = next.take() {
            let r = get(&s, &path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            next = r.headers().get("link").map(|l| {
                let l = l.to_str().unwrap();
                l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_owned()
            });
            let ids: Vec<String> = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            seen.extend(ids);
            pages += 1;
        }
        assert_eq!(seen, expected, "{order}");
        assert_eq!(pages, 2, "{order}");
    }

    for bad in [
        "/blobs/alice/?order_by=size",
        "/blobs/alice/?order_by=+date",
        "/blobs/alice/?only_count=maybe",
        "/blobs/alice/?deleted=perhaps",
        "/blobs/alice/?limit=0",
        "/blobs/alice/?limit=-1",
        "/blobs/alice/?limit=ten",
        "/blobs/alice/?cursor=zzz",
        "/blobs/alice/?cursor=i.a&order_by=date",
        "/blobs/alice/?cursor=i.../x",
        "/blobs/alice/?cursor=t1.999999999999.a&order_by=date",
        "/blobs/alice/?deleted=1&filter_flag=PENDING",
        "/blobs/alice/?namespace=a/b",
    ] {
        assert_eq!(get(&s, bad).await.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        get(&s, "/blobs/alice/?filter_flag=DONE").await.status(),
        StatusCode::NOT_ACCEPTABLE
    );
}

on_both_backends!(
    flags_replace_validate_and_compare_and_set,
    flags_replace_validate_and_compare_and_set_s3,
    flags_replace_validate_and_compare_and_set_case
);
async fn flags_replace_validate_and_compare_and_set_case(b: Backend) {
    let s = b.start();
    assert_eq!(put(&s, "/blobs/alice/m", b"message").await, StatusCode::OK);
    assert_eq!(get_json(&s, "/blobs/alice/m?only_flags=true").await, json!([]));
    assert_eq!(post_flags(&s, "/blobs/alice/m", r#"["PENDING"]"#).await, StatusCode::OK);
    assert_eq!(get_json(&s, "/blobs/alice/m?only_flags=1").await, json!(["PENDING"]));
    // POST replaces, it does not add.
    assert_eq!(
        post_flags(&s, "/blobs/alice/m", r#"["PROCESSED","FAILED"]"#).await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/m?only_flags=1").await,
        json!(["PROCESSED", "FAILED"])
    );
    assert_eq!(post_flags(&s, "/blobs/alice/m", "[]").await, StatusCode::OK);
    assert_eq!(get_json(&s, "/blobs/alice/m?only_flags=1").await, json!([]));
    // The file beside the blob is upstream's JSON list.
    post_flags(&s, "/blobs/alice/m", r#"["PENDING"]"#).await;
    let flags_file = s.data().join("alice/default/m/m/m/m.flags");
    if s.fs {
        assert_eq!(std::fs::read_to_string(flags_file).unwrap(), r#"["PENDING"]"#);
    }

    assert_eq!(
        post_flags(&s, "/blobs/alice/m", r#"["DONE"]"#).await,
        StatusCode::NOT_ACCEPTABLE
    );
    for bad in [r#"["PENDING""#, r#"{"flags":[]}"#, "PENDING", r#"[1]"#, "", "\u{0}"] {
        assert_eq!(
            post_flags(&s, "/blobs/alice/m", bad).await,
            StatusCode::BAD_REQUEST,
            "{bad:?}"
        );
    }
    let not_utf8 = send(&s, Method::POST, "/blobs/alice/m", Some(vec![b'[', 0xff, 0xfe, b']'])).await;
    assert_eq!(not_utf8.status(), StatusCode::BAD_REQUEST);
    let huge = send(&s, Method::POST, "/blobs/alice/m", Some(vec![b' '; 10_000])).await;
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        post_flags(&s, "/blobs/alice/nope", r#"["PENDING"]"#).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&s, "/blobs/alice/nope?only_flags=1").await.status(),
        StatusCode::NOT_FOUND
    );

    // Compare-and-set: the flags change only if they are exactly the expected ones.
    assert_eq!(
        post_flags(&s, "/blobs/alice/m?expect=PENDING", r#"["PROCESSING"]"#).await,
        StatusCode::OK
    );
    assert_eq!(
        post_flags(&s, "/blobs/alice/m?expect=PENDING", r#"["PROCESSING"]"#).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post_flags(&s, "/blobs/alice/m?expect=", r#"["FAILED"]"#).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post_flags(&s, "/blobs/alice/m?expect=PENDING,BOGUS", "[]").await,
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(get_json(&s, "/blobs/alice/m?only_flags=1").await, json!(["PROCESSING"]));
    // Deleting removes the flags with the blob.
    assert_eq!(
        send(&s, Method::DELETE, "/blobs/alice/m", None).await.status(),
        StatusCode::OK
    );
    assert!(!s.fs || !s.data().join("alice/default/m/m/m/m.flags").exists());
}

on_both_backends!(
    replace_swaps_the_whole_blob_and_honours_if_match,
    replace_swaps_the_whole_blob_and_honours_if_match_s3,
    replace_swaps_the_whole_blob_and_honours_if_match_case
);
async fn replace_swaps_the_whole_blob_and_honours_if_match_case(b: Backend) {
    let s = b.start();
    let v1 = vec![1u8; 300_000];
    let v2 = vec![2u8; 200_000];
    assert_eq!(put(&s, "/blobs/alice/draft", &v1).await, StatusCode::OK);
    post_flags(&s, "/blobs/alice/draft", r#"["PENDING"]"#).await;
    let etag1 = get(&s, "/blobs/alice/draft").await.headers()["etag"].clone();

    // A plain PUT never overwrites; an explicit overwrite does.
    assert_eq!(put(&s, "/blobs/alice/draft", &v2).await, StatusCode::CONFLICT);
    assert_eq!(put(&s, "/blobs/alice/draft?overwrite=true", &v2).await, StatusCode::OK);
    let r = get(&s, "/blobs/alice/draft").await;
    let etag2 = r.headers()["etag"].clone();
    assert_ne!(etag1, etag2);
    assert_eq!(r.bytes().await.unwrap().as_ref(), v2.as_slice());
    // Flags survive a replacement; usage counts the new size only.
    assert_eq!(
        get_json(&s, "/blobs/alice/draft?only_flags=1").await,
        json!(["PENDING"])
    );
    assert_eq!(get_json(&s, "/usage/alice").await["used_bytes"], json!(200_000));

    // If-Match: only over the version the client saw.
    let stale = client()
        .put(s.url("/blobs/alice/draft?overwrite=1"))
        .header("Authorization", alice())
        .header("If-Match", etag1)
        .body(v1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let fresh = client()
        .put(s.url("/blobs/alice/draft?overwrite=1"))
        .header("Authorization", alice())
        .header("If-Match", etag2)
        .body(v1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);

    // Readers racing with replacements always see one whole version.
    let writer = {
        let url = s.url("/blobs/alice/draft?overwrite=1");
        let (v1, v2) = (v1.clone(), v2.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                let body = if i % 2 == 0 { v2.clone() } else { v1.clone() };
                let r = client()
                    .put(&url)
                    .header("Authorization", alice())
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            }
        })
    };
    for _ in 0..40 {
        let body = get(&s, "/blobs/alice/draft").await.bytes().await.unwrap();
        assert!(
            body == v1.as_slice() || body == v2.as_slice(),
            "a mixed version of {} bytes",
            body.len()
        );
    }
    writer.await.unwrap();
    // Replacing a blob that does not exist creates it, and clears a tombstone.
    assert_eq!(put(&s, "/blobs/alice/new?overwrite=true", b"n").await, StatusCode::OK);
    send(&s, Method::DELETE, "/blobs/alice/new", None).await;
    assert_eq!(put(&s, "/blobs/alice/new?overwrite=true", b"m").await, StatusCode::OK);
    assert_eq!(get_json(&s, "/blobs/alice/?deleted=1").await, json!([]));
    assert_eq!(
        put(&s, "/blobs/alice/x?overwrite=often", b"m").await,
        StatusCode::BAD_REQUEST
    );
}

on_both_backends!(
    byte_ranges_follow_rfc_7233,
    byte_ranges_follow_rfc_7233_s3,
    byte_ranges_follow_rfc_7233_case
);
async fn byte_ranges_follow_rfc_7233_case(b: Backend) {
    let s = b.start();
    let small: Vec<u8> = (0..100u8).collect();
    let large: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(put(&s, "/blobs/alice/small", &small).await, StatusCode::OK);
    assert_eq!(put(&s, "/blobs/alice/large", &large).await, StatusCode::OK);
    for (id, data) in [("small", &small), ("large", &large)] {
        let n = data.len() as u64;
        let path = format!("/blobs/alice/{id}");
        for (range, start, end) in [
            ("bytes=10-20".to_owned(), 10, 20),
            ("bytes=0-0".to_owned(), 0, 0),
            ("bytes=5-".to_owned(), 5, n - 1),
            ("bytes=-7".to_owned(), n - 7, n - 1),
            (format!("bytes=-{}", n + 50), 0, n - 1),
            (format!("bytes={}-{}", n - 3, n + 1000), n - 3, n - 1),
        ] {
            let r = client()
                .get(s.url(&path))
                .header("Authorization", alice())
                .header("Range", &range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{id} {range}");
            assert_eq!(
                r.headers()["content-range"].to_str().unwrap(),
                format!("bytes {start}-{end}/{n}")
            );
            assert_eq!(
                r.headers()["content-length"].to_str().unwrap(),
                (end - start + 1).to_string()
            );
            let body = r.bytes().await.unwrap();
            assert_eq!(body.as_ref(), &data[start as usize..=end as usize], "{id} {range}");
        }
        for range in [
            format!("bytes={n}-"),
            format!("bytes={}-{}", n, n + 5),
            "bytes=-0".into(),
            "bytes=5-1".into(),
            "bytes=abc".into(),
            "bytes=".into(),
            "bytes".into(),
            "bytes=1-2-3".into(),
            "bytes=18446744073709551616-".into(),
        ] {
            let r = client()
                .get(s.url(&path))
                .header("Authorization", alice())
                .header("Range", &range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{id} {range}");
            assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes */{n}"));
        }
        // Units the server does not know, and several ranges, get the whole blob.
        for range in ["items=0-5", "bytes=0-1,5-6"] {
            let r = client()
                .get(s.url(&path))
                .header("Authorization", alice())
                .header("Range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{range}");
            assert_eq!(r.bytes().await.unwrap().len() as u64, n);
        }
        // If-Range: a range of the current version only.
        let etag = get(&s, &path).await.headers()["etag"].clone();
        for (if_range, status) in [
            (etag.to_str().unwrap().to_owned(), StatusCode::PARTIAL_CONTENT),
            ("\"other\"".to_owned(), StatusCode::OK),
        ] {
            let r = client()
                .get(s.url(&path))
                .header("Authorization", alice())
                .header("Range", "bytes=1-2")
                .header("If-Range", if_range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status);
        }
    }
    // A Range header that is not even text.
    let r = client()
        .get(s.url("/blobs/alice/small"))
        .header("Authorization", alice())
        .header(
            "Range",
            reqwest::header::HeaderValue::from_bytes(b"bytes=\xff-1").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

on_both_backends!(
    quota_is_enforced_and_usage_is_exact,
    quota_is_enforced_and_usage_is_exact_s3,
    quota_is_enforced_and_usage_is_exact_case
);
async fn quota_is_enforced_and_usage_is_exact_case(b: Backend) {
    let s = b.start_with(&["--quota", "1000"]);
    assert_eq!(put(&s, "/blobs/alice/a", &[0u8; 600]).await, StatusCode::OK);
    assert_eq!(
        put(&s, "/blobs/alice/b?namespace=MX", &[0u8; 300]).await,
        StatusCode::OK
    );
    assert_eq!(
        put(&s, "/blobs/alice/c", &[0u8; 101]).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    // Without a Content-Length the limit is checked as the bytes arrive.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![0u8; 60]), Ok(vec![0u8; 60])];
    let streamed = client()
        .put(s.url("/blobs/alice/streamed"))
        .header("Authorization", alice())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(put(&s, "/blobs/alice/c", &[0u8; 100]).await, StatusCode::OK);
    let usage = get_json(&s, "/usage/alice").await;
    assert_eq!(usage["used_bytes"], json!(1000));
    assert_eq!(usage["quota_bytes"], json!(1000));
    assert_eq!(usage["blobs"], json!(3));
    assert_eq!(
        usage["namespaces"]["MX"],
        json!({"blobs": 1, "bytes": 300, "tombstones": 0})
    );
    // Deleting frees space at once (upstream's cached `du` did not, spec bug 10).
    send(&s, Method::DELETE, "/blobs/alice/a", None).await;
    let usage = get_json(&s, "/usage/alice").await;
    assert_eq!(usage["used_bytes"], json!(400));
    assert_eq!(usage["namespaces"]["default"]["tombstones"], json!(1));
    assert_eq!(put(&s, "/blobs/alice/d", &[0u8; 600]).await, StatusCode::OK);
    // Nothing of the refused uploads is left anywhere.
    assert_eq!(get(&s, "/blobs/alice/streamed").await.status(), StatusCode::NOT_FOUND);
    if s.fs {
        assert_eq!(std::fs::read_dir(s.data().join(".tmp")).unwrap().count(), 0);
    }
    // Another user's usage is theirs to see.
    let r = client()
        .get(s.url("/usage/bob"))
        .header("Authorization", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn usage_survives_a_restart_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let s = start_in(tmp.path(), &[]);
        put(&s, "/blobs/alice/a", &[1u8; 1234]).await;
        put(&s, "/blobs/alice/b?namespace=n2", &[1u8; 66]).await;
        put(&s, "/blobs/alice/c", &[1u8; 10]).await;
        send(&s, Method::DELETE, "/blobs/alice/c", None).await;
    }
    let s = start_in(tmp.path(), &[]);
    let usage = get_json(&s, "/usage/alice").await;
    assert_eq!(usage["used_bytes"], json!(1300));
    assert_eq!(usage["blobs"], json!(2));
    assert_eq!(get_json(&s, "/blobs/alice/?deleted=1").await, json!(["c"]));
}

on_both_backends!(
    credentials_are_checked_per_user_on_every_path,
    credentials_are_checked_per_user_on_every_path_s3,
    credentials_are_checked_per_user_on_every_path_case
);
async fn credentials_are_checked_per_user_on_every_path_case(b: Backend) {
    let s = b.start();
    assert_eq!(put(&s, "/blobs/alice/mine", b"secret").await, StatusCode::OK);
    let cases: Vec<(Option<reqwest::header::HeaderValue>, StatusCode)> = vec![
        (None, StatusCode::UNAUTHORIZED),
        (
            Some(header_value("alice", "wrong").parse().unwrap()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(header_value("carol", "alice-token").parse().unwrap()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(header_value("mx", "mx-token").parse().unwrap()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some("Token !!!not-base64!!!".parse().unwrap()),
            StatusCode::UNAUTHORIZED,
        ),
        (Some("Token bm9jb2xvbg==".parse().unwrap()), StatusCode::UNAUTHORIZED),
        (Some("Token //79".parse().unwrap()), StatusCode::UNAUTHORIZED),
        (
            Some("Basic YWxpY2U6YWxpY2UtdG9rZW4=".parse().unwrap()),
            StatusCode::UNAUTHORIZED,
        ),
        (Some("Token".parse().unwrap()), StatusCode::UNAUTHORIZED),
        (Some("".parse().unwrap()), StatusCode::UNAUTHORIZED),
        (
            Some(reqwest::header::HeaderValue::from_bytes(b"Token \xff\xfe").unwrap()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(header_value("bob", "bob-token").parse().unwrap()),
            StatusCode::FORBIDDEN,
        ),
    ];
    let routes = [
        (Method::GET, "/blobs/alice/mine"),
        (Method::HEAD, "/blobs/alice/mine"),
        (Method::GET, "/blobs/alice/mine?only_flags=1"),
        (Method::PUT, "/blobs/alice/new"),
        (Method::PUT, "/blobs/alice/mine?overwrite=1"),
        (Method::POST, "/blobs/alice/mine"),
        (Method::DELETE, "/blobs/alice/mine"),
        (Method::GET, "/blobs/alice/"),
        (Method::GET, "/usage/alice"),
        // Bob's credentials on a path that is not even valid are still just "not yours".
        (Method::GET, "/blobs/alice/..%2F..%2Fbob"),
    ];
    for (auth, expected) in &cases {
        for (method, path) in &routes {
            let mut req = client().request(method.clone(), s.url(path)).body("[]");
            if let Some(a) = auth {
                req = req.header("Authorization", a.clone());
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), *expected, "{method} {path} with {auth:?}");
            if *expected == StatusCode::UNAUTHORIZED {
                assert_eq!(r.headers()["www-authenticate"], "Token");
            }
        }
    }
    // Nothing above changed alice's blobs.
    assert_eq!(get_json(&s, "/blobs/alice/").await, json!(["mine"]));
    assert_eq!(get_json(&s, "/blobs/alice/mine?only_flags=1").await, json!([]));
    // Bob with his own credentials sees only his own (empty) space.
    let r = client()
        .get(s.url("/blobs/bob/"))
        .header("Authorization", header_value("bob", "bob-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"[]");
}

on_both_backends!(
    hostile_names_never_reach_the_filesystem,
    hostile_names_never_reach_the_filesystem_s3,
    hostile_names_never_reach_the_filesystem_case
);
async fn hostile_names_never_reach_the_filesystem_case(b: Backend) {
    let s = b.start();
    let long = "x".repeat(201);
    let bad_paths = [
        "/blobs/alice/..".to_owned(),
        "/blobs/alice/%2e%2e".to_owned(),
        "/blobs/alice/..%2F..%2Fetc".to_owned(),
        "/blobs/alice/a%2Fb".to_owned(),
        "/blobs/alice/a%5Cb".to_owned(),
        "/blobs/alice/a%0A".to_owned(),
        "/blobs/alice/a%00".to_owned(),
        "/blobs/alice/a%20b".to_owned(),
        "/blobs/alice/%C3%A9".to_owned(),
        "/blobs/alice/%FF".to_owned(),
        "/blobs/alice/a.flags".to_owned(),
        "/blobs/alice/a.deleted".to_owned(),
        "/blobs/alice/ok?namespace=..".to_owned(),
        "/blobs/alice/ok?namespace=".to_owned(),
        "/blobs/alice/ok?namespace=%2Ftmp".to_owned(),
        "/blobs/alice/ok?namespace=a%0A".to_owned(),
        "/blobs/alice/ok?namespace=%FF".to_owned(),
        format!("/blobs/alice/ok?namespace={long}"),
        format!("/blobs/alice/{long}"),
        "/blobs/..%2Falice/ok".to_owned(),
        "/blobs/%2e%2e/ok".to_owned(),
        "/blobs/alice%0A/ok".to_owned(),
        "/blobs/alice/a/b".to_owned(),
    ];
    for path in &bad_paths {
        for method in [Method::GET, Method::PUT, Method::POST, Method::DELETE] {
            let r = client()
                .request(method.clone(), s.url(path))
                .header("Authorization", alice())
                .body("[]")
                .send()
                .await
                .unwrap();
            let st = r.status();
            assert!(
                [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND, StatusCode::FORBIDDEN].contains(&st),
                "{method} {path} gave {st}"
            );
        }
    }
    // Dot segments that an HTTP client library would normalise away, sent as they are.
    for path in [
        "/blobs/alice/..",
        "/blobs/alice/.",
        "/blobs/../blobs/alice/x",
        "/blobs/alice/./x",
    ] {
        let out = raw(
            s.addr,
            format!(
                "PUT {path} HTTP/1.1\r\nHost: a\r\nAuthorization: {}\r\nContent-Length: 1\r\n\r\nx",
                alice()
            )
            .as_bytes(),
        );
        assert!(out.starts_with("HTTP/1.1 4"), "{path}: {out}");
    }
    let listing = format!("/blobs/alice/?namespace={long}");
    assert_eq!(get(&s, &listing).await.status(), StatusCode::BAD_REQUEST);
    // The only things on disk are the server's own directories and nothing of alice's.
    if !s.fs {
        return;
    }
    let mut entries: Vec<_> = std::fs::read_dir(s.data())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, [".lock", ".snapshots", ".tmp"]);
}

on_both_backends!(
    concurrent_uploads_of_one_id_have_exactly_one_winner,
    concurrent_uploads_of_one_id_have_exactly_one_winner_s3,
    concurrent_uploads_of_one_id_have_exactly_one_winner_case
);
async fn concurrent_uploads_of_one_id_have_exactly_one_winner_case(b: Backend) {
    let s = b.start();
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
    let stored = get(&s, "/blobs/alice/contested").await.bytes().await.unwrap();
    assert_eq!(stored.as_ref(), winners[0].as_bytes());
    assert_eq!(get_json(&s, "/usage/alice").await["used_bytes"], json!(stored.len()));
    if s.fs {
        assert_eq!(
            std::fs::read_dir(s.data().join(".tmp")).unwrap().count(),
            0,
            "temp files left"
        );
    }
}

on_both_backends!(
    concurrent_deletes_and_flag_changes_are_atomic,
    concurrent_deletes_and_flag_changes_are_atomic_s3,
    concurrent_deletes_and_flag_changes_are_atomic_case
);
async fn concurrent_deletes_and_flag_changes_are_atomic_case(b: Backend) {
    let s = b.start();
    put(&s, "/blobs/alice/d", b"x").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = s.url("/blobs/alice/d");
            tokio::spawn(async move {
                client()
                    .delete(url)
                    .header("Authorization", alice())
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::NOT_FOUND => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(get_json(&s, "/usage/alice").await["used_bytes"], json!(0));
}

on_both_backends!(
    oversized_bodies_are_refused,
    oversized_bodies_are_refused_s3,
    oversized_bodies_are_refused_case
);
async fn oversized_bodies_are_refused_case(b: Backend) {
    let s = b.start_with(&["--max-blob-size", "1000"]);
    assert_eq!(put(&s, "/blobs/alice/ok", &[0u8; 1000]).await, StatusCode::OK);
    assert_eq!(
        put(&s, "/blobs/alice/big", &[0u8; 1001]).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..3).map(|_| Ok(vec![0u8; 400])).collect();
    let streamed = client()
        .put(s.url("/blobs/alice/streamed"))
        .header("Authorization", alice())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(get_json(&s, "/blobs/alice/").await, json!(["ok"]));
    // Both backends cap a delivery's body alone, not the preamble stored before it, with a
    // declared length and without one.
    let deliver = |id: &str, body: reqwest::Body| {
        client()
            .put(s.services_url(&format!("/incoming/alice/{id}")))
            .header("Authorization", mx())
            .body(body)
            .send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.unwrap().status();
    assert_eq!(status(deliver("m1", vec![1u8; 1000].into()).await), StatusCode::OK);
    assert_eq!(
        status(deliver("m2", vec![1u8; 1001].into()).await),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let stream = |n: usize| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1u8; n / 2]), Ok(vec![1u8; n - n / 2])];
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };
    assert_eq!(status(deliver("m3", stream(1000)).await), StatusCode::OK);
    assert_eq!(status(deliver("m4", stream(1001)).await), StatusCode::PAYLOAD_TOO_LARGE);
    // A Content-Length that is not a number never reaches a handler.
    let out = raw(
        s.addr,
        format!(
            "PUT /blobs/alice/x HTTP/1.1\r\nHost: a\r\nAuthorization: {}\r\nContent-Length: lots\r\n\r\n",
            alice()
        )
        .as_bytes(),
    );
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test]
async fn slow_and_stalled_clients_are_cut_off() {
    let s = start_with(&["--header-timeout", "1s", "--idle-timeout", "1s"]);
    let t0 = std::time::Instant::now();
    // Headers that never end.
    let out = raw(s.addr, b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ");
    assert!(t0.elapsed() < std::time::Duration::from_secs(4), "{out}");
    // A body that stops halfway: the connection is closed and nothing is stored.
    let t1 = std::time::Instant::now();
    let out = raw(
        s.addr,
        format!(
            "PUT /blobs/alice/half HTTP/1.1\r\nHost: a\r\nAuthorization: {}\r\nContent-Length: 100\r\n\r\n0123456789",
            alice()
        )
        .as_bytes(),
    );
    assert!(
        t1.elapsed() < std::time::Duration::from_secs(4),
        "took {:?}: {out}",
        t1.elapsed()
    );
    assert!(!out.contains("200 OK"), "{out}");
    assert_eq!(get(&s, "/blobs/alice/half").await.status(), StatusCode::NOT_FOUND);
    // The server still answers everyone else.
    assert_eq!(client().get(s.url("/")).send().await.unwrap().status(), StatusCode::OK);
}

on_both_backends!(
    malformed_requests_get_4xx_never_5xx,
    malformed_requests_get_4xx_never_5xx_s3,
    malformed_requests_get_4xx_never_5xx_case
);
async fn malformed_requests_get_4xx_never_5xx_case(b: Backend) {
    let s = b.start();
    put(&s, "/blobs/alice/b", b"blob").await;
    let a = alice();
    let requests: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET /blobs/alice/b HTTP/1.1\r\nHost: a\r\nAuthorization: Token \xff\xff\r\n\r\n".to_vec(),
        [
            format!("GET /blobs/alice/b HTTP/1.1\r\nHost: a\r\nAuthorization: {a}\r\nRange: bytes=").as_bytes(),
            b"\xc3\x28-\r\n\r\n",
        ]
        .concat(),
        format!("GET /blobs/alice/%ZZ HTTP/1.1\r\nHost: a\r\nAuthorization: {a}\r\n\r\n").into_bytes(),
        format!("GET /blobs/alice/?namespace=%FF%FE HTTP/1.1\r\nHost: a\r\nAuthorization: {a}\r\n\r\n").into_bytes(),
        format!("GET /blobs/alice/?limit=1&limit=2 HTTP/1.1\r\nHost: a\r\nAuthorization: {a}\r\n\r\n").into_bytes(),
        [
            format!("POST /blobs/alice/b HTTP/1.1\r\nHost: a\r\nAuthorization: {a}\r\nContent-Length: 3\r\n\r\n")
                .as_bytes(),
            b"[\xff]",
        ]
        .concat(),
        format!(
            "GET /blobs/alice/b HTTP/1.1\r\nHost: a\r\nAuthorization: {a}\r\nX-Big: {}\r\n\r\n",
            "y".repeat(100_000)
        )
        .into_bytes(),
    ];
    for req in requests {
        let out = raw(s.addr, &req);
        let status: u16 = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{:?} gave {:?}",
            String::from_utf8_lossy(&req[..req.len().min(80)]),
            &out[..out.len().min(100)]
        );
    }
    assert_eq!(get(&s, "/blobs/alice/b").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn info_health_robots_and_metrics() {
    let s = start();
    let r = client().get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["blobs"], true);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["capabilities"].as_array().unwrap().contains(&json!("range")));
    let h = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    let robots = client().get(s.url("/robots.txt")).send().await.unwrap();
    assert!(robots.text().await.unwrap().contains("Disallow: /"));
    assert_eq!(
        client().get(s.url("/nope")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client().patch(s.url("/blobs/alice/x")).send().await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );

    put(&s, "/blobs/alice/m1", &[7u8; 5000]).await;
    get(&s, "/blobs/alice/m1").await.bytes().await.unwrap();
    get(&s, "/blobs/alice/missing").await;
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let find = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    assert!(
        find(
            r#"blobs_http_requests_total{listener="public",route="/blobs/{user}/{blob_id}",method="PUT",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(find(
        r#"blobs_http_requests_total{listener="public",route="/blobs/{user}/{blob_id}",method="GET",status="404"} 1"#
    ));
    assert!(find("blobs_http_request_duration_seconds_bucket{"));
    assert!(find("blobs_http_requests_in_flight 1"), "{text}");
    assert!(find("blobs_blob_bytes_received_total 5000"));
    assert!(find("blobs_blob_bytes_sent_total 5000"));
    assert!(find("blobs_storage_used_bytes 5000"));
    assert!(find("blobs_storage_blobs 1"));
    // Labels carry routes, never users or ids.
    assert!(!text.contains("m1") && !text.contains("alice"));
}

on_both_backends!(
    uploads_past_the_bound_wait_then_get_503,
    uploads_past_the_bound_wait_then_get_503_s3,
    uploads_past_the_bound_wait_then_get_503_case
);
/// Uploads wait for one of `max_concurrent_writes` slots, then get 503; flag changes and
/// deletions have slots of their own (their bound is tested in `lib.rs`), so slow uploads do
/// not hold them up.
async fn uploads_past_the_bound_wait_then_get_503_case(b: Backend) {
    use std::time::{Duration, Instant};
    let s = b.start_with(&["--max-concurrent-writes", "1", "--write-wait", "1s"]);
    assert_eq!(put(&s, "/blobs/alice/kept", b"kept").await, StatusCode::OK);

    // An upload that holds the only write slot until its body is finished.
    let (more, body) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    more.unbounded_send(Ok(vec![1; 10])).unwrap();
    let holder = {
        let url = s.url("/blobs/alice/holder");
        tokio::spawn(async move {
            let r = client()
                .put(url)
                .header("Authorization", alice())
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap();
            r.status()
        })
    };
    // Until the holder has its slot, a probe upload may take it and succeed; once one gets
    // 503, the holder has it.
    let mut probes = 0;
    let waited = loop {
        probes += 1;
        assert!(probes <= 20, "the holder never took the write slot");
        let asked = Instant::now();
        let r = send(
            &s,
            Method::PUT,
            &format!("/blobs/alice/probe-{probes}"),
            Some(b"p".to_vec()),
        )
        .await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.headers()["retry-after"], "1");
            break asked.elapsed();
        }
        assert_eq!(r.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // It waited its turn for `write_wait` first.
    assert!(waited >= Duration::from_millis(950), "{waited:?}");

    // Flag changes and deletions are not held up by the upload.
    assert_eq!(
        post_flags(&s, "/blobs/alice/kept", r#"["PENDING"]"#).await,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&s, "/blobs/alice/kept?only_flags=true").await,
        json!(["PENDING"])
    );
    let del = send(&s, Method::DELETE, "/blobs/alice/kept", None).await;
    assert_eq!(del.status(), StatusCode::OK);

    more.unbounded_send(Ok(vec![2; 10])).unwrap();
    drop(more);
    assert_eq!(holder.await.unwrap(), StatusCode::OK);
    // With the slot free again, the refused upload goes through.
    let refused = format!("/blobs/alice/probe-{probes}");
    assert_eq!(get(&s, &refused).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(put(&s, &refused, b"p").await, StatusCode::OK);
    let ids: Vec<String> = serde_json::from_value(get_json(&s, "/blobs/alice/").await).unwrap();
    assert!(
        ids.contains(&"holder".to_owned()) && !ids.contains(&"kept".to_owned()),
        "{ids:?}"
    );
}
