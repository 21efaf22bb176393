//! `openapi.yaml` against the server: every documented operation exists, no other method
//! answers on a documented path, every route in the source is documented, and every status
//! the server answered during a broad run of requests is documented for its operation.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use reqwest::Method;
use yaml_rust2::{Yaml, YamlLoader};

type Doc = BTreeMap<(String, String), BTreeMap<String, BTreeSet<u16>>>;

fn load_doc() -> Doc {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let yaml = YamlLoader::load_from_str(&text).unwrap().remove(0);
    assert_eq!(yaml["openapi"].as_str(), Some("3.0.3"));
    let mut doc = Doc::new();
    for (path, item) in yaml["paths"].as_hash().unwrap() {
        let path = path.as_str().unwrap().to_owned();
        let listeners: &[&str] = match item["x-listener"].as_str() {
            Some("public") => &["public"],
            Some("services") => &["services"],
            Some("both") => &["public", "services"],
            other => panic!("{path}: x-listener {other:?}"),
        };
        for (method, op) in item.as_hash().unwrap() {
            let method = method.as_str().unwrap();
            if method.starts_with("x-") || method == "parameters" {
                continue;
            }
            let statuses: BTreeSet<u16> = op["responses"]
                .as_hash()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"))
                .keys()
                .map(|k| match k {
                    Yaml::String(s) => s.parse().unwrap(),
                    Yaml::Integer(i) => *i as u16,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert!(op["summary"].as_str().is_some(), "{method} {path} has no summary");
            for l in listeners {
                doc.entry((l.to_string(), path.clone()))
                    .or_default()
                    .insert(method.to_uppercase(), statuses.clone());
            }
        }
    }
    doc
}

/// Route paths registered in a source file (`.route("PATH", ...)`).
fn routes_in_source(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.match_indices(".route(")
        .map(|(i, m)| {
            let rest = text[i + m.len()..].trim_start();
            let rest = rest.strip_prefix('"').expect("route paths are literals");
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn concrete(path: &str) -> String {
    path.replace("{user}", "alice").replace("{blob_id}", "probe")
}

fn credentials(listener: &str, path: &str) -> String {
    match (listener, path) {
        ("public", _) => alice(),
        (_, p) if p.starts_with("/backup") => header_value("backup", "backup-token"),
        _ => mx(),
    }
}

#[tokio::test]
async fn the_document_matches_the_server() {
    let doc = load_doc();
    for (listener, file) in [("public", "http/api.rs"), ("services", "http/services.rs")] {
        let documented: BTreeSet<String> = doc
            .keys()
            .filter(|(l, _)| l == listener)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(routes_in_source(file), documented, "routes of the {listener} listener");
    }

    let s = start_with(&["--quota", "100000", "--max-blob-size", "50000"]);
    let base = |listener: &str, path: &str| match listener {
        "public" => s.url(path),
        _ => s.services_url(path),
    };
    assert_eq!(put(&s, "/blobs/alice/probe", b"probe blob").await, StatusCode::OK);
    for ((listener, path), ops) in &doc {
        let url = base(listener, &concrete(path));
        for method in ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"] {
            let r = client()
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .header("Authorization", credentials(listener, path))
                .body("[]")
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert!(!body.contains("no such route"), "{method} {listener} {path}");
            // HTTP lets every GET answer HEAD too.
            if ops.contains_key(method) || (method == "HEAD" && ops.contains_key("GET")) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {listener} {path}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {listener} {path} is undocumented"
                );
            }
        }
        // Restore the probe blob for the next path.
        put(&s, "/blobs/alice/probe?overwrite=1", b"probe blob").await;
    }

    // A broad run of good and bad requests; then every status the server counted must be
    // documented for its operation.
    let bob = header_value("bob", "bob-token");
    let big = vec![0u8; 60_000];
    let fits = vec![0u8; 40_000];
    /// Method, path, credentials, body, extra headers.
    type Request<'a> = (Method, String, Option<String>, Vec<u8>, Vec<(&'a str, String)>);
    let requests: Vec<Request> = vec![
        (
            Method::GET,
            "/blobs/alice/probe".into(),
            Some(alice()),
            vec![],
            vec![("Range", "bytes=0-1".into())],
        ),
        (
            Method::GET,
            "/blobs/alice/probe".into(),
            Some(alice()),
            vec![],
            vec![("Range", "bytes=99-".into())],
        ),
        (
            Method::HEAD,
            "/blobs/alice/probe".into(),
            Some(alice()),
            vec![],
            vec![("Range", "bytes=0-1".into())],
        ),
        (
            Method::HEAD,
            "/blobs/alice/missing".into(),
            Some(alice()),
            vec![],
            vec![],
        ),
        (Method::GET, "/blobs/alice/missing".into(), None, vec![], vec![]),
        (
            Method::GET,
            "/blobs/alice/probe".into(),
            Some(bob.clone()),
            vec![],
            vec![],
        ),
        (Method::GET, "/blobs/alice/a.b".into(), Some(alice()), vec![], vec![]),
        (
            Method::PUT,
            "/blobs/alice/probe".into(),
            Some(alice()),
            b"x".to_vec(),
            vec![],
        ),
        (
            Method::PUT,
            "/blobs/alice/big".into(),
            Some(alice()),
            big.clone(),
            vec![],
        ),
        (
            Method::PUT,
            "/blobs/alice/f1".into(),
            Some(alice()),
            fits.clone(),
            vec![],
        ),
        (
            Method::PUT,
            "/blobs/alice/f2".into(),
            Some(alice()),
            fits.clone(),
            vec![],
        ),
        (
            Method::PUT,
            "/blobs/alice/f3".into(),
            Some(alice()),
            fits.clone(),
            vec![],
        ),
        (
            Method::PUT,
            "/blobs/alice/probe?overwrite=1".into(),
            Some(alice()),
            b"y".to_vec(),
            vec![("If-Match", "\"old\"".into())],
        ),
        (
            Method::POST,
            "/blobs/alice/probe".into(),
            Some(alice()),
            b"[\"NOPE\"]".to_vec(),
            vec![],
        ),
        (
            Method::POST,
            "/blobs/alice/probe".into(),
            Some(alice()),
            b"not json".to_vec(),
            vec![],
        ),
        (
            Method::POST,
            "/blobs/alice/probe?expect=PENDING".into(),
            Some(alice()),
            b"[]".to_vec(),
            vec![],
        ),
        (
            Method::POST,
            "/blobs/alice/probe".into(),
            Some(alice()),
            vec![b' '; 5000],
            vec![],
        ),
        (
            Method::POST,
            "/blobs/alice/missing".into(),
            Some(alice()),
            b"[]".to_vec(),
            vec![],
        ),
        (
            Method::DELETE,
            "/blobs/alice/missing".into(),
            Some(alice()),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            "/blobs/alice/?filter_flag=NOPE".into(),
            Some(alice()),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            "/blobs/alice/?order_by=size".into(),
            Some(alice()),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            "/blobs/alice/?limit=1".into(),
            Some(alice()),
            vec![],
            vec![],
        ),
        (Method::GET, "/blobs/bob/".into(), Some(alice()), vec![], vec![]),
        (Method::GET, "/usage/bob".into(), Some(alice()), vec![], vec![]),
        (Method::GET, "/usage/alice".into(), None, vec![], vec![]),
    ];
    for (method, path, auth, body, headers) in requests {
        let mut req = client().request(method, s.url(&path)).body(body);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send().await.unwrap();
    }
    let services: Vec<(Method, &str, Option<String>, Vec<u8>)> = vec![
        (Method::PUT, "/incoming/alice/m1", Some(mx()), b"pgp".to_vec()),
        (Method::PUT, "/incoming/alice/m1", Some(mx()), b"pgp".to_vec()),
        (Method::PUT, "/incoming/carol/m1", Some(mx()), b"pgp".to_vec()),
        (Method::PUT, "/incoming/alice/a.b", Some(mx()), b"pgp".to_vec()),
        (Method::PUT, "/incoming/alice/m2", None, b"pgp".to_vec()),
        (Method::PUT, "/incoming/alice/m3", Some(mx()), fits.clone()),
        (Method::PUT, "/incoming/alice/m4", Some(mx()), big.clone()),
        (Method::GET, "/backup", Some(mx()), vec![]),
        (
            Method::GET,
            "/backup/carol",
            Some(header_value("backup", "backup-token")),
            vec![],
        ),
        (
            Method::GET,
            "/backup/alice",
            Some(header_value("backup", "backup-token")),
            vec![],
        ),
    ];
    for (method, path, auth, body) in services {
        let mut req = client().request(method, s.services_url(path)).body(body);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send().await.unwrap().bytes().await.unwrap();
    }

    let mut seen = BTreeSet::new();
    for url in [s.url("/metrics"), s.services_url("/metrics")] {
        let text = client().get(url).send().await.unwrap().text().await.unwrap();
        for line in text.lines().filter(|l| l.starts_with("blobs_http_requests_total{")) {
            let labels = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
            let get = |key: &str| {
                let at = labels.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
                labels[at..at + labels[at..].find('"').unwrap()].to_owned()
            };
            let (listener, route, method) = (get("listener"), get("route"), get("method"));
            let status: u16 = get("status").parse().unwrap();
            if status == 405 {
                // The probes above: documented once for all paths.
                continue;
            }
            let documented = doc
                .get(&(listener.clone(), route.clone()))
                .and_then(|ops| {
                    ops.get(&method)
                        .or(if method == "HEAD" { ops.get("GET") } else { None })
                })
                .unwrap_or_else(|| panic!("{method} {listener} {route} answered but is undocumented"));
            assert!(
                documented.contains(&status),
                "{method} {route} on {listener} answered {status}, documented {documented:?}"
            );
            seen.insert(status);
        }
    }
    // The run did reach the interesting statuses.
    for st in [200, 206, 400, 401, 403, 404, 406, 409, 412, 413, 416, 507] {
        assert!(seen.contains(&st), "no request answered {st}: {seen:?}");
    }
}
