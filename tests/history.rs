//! The history's round trip through a published site, over a real HTTP server on loopback:
//! published, fetched, and refused when damaged; a missing history starts anew, an
//! unreachable one is an error unless a new one is asked for.

mod common;

use std::path::{Path, PathBuf};
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

fn gather(url: &str, spool: &Path, db: &Path) -> std::process::Output {
    bench(&[
        "history".as_ref(),
        "gather".as_ref(),
        url.as_ref(),
        "--spool".as_ref(),
        spool.as_os_str(),
        "--db".as_ref(),
        db.as_os_str(),
    ])
}

fn publish(db: &Path, out: &Path) {
    let done = bench(&[
        "history".as_ref(),
        "publish".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(done.status.success(), "{}", stderr(&done));
}

fn run_uuids(db: &Path) -> std::collections::BTreeSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT run_uuid FROM runs").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// What the site serves, read back as the next job would fetch it.
fn served(url: &str, scratch: &Path) -> std::collections::BTreeSet<String> {
    let db = scratch.join(format!("served-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let out = fetch(url, &db);
    assert!(out.status.success(), "{}", stderr(&out));
    let uuids = run_uuids(&db);
    std::fs::remove_file(&db).unwrap();
    uuids
}

/// Two jobs overlap, as two pushes in a row (or a push and the nightly) do: both fetch the
/// history before either publishes. The first gathers and publishes, but its publish has not
/// reached the site when the second gathers; then both publishes land, in order. The site
/// ends with every run, and no publish ever drops a run the site served before. Without the
/// spool the second publish, made from the site alone, would drop the first job's run.
#[test]
fn overlapping_jobs_publish_every_run() {
    let repo = Repo::new();
    let site = repo.out().join("site");
    let spool = repo.out().join("spool");
    let scratch = repo.out().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();

    repo.commit("c1");
    let first = repo.out().join("first.sqlite");
    let out = repo.bench_run(&[("--db", first.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    publish(&first, &site.join("bench.sqlite.gz"));
    let server = serve(&site);
    let url = format!("http://127.0.0.1:{}/bench.sqlite.gz", server.port);
    let r1 = run_uuids(&first);

    // Both jobs fetch the history of one run, then each benchmarks its commit.
    let (a, b) = (repo.out().join("a.sqlite"), repo.out().join("b.sqlite"));
    for db in [&a, &b] {
        let out = fetch(&url, db);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    repo.commit("c2");
    let out = repo.bench_run(&[("--db", a.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    repo.commit("c3");
    let out = repo.bench_run(&[("--db", b.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ra: Vec<String> = run_uuids(&a).difference(&r1).cloned().collect();
    let rb: Vec<String> = run_uuids(&b).difference(&r1).cloned().collect();
    assert_eq!((ra.len(), rb.len()), (1, 1));

    // A gathers and publishes; its publish is slow to reach the site.
    let out = gather(&url, &spool, &a);
    assert!(out.status.success(), "{}", stderr(&out));
    let pending_a = scratch.join("a.sqlite.gz");
    publish(&a, &pending_a);
    // B gathers meanwhile: the site still serves one run, the spool has A's.
    let out = gather(&url, &spool, &b);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 runs from the spool that it does not serve yet"),
        "{text}"
    );
    let pending_b = scratch.join("b.sqlite.gz");
    publish(&b, &pending_b);

    // The publishes land in the order of their gathers; each keeps what the site served.
    let mut before = served(&url, &scratch);
    for pending in [&pending_a, &pending_b] {
        std::fs::copy(pending, site.join("bench.sqlite.gz")).unwrap();
        let now = served(&url, &scratch);
        assert!(
            now.is_superset(&before),
            "a publish dropped {:?}",
            before.difference(&now)
        );
        before = now;
    }
    let all: std::collections::BTreeSet<String> = r1.iter().chain(&ra).chain(&rb).cloned().collect();
    assert_eq!(before, all, "the site serves every run");

    // The spool keeps one snapshot, of every run gathered: a site that loses its history
    // gets all of them back at the next publish.
    let spooled = |spool: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".sqlite.gz"))
            .collect()
    };
    assert_eq!(spooled(&spool).len(), 1);
    std::fs::remove_file(site.join("bench.sqlite.gz")).unwrap();
    let c = repo.out().join("c.sqlite");
    std::fs::copy(&first, &c).unwrap();
    let out = gather(&url, &spool, &c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("gathering without it"), "{}", stderr(&out));
    assert_eq!(spooled(&spool).len(), 1);
    assert_eq!(run_uuids(&c), all);

    // A job whose gather fails (the site out of reach) has its runs in the spool all the same:
    // the next gather publishes them.
    let e = repo.out().join("e.sqlite");
    std::fs::copy(&first, &e).unwrap();
    let out = repo.bench_run(&[("--db", e.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let re: Vec<String> = run_uuids(&e).difference(&all).cloned().collect();
    assert_eq!(re.len(), 1);
    let out = gather("http://127.0.0.1:9/bench.sqlite.gz", &spool, &e);
    assert!(!out.status.success(), "an unreachable site is an error");
    let f = repo.out().join("f.sqlite");
    std::fs::copy(&first, &f).unwrap();
    let out = gather(&url, &spool, &f);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run_uuids(&f).contains(&re[0]), "the failed job's run is gathered");
}

/// Gathers take turns: while one holds the spool's lock, another waits, and goes on when it
/// is released.
#[test]
fn gathers_wait_for_each_other() {
    let repo = Repo::new();
    repo.commit("c1");
    let out = repo.bench_run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = repo.out().join("bench.sqlite");
    let spool = repo.out().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let lock = std::fs::File::create(spool.join(".lock")).unwrap();
    lock.lock().unwrap();
    let site = repo.out().join("site");
    std::fs::create_dir_all(&site).unwrap();
    let server = serve(&site);
    let url = format!("http://127.0.0.1:{}/bench.sqlite.gz", server.port);
    let mut child = Command::new(common::bench_exe())
        .args(["history", "gather", &url, "--spool"])
        .arg(&spool)
        .arg("--db")
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stderr, line by line: it says it waits, and nothing is spooled while it does.
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut err = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the gather says it waits for the lock");
        let waiting = line.contains("waiting for another job's gather");
        err.push(line);
        if waiting {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the gather went on while the lock was held"
    );
    let spooled = || {
        std::fs::read_dir(&spool)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".sqlite.gz")
            })
            .count()
    };
    assert_eq!(spooled(), 0, "nothing is written while another gather holds the lock");
    lock.unlock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the gather did not go on after the lock was released"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    err.extend(lines.try_iter());
    let err = err.join("\n");
    assert!(status.success(), "{err}");
    // The site had no history (404): its own run is spooled for the next job.
    assert!(err.contains("gathering without it"), "{err}");
    assert_eq!(spooled(), 1);
}
