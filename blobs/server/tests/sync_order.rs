//! Durability rests on the order of system calls: a file's bytes are synced before it gets
//! its name, and every change of names in a blob's directory is synced before the 200 is
//! sent. A crash test cannot show it (a SIGKILL keeps the page cache), so this test runs the
//! real server under `strace`, drives the kinds of change through it (upload, upload over a
//! tombstone, flags set, changed and cleared, replacement of a blob and of none, deletion
//! with flags, incoming delivery) and checks the order in the system calls it made, for both
//! ways of syncing (`auto`, the default, takes one or the other for each upload, by the time
//! of the last sync: `group_sync`'s tests). Dropping or moving one fsync or sync fails it.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;

/// The calls that order a change: reads of the request, writes, syncs, name changes and the
/// response. A pattern, so that names a platform lacks (`rename` on arm64) are no error.
const TRACED: &str = "trace=/^(read|recvfrom|p?write(v|v2|64)?|ftruncate|fallocate|sendto|\
                      f(data)?sync|syncfs|(link|rename|unlink|mkdir|rmdir|symlink|mknod)(at2?)?|\
                      open|openat2?|creat)$";

#[tokio::test]
async fn with_fsync_every_change_is_synced_in_order_before_its_200() {
    check_order(&["--durability", "fsync"]).await;
}

#[tokio::test]
async fn with_group_commit_every_change_is_synced_in_order_before_its_200() {
    check_order(&["--durability", "group"]).await;
}

/// One request the test makes, and the blob it changes.
#[derive(Debug, Clone, Copy)]
enum Op {
    Upload,
    SetFlags(&'static str),
    ClearFlags,
    Replace,
    Delete,
    Deliver,
}

impl Op {
    /// The name this request must give to a file it wrote (a suffix of the blob's id), if
    /// it writes one.
    fn names_written_file(self) -> Option<&'static str> {
        match self {
            Op::Upload | Op::Replace | Op::Deliver => Some(""),
            Op::SetFlags(_) => Some(".flags"),
            Op::ClearFlags | Op::Delete => None,
        }
    }
}

