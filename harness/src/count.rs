//! The count round: one extra round per scenario with the client driver and the server each
//! under Valgrind, counting the instructions each executes in the measured part only. A
//! count does not move with the machine's load, so one round tells what dozens of timed
//! rounds cannot on a shared runner: whether the code does more work than before.
//!
//! Why Callgrind and not Cachegrind: the Valgrind of current Debian stable (3.19) lets only
//! Callgrind start and stop counting in a running process (Cachegrind learned it in 3.22),
//! and Callgrind lets that be done from outside, through `vgdb`, with no change to the
//! binaries. So the count round measures any revision, including those `backfill` and
//! `compare` build from before it existed. Both processes start with counting off
//! (`--instr-atstart=no`): start-up, key derivation and the workload's preparation are not
//! counted. The harness turns counting on in both while they wait (the server idle, the
//! driver blocked before `go`), and off once the driver reported `done`.
//!
//! What would make two counts of the same build differ is pinned where it can be (see
//! `harness/RESULTS.md` for the measured spread): one runtime worker thread in each process
//! (`TOKIO_WORKER_THREADS=1`: no work stealing, no idle workers spinning for tasks), a fresh
//! server and client data directory for every count round (the measured rounds before it
//! leave a number of blobs that depends on when the adaptive budget stopped), the same
//! round number and payload seed, no loop-lag probe in the driver and no ping to the server
//! (both tick with wall time, which Valgrind stretches unevenly), and uploads that fsync their
//! own files (the default durability chooses by the time of the last filesystem sync); glibc's
//! mmap threshold, fast bins and heap trimming, mimalloc's purges, the server's timers and
//! its idle blocking threads' exits ([`Counted::command`]); ids from a fixed sequence and
//! blocking threads started before the round (the driver's part); the client dropped only
//! after the measured part (the workloads' part, since their version 2). A server built
//! before a setting existed ignores its variable and counts what it pinned (an idle thread's
//! exit, since `blocking_keep_alive` came in 2e269f5).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the driver's environment during a count round: it then runs its workload without
/// the loop-lag probe, whose ticks would be counted as work. Drivers built before it ignore it.
pub const COUNT_ROUND_ENV: &str = workloads::COUNT_ROUND_ENV;

/// When set to a directory, every count round's Callgrind profiles are copied there (named
/// after the scenario and the process), for `callgrind_annotate` to tell where a count moved.
pub const PROFILES_ENV: &str = "SOLEDAD_BENCH_COUNT_PROFILES";

/// Keeps glibc's `memcpy` and `memset` on vector instructions at every size. Above 2 KiB
/// they would use `rep movsb` and `rep stosb`, which Valgrind counts once per byte: a copy
/// then counted 32 times what the same copy in smaller pieces did, so the count followed how
/// the socket happened to split the data (measured: the server's count of one upload scenario
/// moved 4.5% between identical runs, two thirds of it in `memcpy`).
///
/// `mmap_threshold` fixes the size above which glibc's malloc maps memory of its own; left
/// dynamic, it moves with what was freed before, and with it whether a growing buffer
/// (`FsBackend::write`'s, 64 to 256 KiB) is extended in place or copied: 6 or 8 copies in
/// `server.backend/write/fs/10x1M`, most of its client count's 3.1% spread between identical
/// runs.
///
/// The rest keep what malloc does from following the order in which concurrent work freed
/// memory: `mxfast=0` turns off the fast bins, whose consolidation took 33,000 to 49,000
/// instructions in `blobs.sync/none`'s client, and a trim threshold of 1 GiB keeps it from
/// returning the top of the heap to the kernel (`systrim`, 0 or 23,000 instructions in
/// `server.backend/read/fs/1000x10k`, whose spread the completion order of its reads still
/// sets). Counts of workloads kept at their version stepped once with these two.
const GLIBC_TUNABLES: &str = "glibc.cpu.x86_rep_movsb_threshold=0xffffffffffffffff:glibc.cpu.x86_rep_stosb_threshold=0xffffffffffffffff:glibc.malloc.mmap_threshold=131072:glibc.malloc.mxfast=0:glibc.malloc.trim_threshold=1073741824";

/// How long counting waits for a process to wait (see [`wait_until_asleep`]) before it is
/// turned on or off anyway.
const ASLEEP_WAIT: Duration = Duration::from_secs(10);

