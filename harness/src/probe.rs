//! Reading a process's resource counters from `/proc`, and sampling its memory.
//!
//! `procfs` rather than `sysinfo` here: the metrics need user and system CPU time apart, the
//! kernel's own peak-RSS high-water mark (which a sampler could miss) and per-process IO
//! accounting, none of which sysinfo exposes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procfs::process::{ClearRefs, Process};

/// Cumulative counters of one process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    /// Bytes fetched from storage (`read_bytes`).
    pub io_read_bytes: u64,
    /// Bytes sent to storage, counted when the page is dirtied (`write_bytes`).
    pub io_write_bytes: u64,
    pub rss_bytes: u64,
    /// The kernel's high-water mark of RSS (`VmHWM`), since start or the last [`reset_peak`].
    pub peak_rss_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read /proc/{pid}: {message}")]
pub struct ProbeError {
    pub pid: u32,
    pub message: String,
}

/// Reads a process's counters.
pub fn read(pid: u32) -> Result<Counters, ProbeError> {
    let err = |e: procfs::ProcError| ProbeError {
        pid,
        message: e.to_string(),
    };
    let p = Process::new(pid as i32).map_err(err)?;
    let stat = p.stat().map_err(err)?;
    let status = p.status().map_err(err)?;
    let io = p.io().map_err(err)?;
    let ticks = procfs::ticks_per_second() as f64;
    Ok(Counters {
        cpu_user_s: stat.utime as f64 / ticks,
        cpu_sys_s: stat.stime as f64 / ticks,
        io_read_bytes: io.read_bytes,
        io_write_bytes: io.write_bytes,
        rss_bytes: status.vmrss.unwrap_or(0) * 1024,
        peak_rss_bytes: status.vmhwm.unwrap_or(0) * 1024,
    })
}

/// Resets the kernel's peak-RSS mark so that the next [`read`] reports the peak of what
/// follows. False if the kernel refused (then only sampled peaks are available).
pub fn reset_peak(pid: u32) -> bool {
    Process::new(pid as i32)
        .and_then(|p| p.clear_refs(ClearRefs::PeakRSS))
        .is_ok()
}

/// Samples the resident memory of some processes at a fixed rate on its own thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Vec<u64>>>,
}

impl Sampler {
    pub fn start(pids: Vec<u32>, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let procs: Vec<Option<Process>> =
                    pids.iter().map(|&p| Process::new(p as i32).ok()).collect();
                let page = procfs::page_size();
                let mut samples = vec![Vec::new(); pids.len()];
                let mut next = Instant::now();
                loop {
                    for (proc_, out) in procs.iter().zip(samples.iter_mut()) {
                        if let Some(statm) = proc_.as_ref().and_then(|p| p.statm().ok()) {
                            out.push(statm.resident * page);
                        }
                    }
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    // Fixed-rate schedule; if a read was slow, skip ahead instead of bursting.
                    next += interval;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
                samples
            })
            .expect("spawning a thread");
        Self { stop, handle }
    }

    /// Stops sampling (after one last sample) and returns the RSS samples of each process, in
    /// bytes, in the order the pids were given.
    pub fn stop(self) -> Vec<Vec<u64>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the sampler does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let c = read(std::process::id()).unwrap();
        assert!(c.rss_bytes > 0 && c.peak_rss_bytes >= c.rss_bytes);
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(read(u32::MAX / 2).is_err());
    }
}
