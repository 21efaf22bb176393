//! A process with known resource use, for testing the harness's measurements: on `go` (a line
//! on stdin) it burns the given CPU time, allocates and touches the given memory, writes the
//! given bytes to a file and fsyncs it, says `done`, and exits when stdin closes.
//! Not part of a benchmark; the harness's tests run it.

use std::io::{BufRead, Write};
use std::time::Duration;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("usage: calibration-load --cpu-ms N --alloc-mib N --write-mib N --file PATH"))
    };
    let (cpu_ms, alloc_mib, write_mib) = (arg("--cpu-ms"), arg("--alloc-mib"), arg("--write-mib"));
    let file = args
        .iter()
        .position(|a| a == "--file")
        .and_then(|i| args.get(i + 1))
        .expect("--file PATH")
        .clone();

    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    println!("ready");
    std::io::stdout().flush().unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "go");

    // CPU: spin until this thread has used the requested time.
    let start = thread_cpu();
    let mut x = 0u64;
    while thread_cpu() - start < Duration::from_millis(cpu_ms) {
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    std::hint::black_box(x);

    // Memory: every page touched, so it is resident.
    let mut block = vec![0u8; (alloc_mib << 20) as usize];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&block);

    // IO: written and fsynced, so it reaches storage.
    let mut f = std::fs::File::create(&file).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..write_mib {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();

    println!("done");
    std::io::stdout().flush().unwrap();
    for _ in lines {}
    drop(block);
}