/// How long one `vgdb` command may take: it interrupts a process blocked in a system call
/// through ptrace, which takes milliseconds.
const VGDB_TIMEOUT: Duration = Duration::from_secs(30);

/// The Valgrind installation the count round uses.
#[derive(Debug, Clone)]
pub struct Valgrind {
    valgrind: PathBuf,
    vgdb: PathBuf,
    /// The one CPU both counted processes run on, so that they take turns instead of running
    /// side by side (see [`Counted::command`]).
    cpu: Option<usize>,
    turns: Turns,
    /// A directory in memory for the count round's data, where there is one with room.
    scratch: Option<PathBuf>,
}

/// How the two counted processes take turns on their CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turns {
    /// Real-time, first in first out, at the lowest priority (`SCHED_FIFO` 1): a process runs
    /// until it blocks. The client then writes until the socket is full or it waits for an
    /// answer, and the server reads all there is before it waits again, so the pieces the
    /// server reads, and the turns of its event loop, are the same in every run.
    RealTime,
    /// The normal scheduler, which also switches when a time slice ends or a woken process
    /// is due, wherever the other one is: the server's counts then follow the timing
    /// (`harness/RESULTS.md`, "Real-time turns", has both measured).
    TimeSliced {
        /// Why real time was not used.
        why: String,
    },
}

/// Set to a non-empty value other than `0`, the count round runs as it did before its
/// real-time turns and its data in memory (to measure what they change): time slices, and the
/// data under the run's work directory.
pub const UNPINNED_ENV: &str = "SOLEDAD_BENCH_COUNT_UNPINNED";

/// Where the count round keeps its data when that is a memory filesystem with this much room.
/// With the data on a disk, a client and a server that both wait for an fsync resume in the
/// order their disk answers, and the pieces the server reads follow that order (measured with
/// real-time turns: a 10 MB download's server count spread 0.82% on disk, 0.13% in memory).
/// The instructions counted are the same code's either way.
const SCRATCH: &str = "/dev/shm";
const SCRATCH_ROOM: u64 = 2 << 30;
/// The count round's directories there are named `PREFIX<pid>-...` after the run's process,
/// so that a later run can tell those of a run that was killed (see [`clear_abandoned`]).
const SCRATCH_PREFIX: &str = "soledad-bench-count-";

