//! Runs a scenario set: servers, drivers, rounds, measurements.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use workloads::Outcome;

use crate::HarnessError;
use crate::driver::{DriverProcess, DriverSpec};
use crate::metrics::{self, CATALOGUE};
use crate::probe::{self, Counters, Sampler};
use crate::results::{
    CommitInfo, MachineInfo, MetricSamples, Results, RunInfo, SCHEMA, ScenarioResult,
};
use crate::scenario::{PlannedScenario, ScenarioSet};
use crate::server::{BENCH_USER, ServerProcess};

const MIB: f64 = (1u64 << 20) as f64;
const READY_TIMEOUT: Duration = Duration::from_secs(300);
const DONE_TIMEOUT: Duration = Duration::from_secs(900);

/// How to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub server_bin: PathBuf,
    /// The `soledad-bench` executable whose `drive` subcommand runs workloads.
    pub driver_bin: PathBuf,
    pub sample_interval: Duration,
    pub seed: u64,
    /// Parent of the per-scenario directories (server data, client stores). It should be on
    /// the storage being measured, not a RAM disk.
    pub work_root: PathBuf,
    /// Show a progress bar and per-scenario lines on stderr.
    pub progress: bool,
}

/// Runs every scenario of `set` and returns the results; nothing is written anywhere else.
pub fn run(
    set: &ScenarioSet,
    commit: CommitInfo,
    machine: MachineInfo,
    config: &RunConfig,
) -> Result<Results, HarnessError> {
    let started_at = SystemTime::now();
    let progress = if config.progress {
        let bar =
            ProgressBar::with_draw_target(Some(set.total_rounds()), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} rounds, {eta} left  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    std::fs::create_dir_all(&config.work_root).map_err(HarnessError::io(format!(
        "cannot create work directory {}",
        config.work_root.display()
    )))?;

    let mut scenarios = Vec::with_capacity(set.scenarios.len());
    for planned in &set.scenarios {
        let result = run_scenario(planned, config, &progress)?;
        let wall = &result.metrics["wall_s"].samples;
        let mut sorted = wall.clone();
        sorted.sort_by(f64::total_cmp);
        progress.suspend(|| {
            eprintln!(
                "  {:<32} median wall {:.4} s over {} rounds",
                result.id,
                sorted[sorted.len() / 2],
                wall.len()
            )
        });
        scenarios.push(result);
    }
    progress.finish_and_clear();

    Ok(Results {
        schema: SCHEMA.into(),
        run: RunInfo {
            id: uuid::Uuid::new_v4().to_string(),
            started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
            finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            scenario_file: set.path.display().to_string(),
            sample_interval_ms: config.sample_interval.as_millis() as u64,
            seed: config.seed,
        },
        commit,
        machine,
        scenarios,
    })
}

fn run_scenario(
    planned: &PlannedScenario,
    config: &RunConfig,
    progress: &ProgressBar,
) -> Result<ScenarioResult, HarnessError> {
    let id = planned.id();
    let dir = tempfile::Builder::new()
        .prefix("scenario-")
        .tempdir_in(&config.work_root)
        .map_err(HarnessError::io(format!(
            "cannot create a directory in {}",
            config.work_root.display()
        )))?;
    let mut server = ServerProcess::start(&config.server_bin, dir.path())?;
    let mut samples: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let total = planned.warmup_rounds + planned.rounds;
    for round in 0..total {
        let warmup = round < planned.warmup_rounds;
        progress.set_message(format!(
            "{id} {}",
            if warmup {
                "warm-up".into()
            } else {
                format!("round {}", round - planned.warmup_rounds + 1)
            }
        ));
        let fail = |message: String| HarnessError::Round {
            scenario: id.clone(),
            round,
            message,
        };
        let measured = measure_round(
            planned,
            config,
            &server,
            dir.path().join(format!("round-{round}")),
            round,
        )
        .map_err(fail)?;
        server.check_alive().map_err(fail)?;
        if !warmup {
            for (name, value) in measured {
                samples.entry(name).or_default().push(value);
            }
        }
        progress.inc(1);
    }
    let metrics = samples
        .into_iter()
        .map(|(name, samples)| {
            let def = metrics::lookup(name).expect("only catalogue metrics are recorded");
            (
                name.to_owned(),
                MetricSamples {
                    unit: def.unit.into(),
                    direction: def.direction,
                    samples,
                },
            )
        })
        .collect();
    Ok(ScenarioResult {
        id,
        workload: planned.params.workload.name().into(),
        workload_version: planned.params.workload.version(),
        definition_hash: planned.params.definition_hash(),
        description: planned.params.describe(),
        params: planned.params.clone(),
        warmup_rounds: planned.warmup_rounds,
        rounds: planned.rounds,
        metrics,
    })
}

/// One round: prepare the driver, measure both processes around the workload.
fn measure_round(
    planned: &PlannedScenario,
    config: &RunConfig,
    server: &ServerProcess,
    work_dir: PathBuf,
    round: u32,
) -> Result<Vec<(&'static str, f64)>, String> {
    let url = server.url();
    let mut driver = DriverProcess::spawn(&DriverSpec {
        exe: &config.driver_bin,
        server_url: &url,
        user: BENCH_USER,
        token: server.token(),
        params: &planned.params,
        round,
        seed: config.seed,
        work_dir: &work_dir,
    })?;
    driver.wait_ready(READY_TIMEOUT)?;
    let pids = [driver.pid(), server.pid()];
    let reset = pids.map(probe::reset_peak);
    let before = [probe::read(pids[0]), probe::read(pids[1])];
    let sampler = Sampler::start(pids.to_vec(), config.sample_interval);
    driver.go()?;
    let outcome = driver.wait_done(DONE_TIMEOUT);
    let after = [probe::read(pids[0]), probe::read(pids[1])];
    let rss = sampler.stop();
    let outcome = outcome?;
    driver.finish()?;
    let [client_before, server_before] = before.map(|r| r.map_err(|e| e.to_string()));
    let [client_after, server_after] = after.map(|r| r.map_err(|e| e.to_string()));
    let mut out = workload_metrics(&outcome);
    out.extend(process_metrics(
        "client",
        &client_before?,
        &client_after?,
        &rss[0],
        reset[0],
    ));
    out.extend(process_metrics(
        "server",
        &server_before?,
        &server_after?,
        &rss[1],
        reset[1],
    ));
    debug_assert!(
        out.iter()
            .all(|(n, _)| CATALOGUE.iter().any(|m| m.name == *n))
    );
    Ok(out)
}

fn workload_metrics(o: &Outcome) -> Vec<(&'static str, f64)> {
    let wall = o.wall_s.max(1e-9);
    let mut out = vec![
        ("wall_s", o.wall_s),
        ("throughput_mib_s", o.bytes as f64 / MIB / wall),
        ("ops_s", o.ops as f64 / wall),
    ];
    if !o.op_latencies_ms.is_empty() {
        let mut l = o.op_latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        out.push(("latency_p50_ms", nearest_rank(&l, 0.50)));
        out.push(("latency_p99_ms", nearest_rank(&l, 0.99)));
    }
    out
}

/// The nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn process_metrics(
    who: &str,
    before: &Counters,
    after: &Counters,
    rss: &[u64],
    peak_was_reset: bool,
) -> Vec<(&'static str, f64)> {
    let sampled_peak = rss.iter().copied().max().unwrap_or(0);
    let kernel_peak = if peak_was_reset {
        after.peak_rss_bytes
    } else {
        0
    };
    let mean = if rss.is_empty() {
        after.rss_bytes as f64
    } else {
        rss.iter().sum::<u64>() as f64 / rss.len() as f64
    };
    let values = [
        ("cpu_user_s", after.cpu_user_s - before.cpu_user_s),
        ("cpu_sys_s", after.cpu_sys_s - before.cpu_sys_s),
        ("rss_peak_mib", kernel_peak.max(sampled_peak) as f64 / MIB),
        ("rss_mean_mib", mean / MIB),
        (
            "io_read_mib",
            after.io_read_bytes.saturating_sub(before.io_read_bytes) as f64 / MIB,
        ),
        (
            "io_write_mib",
            after.io_write_bytes.saturating_sub(before.io_write_bytes) as f64 / MIB,
        ),
    ];
    values
        .into_iter()
        .map(|(suffix, v)| {
            let name = CATALOGUE
                .iter()
                .find(|m| {
                    m.name.strip_prefix(who).and_then(|r| r.strip_prefix('_')) == Some(suffix)
                })
                .expect("every process metric is in the catalogue")
                .name;
            (name, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), 5.0);
        assert_eq!(nearest_rank(&v, 0.99), 10.0);
        assert_eq!(nearest_rank(&[3.0], 0.99), 3.0);
    }

    #[test]
    fn process_metrics_are_deltas_and_peaks() {
        let before = Counters {
            cpu_user_s: 1.0,
            cpu_sys_s: 0.5,
            io_read_bytes: 0,
            io_write_bytes: 1 << 20,
            rss_bytes: 0,
            peak_rss_bytes: 0,
        };
        let after = Counters {
            cpu_user_s: 1.25,
            cpu_sys_s: 0.75,
            io_read_bytes: 0,
            io_write_bytes: 3 << 20,
            rss_bytes: 10 << 20,
            peak_rss_bytes: 40 << 20,
        };
        let m: BTreeMap<_, _> =
            process_metrics("server", &before, &after, &[(10 << 20), (30 << 20)], true)
                .into_iter()
                .collect();
        assert_eq!(m["server_cpu_user_s"], 0.25);
        assert_eq!(m["server_cpu_sys_s"], 0.25);
        assert_eq!(m["server_io_write_mib"], 2.0);
        assert_eq!(m["server_rss_peak_mib"], 40.0);
        assert_eq!(m["server_rss_mean_mib"], 20.0);
        // Without a reset the kernel's mark may predate the round: only samples count.
        let m: BTreeMap<_, _> =
            process_metrics("client", &before, &after, &[(10 << 20), (30 << 20)], false)
                .into_iter()
                .collect();
        assert_eq!(m["client_rss_peak_mib"], 30.0);
    }
}
