//! The client bandwidth limit of a workload's context really paces the transfers of the
//! workloads that drive the transfer manager, against a real server on loopback.

use std::path::Path;

use workloads::{Context, Params, Size, SyncDirection, Target, WorkloadKind};

const USER: &str = "bench";
const TOKEN: &str = "bench-token";
/// Bytes per second: low enough that the paced time dwarfs an unpaced transfer on loopback
/// (tens of milliseconds), so the lower bound below fails if the limit is not applied.
const LIMIT: u64 = 1_000_000;

/// A blobs server on 127.0.0.1 serving until the test's runtime ends.
async fn server(dir: &Path) -> String {
    std::fs::write(dir.join("tokens"), format!("{USER}:{TOKEN}\n")).unwrap();
    let config = blobs_server::Config::new("127.0.0.1:0".parse().unwrap(), dir.join("data"), dir.join("tokens"));
    assert!(config.listen.ip().is_loopback());
    let server = blobs_server::Server::bind(&config).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    assert!(url.starts_with("http://127.0.0.1:"));
    tokio::spawn(server.serve(std::future::pending::<()>()));
    url
}

fn context(url: &str, dir: &Path, round: u32, client_bandwidth: Option<u64>) -> Context {
    let work_dir = dir.join(format!("round{round}"));
    std::fs::create_dir_all(&work_dir).unwrap();
    Context {
        target: Some(Target {
            server: url.to_owned(),
            user: USER.into(),
            token: TOKEN.into(),
            services: None,
        }),
        work_dir,
        scenario_dir: dir.to_owned(),
        round,
        seed: 1,
        client_bandwidth,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_bandwidth_limit_paces_uploads_downloads_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let url = server(dir.path()).await;
    // 1 MB in 4 blobs, two transfers at a time: at LIMIT, about a second each way.
    let upload = Params::new(WorkloadKind::named("blobs.upload").unwrap(), 4, Size::Fixed(250_000), 2);
    let download = Params::new(
        WorkloadKind::named("blobs.download").unwrap(),
        4,
        Size::Fixed(250_000),
        2,
    );
    let sync_up = Params {
        direction: Some(SyncDirection::Up),
        ..Params::new(WorkloadKind::named("blobs.sync").unwrap(), 4, Size::Fixed(250_000), 2)
    };
    for (round, params) in [upload, download, sync_up].into_iter().enumerate() {
        let ctx = context(&url, dir.path(), round as u32, Some(LIMIT));
        let prepared = workloads::prepare(&params, &ctx).await.unwrap();
        let (outcome, _) = prepared.run(workloads::Measure::Timed).await.unwrap();
        let name = params.scenario_id();
        assert!(outcome.bytes >= 1_000_000, "{name}: moved {} bytes", outcome.bytes);
        // The limit holds the transfers to it, less the throttle's 50 ms burst allowance;
        // the margins leave room for a busy machine on the upper side only.
        let paced = outcome.bytes as f64 / LIMIT as f64;
        assert!(
            outcome.wall_s >= 0.8 * paced,
            "{name}: {} bytes in {:.3} s, faster than {LIMIT} B/s allows",
            outcome.bytes,
            outcome.wall_s
        );
        assert!(outcome.wall_s < 10.0 * paced + 5.0, "{name}: {:.3} s", outcome.wall_s);
    }
}