impl Valgrind {
    /// Finds `valgrind` and `vgdb` on the `PATH` and checks that they run.
    pub fn find() -> Result<Self, String> {
        let run = |tool: &str, arg: &str| -> Result<(), String> {
            let out = Command::new(tool)
                .arg(arg)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {tool}: {e}"))?;
            if !out.status.success() {
                return Err(format!("{tool} {arg} exited with {}", out.status));
            }
            Ok(())
        };
        run("valgrind", "--version")?;
        // vgdb prints its usage and exits 0 for --help.
        run("vgdb", "--help")?;
        let cpus = allowed_cpus();
        let cpu = cpus.first().copied();
        let unpinned = std::env::var(UNPINNED_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        let turns = if unpinned {
            Turns::TimeSliced {
                why: format!("{UNPINNED_ENV} is set"),
            }
        } else if cpus.len() < 2 {
            // The harness must keep a CPU of its own: a real-time process that computes
            // leaves a CPU's other work only 5% of its time.
            Turns::TimeSliced {
                why: format!(
                    "{} CPU allowed, and real time needs a second one for the rest",
                    cpus.len()
                ),
            }
        } else {
            match probe_real_time("valgrind") {
                Ok(()) => Turns::RealTime,
                Err(why) => Turns::TimeSliced { why },
            }
        };
        Ok(Self {
            valgrind: PathBuf::from("valgrind"),
            vgdb: PathBuf::from("vgdb"),
            cpu,
            turns,
            scratch: if unpinned {
                None
            } else {
                memory_scratch(Path::new(SCRATCH))
            },
        })
    }

    /// How the counted processes take turns in this run.
    pub fn turns(&self) -> &Turns {
        &self.turns
    }

    /// A new directory for a count round's data: in memory where there is room (removed
    /// when the guard is dropped), else `None`, and the round uses the run's work directory.
    pub fn scratch(&self) -> std::io::Result<Option<tempfile::TempDir>> {
        let Some(memory) = &self.scratch else {
            return Ok(None);
        };
        tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
            .tempdir_in(memory)
            .map(Some)
    }

    /// Waits until no other count round runs on this machine, and holds that until the
    /// guard is dropped. Both processes of every count round run on the first allowed CPU,
    /// and with another round's real-time processes there, whether a thread returning to
    /// the blocking pool ran before counting was turned on followed the timing: a 1 MB
    /// encryption counted 2,681,378 or 2,689,707 instructions while a calibration ran.
    /// `None` where the lock file cannot be opened (then rounds may overlap, as before).
    pub fn take_the_cpu(&self) -> Option<std::fs::File> {
        let path = std::env::temp_dir().join("soledad-bench-count-round.lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            // Another user's lock file (in a sticky /tmp): a shared read is enough to lock.
            .or_else(|_| std::fs::File::open(&path))
            .ok()?;
        file.lock().ok()?;
        Some(file)
    }

    /// Whether the count round keeps its data in memory.
    pub fn in_memory(&self) -> bool {
        self.scratch.is_some()
    }

    /// A process to count, with its files under `dir` named after `name`.
    pub fn counted(&self, dir: &Path, name: &str) -> Counted {
        Counted {
            valgrind: self.clone(),
            out: dir.join(format!("{name}.callgrind")),
            vgdb_prefix: dir.join(format!("{name}.vgdb")),
        }
    }
}

/// One process run under Callgrind with counting off until told otherwise.
#[derive(Debug, Clone)]
pub struct Counted {
    valgrind: Valgrind,
    /// Callgrind's profile, written when the process exits.
    out: PathBuf,
    /// Where Valgrind's gdbserver and `vgdb` meet (named pipes): per process, so that two
    /// runs on one machine never talk to each other's processes.
    vgdb_prefix: PathBuf,
}

impl Counted {
    /// The command that runs `exe` under Callgrind; the caller adds `exe`'s arguments.
    pub fn command(&self, exe: &Path) -> Command {
        let mut cmd = Command::new(&self.valgrind.valgrind);
        cmd.arg("--tool=callgrind")
            .arg("--instr-atstart=no")
            .arg(format!("--callgrind-out-file={}", self.out.display()))
            .arg("--vgdb=yes")
            // Drivers built before they bounded their blocking threads in the count round
            // start one per task of a burst under real-time turns, beyond the default 500.
            .arg("--max-threads=1024")
            .arg(format!("--vgdb-prefix={}", self.vgdb_prefix.display()))
            // Only Valgrind's own errors on stderr, not its banner.
            .arg("-q")
            .arg(exe)
            .env("TOKIO_WORKER_THREADS", "1")
            .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
            // The server's default durability (`auto`) takes one of two paths by how long the
            // filesystem's last sync took; counted, an upload always fsyncs its own files, as
            // every upload did before `auto` (so the count series go on across it).
            .env("BLOBS_SERVER_DURABILITY", "fsync")
            // Work that follows the wall clock, which Valgrind stretches unevenly: mimalloc
            // returns freed memory 1 s after it fell free (up to 55,000 instructions in a
            // round), and the header and idle timeouts wake the server's event loop (some
            // 1,100 instructions a turn; `incoming.process` took 730 to 960 turns).
            .env("MIMALLOC_PURGE_DELAY", "-1")
            .env("BLOBS_SERVER_HEADER_TIMEOUT", "86400")
            .env("BLOBS_SERVER_IDLE_TIMEOUT", "86400")
            // An idle blocking thread exits after 10 s by default, at some 21,000
            // instructions, and Valgrind's slowness puts such exits inside the round.
            .env("BLOBS_SERVER_BLOCKING_KEEP_ALIVE", "86400");
        take_turns(&mut cmd, self.valgrind.cpu, self.valgrind.turns == Turns::RealTime);
        cmd
    }

    /// Turns counting on or off in the running process `pid`, once it waits.
    pub fn instrument(&self, pid: u32, on: bool) -> Result<(), String> {
        let state = if on { "on" } else { "off" };
        wait_until_asleep(pid, ASLEEP_WAIT);
        let mut child = Command::new(&self.valgrind.vgdb)
            .arg(format!("--vgdb-prefix={}", self.vgdb_prefix.display()))
            .arg(format!("--pid={pid}"))
            .args(["instrumentation", state])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run vgdb: {e}"))?;
        let deadline = Instant::now() + VGDB_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return Err(format!(
                        "vgdb could not turn counting {state} in process {pid} ({status}): {}",
                        err.trim()
                    ));
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "vgdb did not turn counting {state} in process {pid} within {}s",
                        VGDB_TIMEOUT.as_secs()
                    ));
                }
                Err(e) => return Err(format!("cannot wait for vgdb: {e}")),
            }
        }
    }

    /// Copies the profile to the directory named by [`PROFILES_ENV`], if set, as `name`.
    pub fn keep(&self, name: &str) -> Result<(), String> {
        let Some(dir) = std::env::var_os(PROFILES_ENV) else {
            return Ok(());
        };
        let to = Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::copy(&self.out, &to))
            .map(|_| ())
            .map_err(|e| format!("cannot copy {} to {}: {e}", self.out.display(), to.display()))
    }

    /// The instructions counted, read from the profile the process wrote when it exited.
    pub fn instructions(&self) -> Result<u64, String> {
        let text = std::fs::read_to_string(&self.out)
            .map_err(|e| format!("no Callgrind profile at {}: {e}", self.out.display()))?;
        total(&text).ok_or_else(|| format!("{} has no `totals:` line", self.out.display()))
    }
}

