//! `compare`, `backfill` and `find` on a real git repository in a temp dir: checkouts,
//! builds (a build command that installs this test's binaries, failing on commits marked
//! broken), interleaved runs, stored comparisons, skipped commits and resumption.

mod common;

use std::process::{Command, Output};

use common::{Repo, stderr};

const QUICK: &str = r#"
warmup_rounds = 1
rounds = 10
[[scenario]]
workload = "crypto.encrypt"
payloads = ["1x10M"]
[[scenario]]
workload = "store.put"
payloads = ["20x10k"]
"#;

/// These tests measure: run them one at a time, so that they do not disturb each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the binaries under test; a commit with a BROKEN file does not build.
/// Its error names the checkout's path, which the stored reason must not.
const BUILD_CMD: &str = r#"if [ -e BROKEN ]; then echo "error: this commit is broken at $PWD/BROKEN" >&2; exit 1; fi
cp "$TEST_BINS/soledad-bench" "$TEST_BINS/blobs-server" "$SOLEDAD_BENCH_OUT/"
if [ -e bench.env ]; then cp bench.env "$SOLEDAD_BENCH_OUT/"; fi"#;

fn repo() -> Repo {
    let repo = Repo::new();
    std::fs::write(repo.path().join("quick.toml"), QUICK).unwrap();
    repo
}

/// A subcommand that builds revisions, with the cache, database and work directory under
/// `out/`.
fn revs(repo: &Repo, subcommand: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--scenarios", "quick.toml"]);
    revs_with(repo, subcommand, &all)
}

/// `revs` with the scenario file among `args`.
fn revs_with(repo: &Repo, subcommand: &str, args: &[&str]) -> Output {
    let out = repo.out();
    std::fs::create_dir_all(&out).unwrap();
    let bins = std::path::Path::new(common::bench_exe()).parent().unwrap();
    Command::new(common::bench_exe())
        .current_dir(repo.path())
        .arg(subcommand)
        .args(args)
        .args(["--build-cmd", BUILD_CMD])
        .arg("--cache")
        .arg(out.join("cache"))
        .arg("--db")
        .arg(out.join("revs.sqlite"))
        .arg("--work-dir")
        .arg(out.join("work"))
        .env("TEST_BINS", bins)
        .output()
        .unwrap()
}

