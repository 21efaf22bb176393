//! Durability rests on the order of system calls: an upload's bytes are synced before its
//! link is made, and the link is synced before the 200 is sent. A crash test cannot show it
//! (a SIGKILL keeps the page cache), so this test runs the real server under `strace` and
//! checks the order in the system calls it made, for both durability modes. Dropping or
//! moving one fsync or sync fails it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The calls that order an upload: its writes, syncs, link and the response.
const TRACED: &str = "trace=write,pwrite64,writev,sendto,fsync,fdatasync,syncfs,linkat,mkdir,mkdirat";

#[tokio::test]
async fn with_fsync_the_200_follows_an_fsync_of_the_file_then_the_link_then_an_fsync_of_its_directory() {
    check_order(&[], |calls, u| {
        let file_synced = calls.synced_between(u.data_written, u.linked.start, |c| {
            c.name == "fsync" && c.on_temp_file()
        });
        let dir = format!("<{}>", u.path.rsplit_once('/').expect("a blob path has a parent").0);
        let dir_synced = calls.synced_between(u.linked.end, u.answered, |c| c.name == "fsync" && c.args.contains(&dir));
        // Each shard directory the upload created is in its parent once that is fsynced.
        let new_dirs_synced = u.made_dirs.iter().all(|(made, at)| {
            let parent = format!("<{}>", made.rsplit_once('/').expect("a directory has a parent").0);
            calls.synced_between(*at, u.answered, |c| c.name == "fsync" && c.args.contains(&parent))
        });
        (file_synced, dir_synced && new_dirs_synced)
    })
    .await;
}

#[tokio::test]
async fn with_group_commit_the_200_follows_a_syncfs_then_the_link_then_another_syncfs() {
    check_order(&["--durability", "group"], |calls, u| {
        let is_syncfs = |c: &Call| c.name == "syncfs";
        (
            calls.synced_between(u.data_written, u.linked.start, is_syncfs),
            calls.synced_between(u.linked.end, u.answered, is_syncfs),
        )
    })
    .await;
}

/// One upload as the trace shows it; positions are line numbers in the trace.
struct Upload {
    /// Where the blob was linked.
    path: String,
    /// When the last write into its temp file returned.
    data_written: usize,
    linked: Call,
    /// Directories made for it, and when each `mkdir` returned.
    made_dirs: Vec<(String, usize)>,
    /// When its 200 started to be sent.
    answered: usize,
}