/// Runs `cmd` on `cpu` alone and, with `real_time`, under `SCHED_FIFO` at priority 1 (see
/// [`Turns`]); its threads inherit both. Hand-written because std sets neither for a child.
fn take_turns(cmd: &mut Command, cpu: Option<usize>, real_time: bool) {
    if cpu.is_none() && !real_time {
        return;
    }
    // SAFETY: runs between fork and exec; the set and the parameters are built on the stack
    // and both calls are system calls: nothing allocates or takes a lock.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if let Some(cpu) = cpu {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if real_time {
                let param = libc::sched_param { sched_priority: 1 };
                if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Whether a child may run under `SCHED_FIFO`, found by starting `program --version` so:
/// it needs `CAP_SYS_NICE` or a real-time priority limit (`ulimit -r`) of at least 1, and in
/// a control group with its own real-time budget, some of that budget.
fn probe_real_time(program: &str) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    take_turns(&mut cmd, None, true);
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{program} --version exited with {s} under SCHED_FIFO")),
        Err(e) => Err(format!(
            "SCHED_FIFO refused ({e}); it needs CAP_SYS_NICE or `ulimit -r 1` (in a container, --cap-add SYS_NICE)"
        )),
    }
}

/// `dir` if it is a memory filesystem (tmpfs) with [`SCRATCH_ROOM`] free that this process
/// can write to.
fn memory_scratch(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the struct it is given for a NUL-terminated path.
    let statfs = || unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        (libc::statfs(path.as_ptr(), &mut fs) == 0).then(|| (fs.f_type, fs.f_bavail as u64 * fs.f_bsize as u64))
    };
    if statfs()?.0 != libc::TMPFS_MAGIC {
        return None;
    }
    // First, so that what killed runs left does not count against the room.
    clear_abandoned(dir);
    let (_, free) = statfs()?;
    (free >= SCRATCH_ROOM && tempfile::tempdir_in(dir).is_ok()).then(|| dir.to_owned())
}

/// Waits, for at most `limit`, until every thread of `pid` sleeps in a system call (state
/// `S`). vgdb turns counting on or off wherever the process is; one that still runs, or is
/// ready to run while another real-time process has the CPU, would start or end its counted
/// part at a point that follows the timing. Measured: with two other count rounds on the same
/// CPU, a 2 MB encryption's count moved by 8,300 instructions (0.16%), the work between the
/// driver's `ready` (or `done`) and its read of the next line.
fn wait_until_asleep(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !all_asleep(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether every thread of `pid` is asleep (`/proc/PID/task/*/stat`); a process that is gone
/// counts as asleep, so that the caller goes on to vgdb's own error.
fn all_asleep(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        // A thread that ended between the listing and the read is not running either.
        std::fs::read_to_string(task.path().join("stat")).map_or(true, |stat| {
            stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()) == Some('S')
        })
    })
}