fn count(repo: &Repo, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(repo.out().join("revs.sqlite")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn the_same_build_on_both_sides_is_not_a_regression() {
    let _serial = serial();
    let repo = repo();
    let a = repo.commit("first");
    let b = repo.commit("second, the same code");
    let md = repo.out().join("cmp.md");
    let json = repo.out().join("cmp.json");
    let out = revs(
        &repo,
        "compare",
        &[
            &a[..8],
            &b,
            "--markdown",
            md.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("A: {}", &a[..10])) && stdout.contains("0 regressions"),
        "{stdout}"
    );
    assert!(
        std::fs::read_to_string(&md)
            .unwrap()
            .contains("### Benchmarks: no regression")
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["regression"], false);
    assert_eq!(report["b"]["commit"], b);
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["metric"] == "wall_s")
    );
    assert_eq!(count(&repo, "SELECT count(*) FROM comparisons"), 1);
    assert_eq!(
        count(&repo, "SELECT count(*) FROM runs WHERE purpose = 'comparison'"),
        2
    );
    // Both builds are cached: a second comparison builds nothing.
    let again = revs(&repo, "compare", &[&a, &b, "--only", "crypto"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(!stderr(&again).contains("building"), "{}", stderr(&again));

    // One revision: compared with the working tree, uncommitted changes included.
    std::fs::write(repo.path().join("CHANGES"), "edited, not committed").unwrap();
    let wt = revs(&repo, "compare", &[&b, "--only", "crypto"]);
    assert_eq!(wt.status.code(), Some(0), "{}", stderr(&wt));
    assert!(
        String::from_utf8_lossy(&wt.stdout).contains("B: working tree"),
        "{}",
        String::from_utf8_lossy(&wt.stdout)
    );
}

#[test]
fn errors_exit_with_status_two() {
    let _serial = serial();
    let repo = repo();
    let a = repo.commit("good");
    std::fs::write(repo.path().join("BROKEN"), "").unwrap();
    let broken = repo.commit("broken");
    let out = revs(&repo, "compare", &[&a, "no-such-branch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"no-such-branch\" is not a commit"),
        "{}",
        stderr(&out)
    );
    let out = revs(&repo, "compare", &[&a, &broken]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("does not build") && stderr(&out).contains("this commit is broken"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn backfill_skips_what_does_not_build_and_resumes() {
    let _serial = serial();
    let repo = repo();
    let first = repo.commit("one");
    std::fs::write(repo.path().join("BROKEN"), "").unwrap();
    let broken = repo.commit("two, broken");
    std::fs::remove_file(repo.path().join("BROKEN")).unwrap();
    let third = repo.commit("three");

    let out = revs(&repo, "backfill", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 commits benchmarked, 0 stored already, 1 do not build"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(count(&repo, "SELECT count(*) FROM runs WHERE purpose = 'history'"), 2);
    let (reason, subject): (String, String) = rusqlite::Connection::open(repo.out().join("revs.sqlite"))
        .unwrap()
        .query_row(
            "SELECT reason, subject FROM build_failures WHERE sha = ?1",
            [&broken],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(reason.contains("this commit is broken at ./BROKEN"), "{reason}");
    assert!(!reason.contains(repo.path().to_str().unwrap()), "{reason}");
    assert_eq!(subject, "two, broken");
    let stored: Vec<String> = {
        let conn = rusqlite::Connection::open(repo.out().join("revs.sqlite")).unwrap();
        let mut stmt = conn.prepare("SELECT commit_sha FROM runs ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(stored, [first.clone(), third.clone()], "oldest first");

    // Interrupted or not, a second backfill runs nothing that is stored or broken.
    let out = revs(&repo, "backfill", &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 commits benchmarked, 2 stored already, 1 do not build"));
    // Unless asked to, for the newest commit only.
    let out = revs(
        &repo,
        "backfill",
        &["--order", "bisect", "--max-commits", "1", "--force"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 commits benchmarked"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        count(
            &repo,
            &format!("SELECT count(*) FROM runs WHERE commit_sha = '{third}'")
        ),
        2
    );
    // A range excludes its start.
    let out = revs(&repo, "backfill", &[&format!("{first}..{third}"), "--force"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 commits benchmarked, 0 stored already, 1 do not build"));
}

/// Uploads limited by the client's bandwidth (`SOLEDAD_BENCH_CLIENT_BANDWIDTH`, from a
/// commit's `bench.env`): a real, known difference between two builds.
const LIMITED: &str = r#"
warmup_rounds = 1
rounds = 10
[[scenario]]
workload = "blobs.upload"
payloads = ["4x100k"]
concurrency = [1]
"#;

fn limited_repo() -> Repo {
    let repo = Repo::new();
    std::fs::write(repo.path().join("limited.toml"), LIMITED).unwrap();
    repo
}

fn set_bandwidth(repo: &Repo, bytes_per_s: u64) {
    std::fs::write(
        repo.path().join("bench.env"),
        format!("SOLEDAD_BENCH_CLIENT_BANDWIDTH={bytes_per_s}\n"),
    )
    .unwrap();
}

fn limited(repo: &Repo, subcommand: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--scenarios", "limited.toml"]);
    revs_with(repo, subcommand, &all)
}

#[test]
fn a_ten_percent_lower_bandwidth_is_a_regression() {
    let _serial = serial();
    let repo = limited_repo();
    set_bandwidth(&repo, 2_000_000);
    let a = repo.commit("fast");
    set_bandwidth(&repo, 1_800_000);
    let b = repo.commit("10% slower client");
    let json = repo.out().join("cmp.json");
    let out = limited(&repo, "compare", &[&a, &b, "--json", json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["regression"], true);
    let wall = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "wall_s")
        .unwrap();
    assert_eq!(wall["verdict"], "regression", "{wall}");
    // 2.0 / 1.8 MB/s: about 11% more time on the wire, minus what is not on the wire.
    let ratio = wall["ratio"].as_f64().unwrap();
    assert!((1.04..1.2).contains(&ratio), "{wall}");
}

#[test]
fn find_names_the_commit_that_lowered_the_bandwidth() {
    let _serial = serial();
    let repo = limited_repo();
    set_bandwidth(&repo, 2_000_000);
    let good = repo.commit("fast");
    repo.commit("still fast");
    set_bandwidth(&repo, 1_500_000);
    let culprit = repo.commit("slower client");
    repo.commit("after");
    let bad = repo.commit("still after");
    let out = limited(&repo, "find", &[&good, &bad, "--scenario", "blobs.upload/4x100k/c1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&culprit[..10]), "{stdout}\n{}", stderr(&out));
}
