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
}

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
        Ok(Self {
            valgrind: PathBuf::from("valgrind"),
            vgdb: PathBuf::from("vgdb"),
            cpu: first_allowed_cpu(),
        })
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
        if let Some(cpu) = self.valgrind.cpu {
            // SAFETY: runs between fork and exec; the set is built on the stack and
            // sched_setaffinity is a system call: nothing allocates or takes a lock.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Turns counting on or off in the running process `pid`.
    pub fn instrument(&self, pid: u32, on: bool) -> Result<(), String> {
        let state = if on { "on" } else { "off" };
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

/// The first CPU this process may run on.
fn first_allowed_cpu() -> Option<usize> {
    // SAFETY: sched_getaffinity writes into the set it is given, of the size it is told.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize).find(|&cpu| libc::CPU_ISSET(cpu, &set))
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
