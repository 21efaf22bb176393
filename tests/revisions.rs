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
        .env(common::NO_COUNT_ROUND.0, common::NO_COUNT_ROUND.1)
        .output()
        .unwrap()
}

fn count(repo: &Repo, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(repo.out().join("revs.sqlite")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// One comparison of identical builds: whether it called a regression, after checking that
/// its exit status, Markdown and JSON say the same.
fn a_a_regression(out: &Output, md: Option<&std::path::Path>, json: &std::path::Path) -> bool {
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let regression = report["regression"].as_bool().unwrap();
    assert_eq!(out.status.code(), Some(i32::from(regression)), "{}", stderr(out));
    if let Some(md) = md {
        let heading = if regression {
            "### Benchmarks: regression"
        } else {
            "### Benchmarks: no regression"
        };
        assert!(std::fs::read_to_string(md).unwrap().starts_with(heading));
    }
    regression
}

/// Identical builds on both sides. Each comparison may call a regression by chance: the
/// statistics promise it for at most `alpha` = 1% of comparisons (the one-sided family of
/// regressions, `docs/statistics.md`; measured on this very scenario set there). Of the 6
/// comparisons below, 3 or more calling one has a probability of at most
/// C(6,3) 0.01^3 = 2.0e-5 for a correct implementation, under once in 10,000 runs; 2 is
/// allowed. This is a check of the whole path on the real stack, not a sharp one: at the rate
/// before the fix of the paired statistics and of the memory metrics (41% of comparisons) it
/// fails about half the time. The statistics themselves are checked deterministically in
/// `collector` (`paired.rs`, `tests/comparison.rs`, `tests/accuracy.rs`).
#[test]
fn the_same_build_on_both_sides_is_rarely_a_regression() {
    let _serial = serial();
    let repo = repo();
    let a = repo.commit("first");
    let b = repo.commit("second, the same code");
    let md = repo.out().join("cmp.md");
    let json = repo.out().join("cmp.json");
    let (md_arg, json_arg) = (md.to_str().unwrap(), json.to_str().unwrap());
    let mut regressions = 0;
    let out = revs(
        &repo,
        "compare",
        &[&a[..8], &b, "--markdown", md_arg, "--json", json_arg],
    );
    regressions += usize::from(a_a_regression(&out, Some(&md), &json));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("A: {}, built by the build command", &a[..10])),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["b"]["commit"], b);
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["metric"] == "wall_s" && r["rounds"] == 16),
        "compare's default of 16 rounds"
    );
    assert_eq!(count(&repo, "SELECT count(*) FROM comparisons"), 1);
    assert_eq!(
        count(&repo, "SELECT count(*) FROM runs WHERE purpose = 'comparison'"),
        2
    );
    // Both builds are cached: the next comparisons build nothing.
    for _ in 0..4 {
        let again = revs(&repo, "compare", &[&a, &b, "--only", "crypto", "--json", json_arg]);
        regressions += usize::from(a_a_regression(&again, None, &json));
        assert!(!stderr(&again).contains("building"), "{}", stderr(&again));
    }

    // One revision: compared with the working tree, uncommitted changes included.
    std::fs::write(repo.path().join("CHANGES"), "edited, not committed").unwrap();
    let wt = revs(&repo, "compare", &[&b, "--only", "crypto", "--json", json_arg]);
    regressions += usize::from(a_a_regression(&wt, None, &json));
    assert!(
        String::from_utf8_lossy(&wt.stdout).contains("B: working tree"),
        "{}",
        String::from_utf8_lossy(&wt.stdout)
    );
    assert!(
        regressions <= 2,
        "{regressions} of 6 comparisons of identical builds called a regression"
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

/// A workspace of this repository's shape, a root package `soledad-bench` and a member
/// `blobs-server`, whose binaries run this test's real ones (`$TEST_BINS`): what the default
/// build makes of it can really be measured. Both use a member library whose `BUILD` says
/// which source a binary was compiled from (`soledad-bench --which` prints it), and the root
/// package a registry dependency that the working tree's build compiles first.
fn toy_workspace(repo: &Repo, with_server: bool, build: &str) {
    let wrapper = |bin: &str| {
        format!(
            "use std::os::unix::process::CommandExt;\n\
             fn main() {{\n    \
                 if std::env::args().nth(1).as_deref() == Some(\"--which\") {{\n        \
                     println!(\"{{}} {{}}\", shared::BUILD, libc::EXIT_SUCCESS);\n        \
                     return;\n    \
                 }}\n    \
                 let bins = std::env::var_os(\"TEST_BINS\").expect(\"TEST_BINS\");\n    \
                 let err = std::process::Command::new(std::path::Path::new(&bins).join(\"{bin}\"))\n        \
                     .args(std::env::args_os().skip(1))\n        \
                     .exec();\n    \
                 panic!(\"{{err}}\");\n\
             }}\n"
        )
    };
    let deps = "\n[dependencies]\nshared = { path = \"shared\" }\nlibc = \"0.2\"\n";
    let manifest = |name: &str, deps: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n{deps}")
    };
    let root = repo.path();
    let members = if with_server {
        "\".\", \"shared\", \"blobs/server\""
    } else {
        "\".\", \"shared\""
    };
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = [{members}]\nresolver = \"3\"\n\n{}",
            manifest("soledad-bench", deps)
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/main.rs"), wrapper("soledad-bench")).unwrap();
    std::fs::create_dir_all(root.join("shared/src")).unwrap();
    std::fs::write(root.join("shared/Cargo.toml"), manifest("shared", "")).unwrap();
    std::fs::write(
        root.join("shared/src/lib.rs"),
        format!("pub const BUILD: &str = \"{build}\";\n"),
    )
    .unwrap();
    if with_server {
        let server = root.join("blobs/server");
        std::fs::create_dir_all(server.join("src")).unwrap();
        let deps = "\n[dependencies]\nshared = { path = \"../../shared\" }\nlibc = \"0.2\"\n";
        std::fs::write(server.join("Cargo.toml"), manifest("blobs-server", deps)).unwrap();
        std::fs::write(server.join("src/main.rs"), wrapper("blobs-server")).unwrap();
    }
    // Offline: libc is in the local registry cache, since this workspace's own build uses it.
    let status = toy_cargo(root)
        .args(["generate-lockfile", "--offline"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(root.join(".gitignore"), "/out/\n/target/\n").unwrap();
}

/// Cargo in the toy workspace, with none of the caller's cargo directory settings, so that it
/// builds where a fresh clone would.
fn toy_cargo(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_BUILD_DIR");
    cmd
}

/// The cache's build of the working tree (named after its binaries' content).
fn working_tree_build(cache: &std::path::Path) -> std::path::PathBuf {
    let builds: Vec<_> = std::fs::read_dir(cache.join("builds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("working-tree-"))
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    builds[0].clone()
}

/// What `soledad-bench --which` of a toy build prints: the source it was built from.
fn which(bin: &std::path::Path) -> String {
    let out = Command::new(bin).arg("--which").output().unwrap();
    assert!(out.status.success(), "{}", bin.display());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A subcommand with the default build: no `--build-cmd`, and none of the caller's cargo
/// directory settings.
fn revs_default(repo: &Repo, subcommand: &str, args: &[&str]) -> Output {
    let out = repo.out();
    std::fs::create_dir_all(&out).unwrap();
    let bins = std::path::Path::new(common::bench_exe()).parent().unwrap();
    Command::new(common::bench_exe())
        .current_dir(repo.path())
        .arg(subcommand)
        .args(args)
        .args(["--scenarios", "quick.toml", "--db"])
        .arg(out.join("revs.sqlite"))
        .arg("--work-dir")
        .arg(out.join("work"))
        .env("TEST_BINS", bins)
        .env(common::NO_COUNT_ROUND.0, common::NO_COUNT_ROUND.1)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_BUILD_DIR")
        .output()
        .unwrap()
}

#[test]
fn the_default_build_compiles_both_binaries_and_never_mixes_revisions() {
    let _serial = serial();
    let repo = repo();
    toy_workspace(&repo, false, "old");
    let old = repo.commit("only the CLI: no server yet");
    toy_workspace(&repo, true, "committed");
    let a = repo.commit("the server arrives");
    std::fs::write(repo.path().join("src/extra.txt"), "a change that builds the same").unwrap();
    let b = repo.commit("a second commit");
    // The developer's working tree: edited, and built as they build it.
    toy_workspace(&repo, true, "edited");
    let built = toy_cargo(repo.path())
        .args(["build", "--release", "--offline", "-p", "soledad-bench"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    assert_eq!(which(&repo.path().join("target/release/soledad-bench")), "edited 0");

    // A revision without the server binary: a clear error naming it and what is missing.
    let out = revs_default(&repo, "compare", &[&old, &a, "--only", "crypto"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{} does not build: it has no `blobs-server` binary",
            &old[..10]
        )),
        "{}",
        stderr(&out)
    );

    // Two commits: built with cargo into the cache, reusing the working tree's compiled
    // registry dependency instead of compiling it again.
    let out = revs_default(&repo, "compare", &[&a, &b, "--only", "crypto"]);
    // Same code on both sides: a regression is possible by chance (at most 1%), an error not.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "A: {}, built by `cargo build --release --locked` in",
            &a[..10]
        )),
        "{stdout}"
    );
    assert!(stderr(&out).contains("reusing"), "{}", stderr(&out));
    let cache = repo.path().join("target/soledad-bench");
    let log = std::fs::read_to_string(cache.join("builds").join(&a).join("build.log")).unwrap();
    assert!(
        log.contains("Compiling shared") && !log.contains("Compiling libc"),
        "{log}"
    );
    for bin in ["soledad-bench", "blobs-server"] {
        assert_eq!(which(&cache.join("builds").join(&a).join(bin)), "committed 0", "{bin}");
    }
    // Cached now: a second comparison starts measuring at once.
    let again = revs_default(&repo, "compare", &[&a, &b, "--only", "crypto"]);
    assert!(matches!(again.status.code(), Some(0 | 1)), "{}", stderr(&again));
    assert!(!stderr(&again).contains("building"), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("cached build"));

    // The working tree builds in place, where `cargo build --release` puts it, from its own
    // sources: the commits built since must not have leaked into its build directory.
    let out = revs_default(&repo, "compare", &[&b, "--only", "crypto"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    for bin in ["soledad-bench", "blobs-server"] {
        assert_eq!(
            which(&repo.path().join("target/release").join(bin)),
            "edited 0",
            "{bin}"
        );
        assert_eq!(which(&working_tree_build(&cache).join(bin)), "edited 0", "{bin}");
    }

    // Seeding the other way round: the working tree's build is now newer than the checkout's
    // files, so its own crates would look fresh there if they were brought over. They are not:
    // a commit built again from scratch is still the commit.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let lib = repo.path().join("shared/src/lib.rs");
    std::fs::write(&lib, std::fs::read(&lib).unwrap()).unwrap();
    let built = toy_cargo(repo.path())
        .args(["build", "--release", "--offline", "-p", "soledad-bench"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    std::fs::remove_dir_all(cache.join("target")).unwrap();
    std::fs::remove_dir_all(cache.join("builds").join(&a)).unwrap();
    let out = revs_default(&repo, "compare", &[&a, &b, "--only", "crypto"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    assert!(stderr(&out).contains("reusing"), "{}", stderr(&out));
    for bin in ["soledad-bench", "blobs-server"] {
        assert_eq!(which(&cache.join("builds").join(&a).join(bin)), "committed 0", "{bin}");
    }

    // backfill records the old revision as not building, with the reason.
    let out = revs_default(&repo, "backfill", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 commits benchmarked, 0 stored already, 1 do not build"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reason: String = rusqlite::Connection::open(repo.out().join("revs.sqlite"))
        .unwrap()
        .query_row("SELECT reason FROM build_failures WHERE sha = ?1", [&old], |r| r.get(0))
        .unwrap();
    assert!(reason.contains("it has no `blobs-server` binary"), "{reason}");
}

/// In an interleaved comparison every round of every build runs against a server started
/// for it (on the same data): rounds sharing one server process share its state, and the
/// paired statistics need independent rounds. Counted from outside: the distinct server
/// processes seen during a comparison of 1 warm-up and 10 measured rounds per build.
#[test]
fn interleaved_builds_get_a_fresh_server_every_round() {
    let _serial = serial();
    let repo = limited_repo();
    set_bandwidth(&repo, 4_000_000);
    let a = repo.commit("one");
    let b = repo.commit("two");
    let needle = repo.out().join("work").to_string_lossy().into_owned();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut servers = std::collections::BTreeSet::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for pid in common::processes_mentioning(&needle) {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
                    if program.ends_with(b"/blobs-server") {
                        servers.insert(pid);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            servers
        })
    };
    let out = limited(&repo, "compare", &[&a, &b, "--rounds", "10"]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let servers = watcher.join().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    // One server per round and build: (1 warm-up + 10 rounds) x 2 builds.
    assert_eq!(servers.len(), 22, "{servers:?}");
}