/// Runs every kind of change, one request at a time, on a traced server and checks each.
async fn check_order(args: &[&str]) {
    assert!(
        Command::new("strace")
            .args(["-qq", "-o", "/dev/null", "true"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs strace, and ptrace allowed (apt-get install strace; scripts/test installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    // As the kernel names it (strace's descriptor paths are resolved, symbolic links too).
    let dir = tmp.path().canonicalize().unwrap();
    let log = dir.join("strace.log");
    let mut strace = Command::new("strace");
    // -f: every thread; -y: paths for descriptors; -s: whole paths; -qq: no attach notices.
    strace
        .args(["-f", "-qq", "-y", "-s", "300", "-e", TRACED, "-e", "signal=none", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_blobs-server"));
    let mut s = start_command(strace, &dir, args);
    // Dropping `s` kills strace, which (before strace 6.6) leaves its tracee running: the
    // server is killed on its own if the test fails before it stops it.
    let server = ServerGuard(traced_pid(&s));

    // One request at a time, so that each one's calls come between the previous answer and
    // its own. Each blob goes into a directory of its own, which its first link creates.
    let mut ops = Vec::new();
    for i in 0..2 {
        let id = format!("{i}order{i}");
        for op in [
            Op::Upload,
            Op::SetFlags(r#"["PROCESSING"]"#),
            Op::SetFlags(r#"["PROCESSED"]"#),
            Op::ClearFlags,
            Op::SetFlags(r#"["FAILED"]"#),
            Op::Replace,
            Op::Delete,
            Op::Upload,
        ] {
            ops.push((op, id.clone()));
        }
        ops.push((Op::Replace, format!("{i}fresh{i}")));
        ops.push((Op::Deliver, format!("{i}mail{i}")));
    }
    for (op, id) in &ops {
        let body = format!("the bytes of {id}").repeat(50).into_bytes();
        let path = format!("/blobs/alice/{id}");
        let status = match op {
            Op::Upload => put(&s, &path, &body).await,
            Op::SetFlags(flags) => post_flags(&s, &path, flags).await,
            Op::Replace => send(&s, Method::PUT, &format!("{path}?overwrite=true"), Some(body))
                .await
                .status(),
            Op::ClearFlags => post_flags(&s, &path, "[]").await,
            Op::Delete => send(&s, Method::DELETE, &path, None).await.status(),
            Op::Deliver => client()
                .put(s.services_url(&format!("/incoming/alice/{id}")))
                .header("Authorization", mx())
                .body(body)
                .send()
                .await
                .unwrap()
                .status(),
        };
        assert_eq!(status, StatusCode::OK, "{op:?} {id}");
    }
    stop_traced(&mut s, &server);
    let text = std::fs::read_to_string(&log).unwrap();
    let calls = Calls::parse(&text);

    // The server made its data directory, which must be in its parent before it serves.
    let ready = calls
        .0
        .iter()
        .find(|c| c.args.contains("services on http://"))
        .unwrap_or_else(|| panic!("the server did not say it was ready\n{}", calls.dump()))
        .start;
    calls
        .check("data", None, 0, ready)
        .unwrap_or_else(|e| panic!("start: {e}\n{}", calls.dump()));
    // Files are never written once named (their bytes were synced before).
    calls
        .writes_into_named_files(&dir.join("data").display().to_string())
        .unwrap_or_else(|e| panic!("{e}\n{}", calls.dump()));
    // Each request is looked for after the previous one's answer and its own arrival, so
    // that no call of another request can stand in for one of its own, and no change made
    // after an answer goes unnoticed.
    let mut from = ready + 1;
    for (op, id) in &ops {
        let checked = calls.arrival_after(from).and_then(|arrived| {
            calls.no_change_between(from, arrived)?;
            let answered = calls.answer_after(arrived).ok_or("no 200 sent")?;
            calls.check(id, op.names_written_file(), arrived, answered)?;
            if let Op::Deliver = op {
                calls.flags_durable_before_blob(id, arrived, answered)?;
            }
            Ok(answered)
        });
        from = checked.unwrap_or_else(|e| panic!("{op:?} {id} (from line {from}): {e}\n{}", calls.dump())) + 1;
    }
    calls
        .no_change_between(from, usize::MAX)
        .unwrap_or_else(|e| panic!("after the last answer: {e}\n{}", calls.dump()));
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
    fn ok(&self) -> bool {
        self.result.starts_with('0')
    }

    /// The descriptor of the first argument and, with `-y`, its path: `5` and `/d/.tmp/x`
    /// for `5</d/.tmp/x>, ...`. Not the bytes a write carries, which strace prints too.
    fn descriptor(&self) -> Option<(&str, &str)> {
        // An unlinked file shows as `5</d/.tmp/#123>(deleted)`.
        let first = self.args.split(", ").next()?;
        let (fd, rest) = first.split_once('<')?;
        Some((fd, rest.rsplit_once('>')?.0))
    }

    /// The paths among the arguments (strace quotes them), a relative one resolved against
    /// the directory descriptor before it (`-y` prints its path: `4</d/a>, "x"`).
    fn paths(&self) -> Vec<String> {
        let parts: Vec<&str> = self.args.split('"').collect();
        (1..parts.len())
            .step_by(2)
            .map(|i| {
                let path = parts[i];
                if path.starts_with('/') {
                    return path.to_owned();
                }
                let dir = parts[i - 1]
                    .rsplit_once('<')
                    .and_then(|(_, d)| d.rsplit_once('>'))
                    .map_or("?", |(d, _)| d);
                format!("{dir}/{path}")
            })
            .collect()
    }

    /// Whether this call changes a file's bytes.
    fn is_write(&self) -> bool {
        matches!(
            self.name.as_str(),
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" | "ftruncate" | "fallocate"
        )
    }

    /// Whether this call made what was written to `file` (a descriptor's path) durable.
    fn syncs(&self, file: &str) -> bool {
        self.ok()
            && (self.name == "syncfs"
                || matches!(self.name.as_str(), "fsync" | "fdatasync")
                    && self.descriptor().is_some_and(|(_, p)| p == file))
    }

    /// If this call changes a name: the directories it changes, and the file it gives a
    /// name to (its source, for a link or rename). Names in `.tmp` and `.snapshots` need not
    /// survive a crash and are left out.
    fn name_change(&self) -> Option<(Vec<String>, Option<String>)> {
        let mut paths = self.paths();
        let creates = self.args.contains("O_CREAT") || self.name == "creat";
        let changed: Vec<String> = match self.name.as_str() {
            "link" | "linkat" | "symlink" | "symlinkat" => paths.get(1).cloned().into_iter().collect(),
            "rename" | "renameat" | "renameat2" => paths.clone(),
            "unlink" | "unlinkat" | "mkdir" | "mkdirat" | "rmdir" | "mknod" | "mknodat" => {
                paths.first().cloned().into_iter().collect()
            }
            "open" | "openat" | "openat2" | "creat" if creates => paths.first().cloned().into_iter().collect(),
            _ => return None,
        };
        // Scratch names, and the lock file, which the next start makes again.
        let scratch = |p: &str| {
            p.ends_with("/.lock")
                || [".tmp", ".snapshots"]
                    .iter()
                    .any(|d| p.ends_with(&format!("/{d}")) || p.contains(&format!("/{d}/")))
        };
        let dirs = changed
            .iter()
            .filter(|p| !scratch(p))
            .filter_map(|p| p.rsplit_once('/').map(|(dir, _)| dir.to_owned()))
            .collect();
        let named = match self.name.as_str() {
            "link" | "linkat" | "rename" | "renameat" | "renameat2" if !paths.is_empty() => Some(paths.swap_remove(0)),
            _ => None,
        };
        Some((dirs, named))
    }
}

struct Calls(Vec<Call>);

impl Calls {
    /// Parses strace's `-f` output: `PID name(args) = result`, or, when threads interleave,
    /// `PID name(args <unfinished ...>` and later `PID <... name resumed>rest) = result`.
    fn parse(text: &str) -> Calls {
        let mut open: HashMap<&str, Call> = Default::default();
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
        for call in &mut calls {
            // strace pads the closing parenthesis to a column: `name(args)   = result`.
            let args = call.args.trim_end();
            call.args = args.strip_suffix(')').unwrap_or(args).to_owned();
        }
        calls.sort_by_key(|c| c.start);
        Calls(calls)
    }

    /// The line where the first 200 after line `from` started to be sent.
    fn answer_after(&self, from: usize) -> Option<usize> {
        self.0
            .iter()
            .filter(|c| c.start >= from && c.args.contains("HTTP/1.1 200"))
            .map(|c| c.start)
            .min()
    }

    /// The line where a request next arrived: a read from a socket that returned bytes.
    fn arrival_after(&self, from: usize) -> Result<usize, String> {
        self.0
            .iter()
            .filter(|c| c.start >= from && matches!(c.name.as_str(), "read" | "recvfrom"))
            .find(|c| {
                c.descriptor().is_some_and(|(_, p)| p.starts_with("socket:"))
                    && c.result.parse::<u64>().is_ok_and(|n| n > 0)
            })
            .map(|c| c.start)
            .ok_or_else(|| "no request arrived".to_owned())
    }

    /// Fails if a name outside the scratch directories changed between the two lines: after
    /// one answer and before the next request arrived, work done for an answered request.
    fn no_change_between(&self, from: usize, to: usize) -> Result<(), String> {
        match self
            .0
            .iter()
            .filter(|c| c.end >= from && c.start < to && c.ok())
            .find(|c| c.name_change().is_some_and(|(dirs, _)| !dirs.is_empty()))
        {
            Some(c) => Err(format!(
                "{} (line {}) changed {:?} outside any request",
                c.name,
                c.start,
                c.paths()
            )),
            None => Ok(()),
        }
    }

    /// Fails if a file of the data directory, other than in `.tmp`, was written: the bytes of
    /// a named file are never changed, so that their sync before the naming covers them.
    fn writes_into_named_files(&self, data: &str) -> Result<(), String> {
        let scratch = format!("{data}/.tmp/");
        match self.0.iter().find(|c| {
            c.is_write()
                && c.descriptor()
                    .is_some_and(|(_, p)| p.starts_with(&format!("{data}/")) && !p.starts_with(&scratch))
        }) {
            Some(c) => Err(format!("{} (line {}) wrote into a named file", c.name, c.start)),
            None => Ok(()),
        }
    }

    /// Checks the calls of one request, from its arrival at line `from` to its answer at
    /// line `answered`:
    /// - it changed a name of blob `id`, and with `written` gave the name `id` + `written` to
    ///   a file it wrote (so that the checks below are not vacuous);
    /// - every file given a name was synced after its last write and before getting it;
    /// - every directory whose names changed was synced after its last change and before
    ///   the answer (by an fsync of it, or a `syncfs`), and no change was still under way
    ///   when the answer was sent.
    fn check(&self, id: &str, written: Option<&str>, from: usize, answered: usize) -> Result<(), String> {
        if let Some(c) = self
            .0
            .iter()
            .find(|c| c.start < answered && c.end > answered && c.name_change().is_some())
        {
            return Err(format!(
                "{} (lines {}-{}) was under way when the answer was sent",
                c.name, c.start, c.end
            ));
        }
        let window: Vec<&Call> = self.0.iter().filter(|c| c.start >= from && c.end < answered).collect();
        let changes: Vec<(&Call, Vec<String>, Option<String>)> = window
            .iter()
            .filter(|c| c.ok())
            .filter_map(|c| c.name_change().map(|(dirs, named)| (*c, dirs, named)))
            .collect();
        if let Some((c, ..)) = changes
            .iter()
            .find(|(c, ..)| c.paths().iter().any(|p| p.contains("?/")))
        {
            return Err(format!(
                "{} (line {}) has a name this test cannot place",
                c.name, c.start
            ));
        }
        let own = format!("/{id}");
        if !changes
            .iter()
            .any(|(c, dirs, _)| !dirs.is_empty() && c.paths().iter().any(|p| p.contains(&own)))
        {
            return Err(format!("no name of {id} changed"));
        }
        let synced = |file: &str, after: usize, before: usize| {
            window
                .iter()
                .any(|s| s.syncs(file) && s.start > after && s.end < before)
        };
        let mut last_change: HashMap<&str, usize> = HashMap::new();
        let mut written_and_named = false;
        for (change, dirs, named) in &changes {
            for dir in dirs {
                last_change.insert(dir, change.end);
            }
            let Some(source) = named else { continue };
            // The file, as its writes' descriptors name it: a named temp file by its path;
            // an unnamed one (linked from /proc/self/fd/N) by descriptor N's latest write.
            let file = match source.strip_prefix("/proc/self/fd/") {
                Some(fd) => window
                    .iter()
                    .filter(|w| w.is_write() && w.end < change.start)
                    .filter_map(|w| w.descriptor().filter(|(n, _)| *n == fd))
                    .next_back()
                    .map(|(_, path)| path),
                None => Some(source.as_str()),
            };
            let Some(file) = file else { continue };
            let Some(write) = window
                .iter()
                .rfind(|w| w.is_write() && w.end < change.start && w.descriptor().is_some_and(|(_, p)| p == file))
            else {
                continue;
            };
            if !synced(file, write.end, change.start) {
                return Err(format!(
                    "{} (line {}) named {file} without a sync after its last write (line {})",
                    change.name, change.start, write.end
                ));
            }
            let target = change.paths().get(1).cloned().unwrap_or_default();
            if written.is_some_and(|suffix| target.ends_with(&format!("{own}{suffix}"))) {
                written_and_named = true;
            }
        }
        if let Some(suffix) = written
            && !written_and_named
        {
            return Err(format!("no file written and then named {id}{suffix}"));
        }
        for (dir, at) in last_change {
            if !synced(dir, at, answered) {
                return Err(format!(
                    "answered without a sync of {dir} after its last change (line {at})"
                ));
            }
        }
        Ok(())
    }

    /// Checks that a delivery's PENDING flag was in place, and its directory synced, before
    /// the blob was linked: a crash in between must not leave an item without it.
    fn flags_durable_before_blob(&self, id: &str, from: usize, answered: usize) -> Result<(), String> {
        let window = || self.0.iter().filter(|c| c.start >= from && c.end < answered && c.ok());
        let named = |how: &str, suffix: &str| {
            window()
                .find(|c| {
                    c.name.starts_with(how) && c.paths().get(1).is_some_and(|p| p.ends_with(&format!("/{id}{suffix}")))
                })
                .ok_or(format!("no {how} to {id}{suffix}"))
        };
        let (flags, blob) = (named("rename", ".flags")?, named("link", "")?);
        let target = blob.paths()[1].clone();
        let dir = target.rsplit_once('/').map_or("", |(d, _)| d);
        if window().any(|c| c.syncs(dir) && c.start > flags.end && c.end < blob.start) {
            Ok(())
        } else {
            Err(format!(
                "the blob was linked (line {}) without a sync of {dir} after its flags were (line {})",
                blob.start, flags.end
            ))
        }
    }

    /// The calls that matter here, for a failure message.
    fn dump(&self) -> String {
        self.0
            .iter()
            .filter(|c| !c.is_write() || c.descriptor().is_some_and(|(_, p)| p.contains("/.tmp/")))
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
    assert_eq!(calls.answer_after(0), Some(5));
    // The fsync returned after the link started, and the failed syncfs is no sync.
    let e = calls.check("x", Some(""), 0, 5).unwrap_err();
    assert!(e.contains("named /d/.tmp/#1 without a sync"), "{e}");
}

#[test]
fn a_change_in_a_directory_needs_a_sync_of_it_before_the_answer() {
    let trace = "1 write(4</d/.tmp/t>, \"[]\", 2) = 2\n\
                 1 fsync(4</d/.tmp/t>) = 0\n\
                 1 rename(\"/d/.tmp/t\", \"/d/a/x.flags\") = 0\n\
                 1 unlink(\"/d/a/x.deleted\") = 0\n\
                 1 fsync(6</d/a>) = 0\n\
                 1 writev(9<socket:[1]>, [{iov_base=\"HTTP/1.1 200 OK\\r\\n\"}], 1) = 75\n";
    let calls = Calls::parse(trace);
    assert_eq!(calls.check("x", Some(".flags"), 0, 5), Ok(()));
    // Without the directory's fsync.
    let calls = Calls::parse(&trace.replace("fsync(6</d/a>) = 0", "fsync(6</d/b>) = 0"));
    let e = calls.check("x", Some(".flags"), 0, 5).unwrap_err();
    assert!(
        e.contains("without a sync of /d/a after its last change (line 3)"),
        "{e}"
    );
    // A request that changed no name of the blob.
    assert_eq!(calls.check("y", None, 0, 5), Err("no name of y changed".into()));
    // A request with bytes that named no written file.
    let calls = Calls::parse(&trace.replace("write(4</d/.tmp/t>", "write(4</d/.tmp/u>"));
    assert_eq!(
        calls.check("x", Some(".flags"), 0, 5),
        Err("no file written and then named x.flags".into())
    );
    // The name given to the written file must be the one the request is about.
    let calls = Calls::parse(trace);
    assert_eq!(
        calls.check("x", Some(""), 0, 5),
        Err("no file written and then named x".into())
    );
}

#[test]
fn relative_names_changes_after_answers_and_writes_into_named_files_are_caught() {
    let trace = "1 read(9<socket:[1]>, \"PUT /blobs/alice/x HTTP/1.1\", 8192) = 27\n\
                 1 unlinkat(7</d/a>, \"x.flags\", 0) = 0\n\
                 1 fsync(7</d/a>) = 0\n\
                 1 writev(9<socket:[1]>, [{iov_base=\"HTTP/1.1 200 OK\\r\\n\"}], 1) = 75\n\
                 1 mkdir(\"/d/b\", 0777) = 0\n\
                 1 pwrite64(5</d/a/x>, \"late\", 4, 0) = 4\n";
    let calls = Calls::parse(trace);
    assert_eq!(calls.0[1].paths(), ["/d/a/x.flags"]);
    assert_eq!(calls.arrival_after(0), Ok(0));
    assert_eq!(calls.check("x", None, 0, 3), Ok(()));
    assert_eq!(calls.no_change_between(3, 4), Ok(()));
    assert!(
        calls
            .no_change_between(4, usize::MAX)
            .unwrap_err()
            .contains("mkdir (line 4)")
    );
    assert_eq!(
        calls.writes_into_named_files("/d"),
        Err("pwrite64 (line 5) wrote into a named file".into())
    );
    // A change that returned only after the answer had started.
    let straddling = "1 unlink(\"/d/a/x\" <unfinished ...>\n\
                      2 writev(9<socket:[1]>, [{iov_base=\"HTTP/1.1 200 OK\\r\\n\"}], 1) = 75\n\
                      1 <... unlink resumed>) = 0\n";
    let calls = Calls::parse(straddling);
    assert_eq!(
        calls.check("x", None, 0, 1),
        Err("unlink (lines 0-2) was under way when the answer was sent".into())
    );
}

#[test]
fn a_delivery_needs_its_flags_synced_before_its_blob_is_linked() {
    let trace = "1 rename(\"/d/.tmp/f\", \"/d/a/x.flags\") = 0\n\
                 1 fsync(6</d/a>) = 0\n\
                 1 linkat(AT_FDCWD</>, \"/proc/self/fd/5\", AT_FDCWD</>, \"/d/a/x\", AT_SYMLINK_FOLLOW) = 0\n\
                 1 fsync(6</d/a>) = 0\n\
                 1 writev(9<socket:[1]>, [{iov_base=\"HTTP/1.1 200 OK\\r\\n\"}], 1) = 75\n";
    assert_eq!(Calls::parse(trace).flags_durable_before_blob("x", 0, 4), Ok(()));
    let late = trace.replacen("1 fsync(6</d/a>) = 0\n", "", 1);
    assert_eq!(
        Calls::parse(&late).flags_durable_before_blob("x", 0, 3),
        Err("the blob was linked (line 1) without a sync of /d/a after its flags were (line 0)".into())
    );
}