/// Uploads blobs one at a time to a traced server and checks each with `synced`, which says
/// whether the bytes were synced between their write and the link, and the link between
/// itself and the answer.
async fn check_order(args: &[&str], synced: impl Fn(&Calls, &Upload) -> (bool, bool)) {
    assert!(
        Command::new("strace")
            .args(["-qq", "-o", "/dev/null", "true"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs strace, and ptrace allowed (apt-get install strace; .ci/run installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("strace.log");
    let mut strace = Command::new("strace");
    // -f: every thread; -y: paths for descriptors; -s: whole paths; -qq: no attach notices.
    strace
        .args(["-f", "-qq", "-y", "-s", "300", "-e", TRACED, "-e", "signal=none", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_blobs-server"));
    let mut s = start_command(strace, tmp.path(), args);
    // Dropping `s` kills strace, which (before strace 6.6) leaves its tracee running: the
    // server is killed on its own if the test fails before it stops it.
    let server = ServerGuard(traced_pid(&s));

    // Sequential uploads, so that each one's calls come between the previous answer and its own.
    // Each goes into a directory of its own, which the first link has to create.
    let ids: Vec<String> = (0..4).map(|i| format!("{i}order{i}")).collect();
    for id in &ids {
        let body = format!("the bytes of {id}").repeat(50);
        assert_eq!(
            put(&s, &format!("/blobs/alice/{id}"), body.as_bytes()).await,
            StatusCode::OK
        );
    }
    stop_traced(&mut s, &server);
    let text = std::fs::read_to_string(&log).unwrap();
    let calls = Calls::parse(&text);

    // Each upload is looked for after the previous one's answer, so that no call of another
    // upload can stand in for one of its own.
    let mut from = 0;
    for id in &ids {
        let u = calls
            .upload(id, from)
            .unwrap_or_else(|e| panic!("{id}: {e}\n{}", calls.dump()));
        from = u.answered + 1;
        let (bytes, link) = synced(&calls, &u);
        assert!(
            bytes,
            "{id}: linked without a sync of its bytes after their write\n{}",
            calls.dump()
        );
        assert!(
            link,
            "{id}: answered without a sync after its link, or of a directory made for it\n{}",
            calls.dump()
        );
    }
}

/// The server strace runs: its child.
fn traced_pid(s: &Running) -> i32 {
    let strace = s.child.id();
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap();
    children
        .split_whitespace()
        .next()
        .expect("strace runs the server")
        .parse()
        .unwrap()
}

/// Kills the traced server when dropped (a no-op once it has stopped).
struct ServerGuard(i32);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        // SAFETY: a plain kill(2). The pid is our grandchild's, not reused before strace,
        // its parent, has reaped it, and `Running` is dropped (and reaps strace) after this.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// Stops the server with SIGTERM and waits for strace to write its log.
fn stop_traced(s: &mut Running, server: &ServerGuard) {
    // SAFETY: a plain kill(2) of our grandchild.
    assert_eq!(unsafe { libc::kill(server.0, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the traced server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A system call: its name, its arguments (as strace prints them) and result, and the trace
/// lines where it started and returned (one line, or two for an interrupted call).
#[derive(Debug, Clone)]
struct Call {
    name: String,
    args: String,
    result: String,
    start: usize,
    end: usize,
}

impl Call {
    /// Whether the call's descriptor (its first argument; with `-y`, its path) is a file in
    /// `.tmp`. Not the bytes it writes, which strace prints too.
    fn on_temp_file(&self) -> bool {
        self.args.split(',').next().is_some_and(|fd| fd.contains("/.tmp/"))
    }
}

struct Calls(Vec<Call>);

impl Calls {
    /// Parses strace's `-f` output: `PID name(args) = result`, or, when threads interleave,
    /// `PID name(args <unfinished ...>` and later `PID <... name resumed>rest) = result`.
    fn parse(text: &str) -> Calls {
        let mut open: std::collections::HashMap<&str, Call> = Default::default();
        let mut calls = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let Some((pid, rest)) = line.split_once(' ') else {
                continue;
            };
            let rest = rest.trim_start();
            if let Some(resumed) = rest.strip_prefix("<... ") {
                let Some(mut call) = open.remove(pid) else { continue };
                let tail = resumed.split_once("resumed>").map_or("", |(_, t)| t);
                let (more, result) = tail.rsplit_once(" = ").unwrap_or((tail, ""));
                call.args.push_str(more);
                call.result = result.trim().to_owned();
                call.end = n;
                calls.push(call);
            } else if let Some((name, args)) = rest.split_once('(') {
                let mut call = Call {
                    name: name.to_owned(),
                    args: String::new(),
                    result: String::new(),
                    start: n,
                    end: n,
                };
                if let Some(args) = args.strip_suffix(" <unfinished ...>") {
                    call.args = args.to_owned();
                    open.insert(pid, call);
                } else {
                    let (args, result) = args.rsplit_once(" = ").unwrap_or((args, ""));
                    call.args = args.to_owned();
                    call.result = result.trim().to_owned();
                    calls.push(call);
                }
            }
        }
        calls.sort_by_key(|c| c.start);
        Calls(calls)
    }

    /// The successful link of blob `id` from line `from` on, the last write into a temp file
    /// from `from` to the link, and the first 200 sent after the link.
    fn upload(&self, id: &str, from: usize) -> Result<Upload, String> {
        let linked = self
            .0
            .iter()
            .filter(|c| c.start >= from)
            .find(|c| c.name == "linkat" && c.args.contains(&format!("/{id}\"")) && c.result.starts_with('0'))
            .ok_or("no successful linkat")?
            .clone();
        let path = linked.args.split('"').nth(3).ok_or("no link target")?.to_owned();
        let data_written = self
            .0
            .iter()
            .filter(|c| matches!(c.name.as_str(), "write" | "pwrite64") && c.on_temp_file())
            .filter(|c| c.start >= from && c.end < linked.start)
            .map(|c| c.end)
            .max()
            .ok_or("no write into a temp file before the link")?;
        let made_dirs = self
            .0
            .iter()
            .filter(|c| c.name.starts_with("mkdir") && c.result.starts_with('0'))
            .filter(|c| c.start >= from && c.end < linked.start)
            .filter_map(|c| Some((c.args.split('"').nth(1)?.to_owned(), c.end)))
            // The blob's own directories, not `.tmp` and the like.
            .filter(|(made, _)| path.starts_with(&format!("{made}/")))
            .collect();
        let answered = self
            .0
            .iter()
            .filter(|c| c.start > linked.end && c.args.contains("HTTP/1.1 200"))
            .map(|c| c.start)
            .min()
            .ok_or("no 200 sent after the link")?;
        Ok(Upload {
            path,
            data_written,
            linked,
            made_dirs,
            answered,
        })
    }

    /// Whether a call matching `is_sync` started after line `after`, returned successfully
    /// and did so before line `before`.
    fn synced_between(&self, after: usize, before: usize, is_sync: impl Fn(&Call) -> bool) -> bool {
        self.0
            .iter()
            .any(|c| is_sync(c) && c.start > after && c.end < before && c.result.starts_with('0'))
    }

    /// The calls that matter here, for a failure message.
    fn dump(&self) -> String {
        self.0
            .iter()
            .filter(|c| c.name != "write" || c.on_temp_file())
            .map(|c| format!("{}-{} {}({}) = {}", c.start, c.end, c.name, truncate(&c.args), c.result))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[test]
fn the_parser_joins_interrupted_calls_and_keeps_their_order() {
    let trace = "10 pwrite64(5</d/.tmp/#1>(deleted), \"bytes\", 5, 0) = 5\n\
                 10 fsync(5</d/.tmp/#1>(deleted) <unfinished ...>\n\
                 11 linkat(AT_FDCWD</>, \"/proc/self/fd/5\", AT_FDCWD</>, \"/d/a/x\", AT_SYMLINK_FOLLOW) = 0\n\
                 10 <... fsync resumed>) = 0\n\
                 12 syncfs(3</d>) = -1 EIO (Input/output error)\n\
                 13 writev(9<socket:[1]>, [{iov_base=\"HTTP/1.1 200 OK\\r\\n\"..., iov_len=75}], 1) = 75\n";
    let calls = Calls::parse(trace);
    let seen: Vec<_> = calls
        .0
        .iter()
        .map(|c| (c.name.as_str(), c.start, c.end, c.result.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("pwrite64", 0, 0, "5"),
            ("fsync", 1, 3, "0"),
            ("linkat", 2, 2, "0"),
            ("syncfs", 4, 4, "-1 EIO (Input/output error)"),
            ("writev", 5, 5, "75")
        ]
    );
    let u = calls.upload("x", 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (u.path.as_str(), u.data_written, u.linked.start, u.answered),
        ("/d/a/x", 0, 2, 5)
    );
    // The fsync returned after the link started: it does not order them.
    assert!(!calls.synced_between(0, 2, |c| c.name == "fsync"));
    assert!(calls.synced_between(0, 4, |c| c.name == "fsync"));
    assert!(
        !calls.synced_between(2, 5, |c| c.name == "syncfs"),
        "a failed sync is no sync"
    );
}
