//! Scale-out survives the loss of a node. Three Garage nodes (replication factor 3) and three
//! etcd members on loopback, two blobs-server instances (each talking to the Garage node of
//! its own machine, as deployed, and to every etcd member), and a bounded load of uploads and
//! downloads from eight users. During the load one Garage node is killed (SIGKILL) and later
//! started again, then one etcd member (the first every server asks) the same way. The node
//! killed is not one a server talks to: losing that one makes its server answer 503 until
//! it returns (`docs/scaling.md`, measured by hand).
//!
//! Wanted: no acknowledged blob is lost or changed; every request either succeeds or gets a
//! 503 with `Retry-After`, never another answer or a cut connection; after a node returns,
//! the service is whole again without a manual step. The test prints, per phase, the share
//! of requests that failed and how long failures went on after the node returned
//! (`docs/scaling.md` records them).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{self, Cluster};
use common::{Running, StatusCode, client, header_value};
use futures::StreamExt as _;

const USERS: usize = 8;
/// The phases of the load: what is down, and for how long the load runs in it.
const PHASES: [(&str, Option<&str>, Duration); 5] = [
    ("all nodes up", None, Duration::from_secs(3)),
    ("Garage node 3 killed", Some("3"), Duration::from_secs(6)),
    ("Garage node 3 back", None, Duration::from_secs(4)),
    ("etcd member 1 killed", Some("etcd"), Duration::from_secs(6)),
    ("etcd member 1 back", None, Duration::from_secs(4)),
];

/// What the load saw in one phase: the answers that came in it (an answer that comes after
/// a node was killed counts in that node's phase, whenever its request was sent).
#[derive(Default, Clone)]
struct Tally {
    requests: u64,
    unavailable: u64,
    /// Since the phase began, when the last 503 was answered.
    last_failure: Option<Duration>,
}

struct Shared {
    phase: Mutex<(usize, Instant)>,
    tallies: Mutex<Vec<Tally>>,
    /// Answers that must never happen, described.
    wrong: Mutex<Vec<String>>,
    /// Every acknowledged blob: (user, id) -> bytes.
    acked: Mutex<HashMap<(usize, String), Vec<u8>>>,
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, status: StatusCode, retry_after: bool, what: &str) {
        let (phase, began) = *self.phase.lock().unwrap();
        let mut tallies = self.tallies.lock().unwrap();
        let t = &mut tallies[phase];
        t.requests += 1;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            t.unavailable += 1;
            t.last_failure = Some(began.elapsed());
            if !retry_after {
                self.wrong
                    .lock()
                    .unwrap()
                    .push(format!("{what}: 503 without Retry-After"));
            }
        }
    }

    fn wrong(&self, what: String) {
        self.wrong.lock().unwrap().push(what);
    }
}

fn auth(user: usize) -> String {
    header_value(&format!("u{user}"), &format!("u{user}-token"))
}

/// The bytes of a blob, from its id: every read can be checked.
fn body_of(id: &str) -> Vec<u8> {
    let seed = id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let len = 2000 + (seed % 6000) as usize;
    (0..len)
        .map(|i| (seed.wrapping_add(i as u64 * 2_654_435_761) >> 7) as u8)
        .collect()
}

async fn worker(user: usize, servers: Arc<Vec<String>>, shared: Arc<Shared>) {
    let http = client();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("u{user}-{n}");
        let upload_to = &servers[(n % 2) as usize];
        let body = body_of(&id);
        let sent = http
            .put(format!("{upload_to}/blobs/u{user}/{id}"))
            .header("Authorization", auth(user))
            .body(body.clone())
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status();
                shared.record(status, r.headers().contains_key("retry-after"), &format!("PUT {id}"));
                match status {
                    StatusCode::OK => {
                        shared.acked.lock().unwrap().insert((user, id.clone()), body);
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {}
                    other => shared.wrong(format!("PUT {id}: {other}: {}", r.text().await.unwrap_or_default())),
                }
            }
            Err(e) => shared.wrong(format!("PUT {id}: no answer: {e}")),
        }
        // Read back an earlier blob of this user's from the other server.
        let earlier = {
            let acked = shared.acked.lock().unwrap();
            let k = n / 2;
            let id = format!("u{user}-{}", k.max(1));
            acked.get(&(user, id.clone())).map(|b| (id, b.clone()))
        };
        if let Some((id, bytes)) = earlier {
            let read_from = &servers[((n + 1) % 2) as usize];
            match http
                .get(format!("{read_from}/blobs/u{user}/{id}"))
                .header("Authorization", auth(user))
                .timeout(Duration::from_secs(30))
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status();
                    let retry = r.headers().contains_key("retry-after");
                    shared.record(status, retry, &format!("GET {id}"));
                    match status {
                        StatusCode::OK => match r.bytes().await {
                            Ok(got) if got.as_ref() == bytes.as_slice() => {}
                            Ok(got) => shared.wrong(format!(
                                "GET {id}: {} bytes, not the {} acknowledged",
                                got.len(),
                                bytes.len()
                            )),
                            Err(e) => shared.wrong(format!("GET {id}: the body broke off: {e}")),
                        },
                        StatusCode::SERVICE_UNAVAILABLE => {}
                        other => shared.wrong(format!("GET {id} (acknowledged): {other}")),
                    }
                }
                Err(e) => shared.wrong(format!("GET {id}: no answer: {e}")),
            }
        }
    }
}

