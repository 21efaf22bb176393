//! The history's round trip through a published site, over a real HTTP server on loopback:
//! published, fetched, and refused when damaged; a missing history starts anew, an
//! unreachable one is an error unless a new one is asked for.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Repo, bench, stderr};

/// A static file server (Python's) on a free loopback port.
struct Site {
    child: Child,
    port: u16,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Site {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 serves the site in this test");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the file server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Site { child, port }
}

fn fetch(url: &str, db: &Path) -> std::process::Output {
    bench(&[
        "history".as_ref(),
        "fetch".as_ref(),
        url.as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
    ])
}

#[test]
fn a_published_history_comes_back_whole_and_a_damaged_one_is_refused() {
    let repo = Repo::new();
    repo.commit("c1");
    let run = repo.bench_run(&[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let db = repo.out().join("bench.sqlite");
    let site = repo.out().join("site");
    let out = bench(&[
        "history".as_ref(),
        "publish".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--out".as_ref(),
        site.join("bench.sqlite.gz").as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        site.join("truncated.gz"),
        &std::fs::read(site.join("bench.sqlite.gz")).unwrap()[..200],
    )
    .unwrap();
    std::fs::write(site.join("text.gz"), b"<html>not found</html>").unwrap();
    let server = serve(&site);
    let url = |name: &str| format!("http://127.0.0.1:{}/{name}", server.port);

    let fetched = repo.out().join("fetched.sqlite");
    let out = fetch(&url("bench.sqlite.gz"), &fetched);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("history: 1 runs"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let runs = |p: &Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(runs(&fetched), 1);
    // An existing database is not replaced by accident.
    let again = fetch(&url("bench.sqlite.gz"), &fetched);
    assert!(
        !again.status.success() && stderr(&again).contains("--force"),
        "{}",
        stderr(&again)
    );

    for damaged in ["truncated.gz", "text.gz"] {
        let target = repo.out().join(format!("{damaged}.sqlite"));
        let out = fetch(&url(damaged), &target);
        assert!(!out.status.success(), "{damaged} was accepted");
        assert!(
            stderr(&out).contains("refusing the history downloaded from"),
            "{}",
            stderr(&out)
        );
        assert!(!target.exists(), "a damaged download left a database behind");
    }

    // Missing (404): a new history, with a warning, and success.
    let target = repo.out().join("new.sqlite");
    let out = fetch(&url("nothing-here.gz"), &target);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("starting a new one"), "{}", stderr(&out));
    assert!(!target.exists());

    // Unreachable: an error (an outage must not lead to a one-run history being published),
    // unless a new history is asked for.
    let down = "http://127.0.0.1:9/bench.sqlite.gz";
    let out = fetch(down, &target);
    assert!(!out.status.success(), "an unreachable site started a new history");
    assert!(stderr(&out).contains("--new-if-unavailable"), "{}", stderr(&out));
    assert!(!target.exists());
    let out = bench(&[
        "history".as_ref(),
        "fetch".as_ref(),
        down.as_ref(),
        "--db".as_ref(),
        target.as_os_str(),
        "--new-if-unavailable".as_ref(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("starting a new one"), "{}", stderr(&out));

    // --force replaces a database only with what it fetched: an outage or a damaged
    // download leaves the old one as it was.
    let kept = repo.out().join("kept.sqlite");
    std::fs::write(&kept, b"the old history").unwrap();
    for from in [down.to_owned(), url("truncated.gz")] {
        let out = bench(&[
            "history".as_ref(),
            "fetch".as_ref(),
            from.as_ref(),
            "--db".as_ref(),
            kept.as_os_str(),
            "--force".as_ref(),
        ]);
        assert!(!out.status.success(), "{from}: {}", stderr(&out));
        assert_eq!(std::fs::read(&kept).unwrap(), b"the old history", "{from}");
    }
}