/// Removes the count round directories in `dir` left by runs whose process is gone (killed
/// before they could remove them): in memory, they would hold it until the next boot.
fn clear_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes into the set it is given, of the size it is told.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// The `totals:` line of a Callgrind profile: the sum of the first event (instructions, the
/// only one collected without cache simulation) over all threads and functions. The
/// `summary:` line is not used: with counting started late it can stay 0.
fn total(profile: &str) -> Option<u64> {
    profile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_the_totals_line() {
        let profile = "events: Ir\nsummary: 0\n\nfn=(1) main\n3 10\n\ntotals: 290709\n";
        assert_eq!(total(profile), Some(290_709));
        assert_eq!(total("events: Ir Dr\ntotals: 12 7\n"), Some(12));
        assert_eq!(total("events: Ir\nsummary: 5\n"), None);
        assert_eq!(total("totals: many\n"), None);
    }

    /// A counted process runs on the one CPU it is given and, where the system allows it,
    /// in real time: read back from the child's own `/proc` entries.
    #[test]
    fn a_counted_process_runs_on_its_cpu_and_in_real_time_where_allowed() {
        let cpu = *allowed_cpus().last().expect("some CPU is allowed");
        let real_time = probe_real_time("cat").is_ok();
        let mut cmd = Command::new("cat");
        cmd.args(["/proc/self/stat", "/proc/self/status"]);
        take_turns(&mut cmd, Some(cpu), real_time);
        let out = cmd.output().expect("cat runs");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        // `stat`'s fields after the command name: the 40th is the real-time priority, the
        // 41st the policy (proc(5)); the first after the name is the 3rd.
        let stat = text.lines().next().unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        let (priority, policy) = (fields[40 - 3], fields[41 - 3]);
        if real_time {
            assert_eq!((policy, priority), (libc::SCHED_FIFO.to_string().as_str(), "1"));
        } else {
            assert_eq!((policy, priority), (libc::SCHED_OTHER.to_string().as_str(), "0"));
        }
        let allowed = text.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"));
        assert_eq!(allowed.map(str::trim), Some(cpu.to_string().as_str()));
    }

    /// A process that computes is not asleep; one blocked reading its input is.
    #[test]
    fn a_process_is_asleep_only_while_it_waits() {
        let mut busy = Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let mut waiting = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(!all_asleep(busy.id()));
        // Until `sleep` has started and reached its system call it runs too: on a loaded
        // machine that takes a while, so it is waited for (and would fail after 10 s).
        wait_until_asleep(waiting.id(), Duration::from_secs(10));
        assert!(all_asleep(waiting.id()));
        let started = Instant::now();
        wait_until_asleep(busy.id(), Duration::from_millis(200));
        assert!(started.elapsed() >= Duration::from_millis(200));
        for child in [&mut busy, &mut waiting] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(all_asleep(busy.id()), "a process that is gone is not waited for");
    }

    /// A run's count directories in memory are removed by a later run once the run's
    /// process is gone, and only then.
    #[test]
    fn directories_of_a_killed_run_are_cleared_and_a_live_runs_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let live = dir.path().join(format!("{SCRATCH_PREFIX}{}-a1", child.id()));
        let own = dir.path().join(format!("{SCRATCH_PREFIX}{}-b2", std::process::id()));
        let other = dir.path().join("soledad-bench-other-1-c3");
        for d in [&live, &own, &other] {
            std::fs::create_dir_all(d.join("server")).unwrap();
        }
        clear_abandoned(dir.path());
        assert!(live.exists() && own.exists() && other.exists());
        child.kill().unwrap();
        child.wait().unwrap();
        clear_abandoned(dir.path());
        assert!(!live.exists(), "the directory of a process that is gone stays");
        assert!(own.exists() && other.exists());
    }

    /// Every server setting the count round pins is one the server reads: a renamed variable
    /// would be ignored without a word, and the count would follow the clock again.
    #[test]
    fn the_server_settings_it_pins_are_the_servers_own() {
        use clap::CommandFactory as _;
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: blobs_server::config::ServeArgs,
        }
        let declared: Vec<String> = Serve::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        let valgrind = Valgrind {
            valgrind: "valgrind".into(),
            vgdb: "vgdb".into(),
            cpu: None,
            turns: Turns::RealTime,
            scratch: None,
        };
        let cmd = valgrind
            .counted(Path::new("."), "server")
            .command(Path::new("blobs-server"));
        let pinned: Vec<String> = cmd
            .get_envs()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .filter(|k| k.starts_with("BLOBS_SERVER_"))
            .collect();
        assert!(pinned.len() >= 4, "{pinned:?}");
        for name in &pinned {
            assert!(
                declared.contains(name),
                "{name} is not a setting of blobs-server: {declared:?}"
            );
        }
    }
}