fn start_server(cluster: &Cluster, endpoint: &str, tokens: &str) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let e = &cluster.env;
    let args = [
        "--storage-backend",
        "s3",
        "--s3-endpoint",
        endpoint,
        "--s3-bucket",
        &e["SOLEDAD_S3_BUCKET"],
        "--s3-region",
        &e["SOLEDAD_S3_REGION"],
        "--etcd",
        &e["SOLEDAD_ETCD"],
        "--s3-prefix",
        "nodeloss",
    ];
    let mut command = common::server_command();
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        command.env(k, &e[k]);
    }
    (
        common::start_command_with_tokens(command, dir.path(), &args, tokens),
        dir,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_survives_the_loss_of_a_garage_node_and_an_etcd_member() {
    if !cluster::available() {
        return;
    }
    let cluster = Cluster::start_with_etcd_members(3);
    assert_eq!(cluster.env["SOLEDAD_ETCD"].split(',').count(), 3);
    let endpoints: Vec<&str> = cluster.env["SOLEDAD_S3_ENDPOINTS"].split(',').collect();
    let tokens: String = (0..USERS).map(|u| format!("u{u}:u{u}-token\n")).collect();
    let (a, _a_dir) = start_server(&cluster, endpoints[0], &tokens);
    let (b, _b_dir) = start_server(&cluster, endpoints[1], &tokens);
    let servers = Arc::new(vec![format!("http://{}", a.addr), format!("http://{}", b.addr)]);

    let shared = Arc::new(Shared {
        phase: Mutex::new((0, Instant::now())),
        tallies: Mutex::new(vec![Tally::default(); PHASES.len()]),
        wrong: Mutex::new(Vec::new()),
        acked: Mutex::new(HashMap::new()),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..USERS)
        .map(|u| tokio::spawn(worker(u, servers.clone(), shared.clone())))
        .collect();
    let mut down: Option<&str> = None;
    for (i, (_, kill, length)) in PHASES.iter().enumerate() {
        // Bring back what the phase before took down, then take down this phase's node.
        if let Some(node) = down.take() {
            let node = node.to_owned();
            let c = &cluster;
            tokio::task::block_in_place(|| c.restart(&node));
        }
        *shared.phase.lock().unwrap() = (i, Instant::now());
        if let Some(node) = kill {
            tokio::task::block_in_place(|| cluster.kill(node));
            down = Some(node);
        }
        tokio::time::sleep(*length).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let tallies = shared.tallies.lock().unwrap().clone();
    println!("phase                    requests  failed (503)  share   failures until");
    for ((name, _, _), t) in PHASES.iter().zip(&tallies) {
        println!(
            "{name:<24} {:>8}  {:>12}  {:>5.1}%  {}",
            t.requests,
            t.unavailable,
            100.0 * t.unavailable as f64 / t.requests.max(1) as f64,
            t.last_failure
                .map_or("none".into(), |d| format!("{:.1} s into the phase", d.as_secs_f64()))
        );
    }
    let wrong = shared.wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "{} wrong answers:\n{}", wrong.len(), wrong.join("\n"));
    for t in &tallies {
        assert!(t.requests > 20, "the load stalled: {} requests in a phase", t.requests);
    }

    // Whole again: every acknowledged blob reads back unchanged from both servers, and every
    // user's listing holds exactly the blobs acknowledged or written (an upload whose answer
    // was a 503 may have been written all the same, but whole).
    let acked = shared.acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "{} blobs acknowledged", acked.len());
    let http = client();
    for server in servers.iter() {
        // A GET of `path` under a user's blobs, its status and body.
        let read = |user: usize, path: String| {
            let req = http
                .get(format!("{server}/blobs/u{user}/{path}"))
                .header("Authorization", auth(user));
            async move {
                let r = req.send().await.unwrap();
                (r.status(), r.bytes().await.unwrap().to_vec())
            }
        };
        // Sixteen reads at a time: thousands of blobs.
        let reads: Vec<_> = futures::stream::iter(&acked)
            .map(|((user, id), bytes)| {
                let read = read(*user, id.clone());
                async move { (id, bytes, read.await) }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (id, bytes, (status, got)) in reads {
            assert_eq!(status, StatusCode::OK, "{id} from {server}");
            assert_eq!(&got, bytes, "{id} from {server}");
        }
        for user in 0..USERS {
            let (status, list) = read(user, String::new()).await;
            assert_eq!(status, StatusCode::OK);
            let listed: Vec<String> = serde_json::from_slice(&list).unwrap();
            for id in listed.iter().filter(|id| !acked.contains_key(&(user, (*id).clone()))) {
                let (status, got) = read(user, id.clone()).await;
                assert_eq!(status, StatusCode::OK, "listed {id} does not read");
                assert_eq!(got, body_of(id), "listed {id} is not whole");
            }
            let acked_here = acked.keys().filter(|(u, _)| *u == user).count();
            let listed_acked = listed
                .iter()
                .filter(|id| acked.contains_key(&(user, (*id).clone())))
                .count();
            assert_eq!(
                listed_acked, acked_here,
                "user {user}'s listing on {server} misses acknowledged blobs"
            );
        }
    }
}
