//! The harness's measurements against a process whose resource use is known.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::probe::{self, Sampler};

#[test]
fn cpu_memory_and_io_of_a_known_load_are_measured() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_calibration-load"))
        .args(["--cpu-ms", "400", "--alloc-mib", "96", "--write-mib", "8", "--file"])
        .arg(dir.path().join("out"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let before = probe::read(pid).unwrap();
    let sampler = Sampler::start(vec![pid], Duration::from_millis(10));
    writeln!(stdin, "go").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "done");
    let after = probe::read(pid).unwrap();
    let sampled = sampler.stop();
    drop(stdin);
    assert!(child.wait().unwrap().success());

    // 400 ms of CPU, read in 10 ms ticks, plus the allocation's page faults and the write's
    // system time. Those grow on a loaded host (0.68 s in all beside a cold build of this
    // workspace), so the upper bound only catches a misread clock (ticks taken for seconds
    // would be 100 times off).
    let cpu = (after.cpu_user_s - before.cpu_user_s) + (after.cpu_sys_s - before.cpu_sys_s);
    assert!((0.38..2.0).contains(&cpu), "cpu {cpu} s");
    // The spin is user time, the page faults and the write system time. The kernel splits a
    // thread's CPU time into user and system by sampling at its tick, so on a loaded host the
    // split of the spin itself moves (0.32 s user of 0.49 s seen here at load 7); user still
    // dominates, which it would not if the two fields were read the wrong way round.
    let user = after.cpu_user_s - before.cpu_user_s;
    let sys = after.cpu_sys_s - before.cpu_sys_s;
    assert!(
        user > sys && user >= 0.2,
        "the spin is user time: {user} s user, {sys} s system"
    );

    // 96 MiB of anonymous memory touched: the samples see it, and nothing else.
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let base = mib(before.anon_bytes);
    let sampled_peak = mib(*sampled.anon[0].iter().max().unwrap());
    assert!(
        sampled_peak - base >= 90.0 && sampled_peak - base < 110.0,
        "sampled peak {sampled_peak} MiB over a base of {base} MiB"
    );
    assert!(sampled.anon[0].len() >= 10, "{} samples", sampled.anon[0].len());

    // 8 MiB written and fsynced.
    let written = mib(after.io_write_bytes - before.io_write_bytes);
    assert!((7.9..9.0).contains(&written), "wrote {written} MiB to storage");
    assert!(mib(after.io_wchar - before.io_wchar) >= 8.0);
}
