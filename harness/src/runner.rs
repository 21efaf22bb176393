//! Runs a scenario set: servers, drivers, rounds, measurements, adaptive stopping.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use workloads::spec::Extra;
use workloads::{Latencies, Outcome, WorkloadKind};

use crate::HarnessError;
use crate::count::{Counted, Valgrind};
use crate::driver::{DriverProcess, DriverSpec, INTERRUPTED, ServerAccess};
use contract::budget::Progress;
use contract::metrics::{self, CATALOGUE};
use contract::results::{BudgetReport, CommitInfo, MachineInfo, MetricSamples, RunInfo, SCHEMA};
use workloads::Params;

use crate::ping::{PING_INTERVAL, Pinger};
use crate::probe::{self, Counters, Sampler};

/// A run's results as the harness writes them, with its workloads' parameters.
pub type Results = contract::Results<Params>;
pub type ScenarioResult = contract::results::ScenarioResult<Params>;
use crate::scenario::{PlannedScenario, ScenarioSet};
use crate::server::{BENCH_USER, ServerProcess};
use crate::trash::Trash;

const MIB: f64 = (1u64 << 20) as f64;
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// Time allowed for a measured part beyond a load workload's own duration.
const DONE_TIMEOUT: Duration = Duration::from_secs(900);
/// Time allowed for the measured part under Callgrind, which runs it 10 to 50 times slower.
const COUNTED_DONE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The statistic that decides when a scenario has been measured precisely enough. The
/// harness does not compute statistics itself: the caller passes the collector's.
pub trait Precision: Send + Sync {
    /// Relative half-width of the 95% confidence interval of the median of `samples`, or
    /// `None` when it cannot be computed.
    fn relative_ci_half_width(&self, samples: &[f64]) -> Option<f64>;

    /// Relative half-width of the 95% confidence interval of the paired ratio of `b` to `a`
    /// (round `i` of each ran side by side), or `None` when it cannot be computed.
    fn paired_relative_ci_half_width(&self, a: &[f64], b: &[f64]) -> Option<f64>;
}

/// A server the harness did not start (`--target`): only what can be seen over HTTP is
/// measured.
#[derive(Debug, Clone)]
pub struct ExternalServer {
    pub url: String,
    pub user: String,
    pub token: String,
    /// Its services listener and the MX's token there, for the incoming workloads.
    pub services: Option<(String, String)>,
}

/// How to run.
#[derive(Clone)]
pub struct RunConfig {
    pub server_bin: PathBuf,
    /// The `soledad-bench` executable whose `drive` subcommand runs workloads.
    pub driver_bin: PathBuf,
    pub sample_interval: Duration,
    pub seed: u64,
    /// Seed the scenario order was shuffled with, recorded in the results.
    pub shuffle_seed: Option<u64>,
    /// Parent of the per-scenario directories (server data, client stores). It should be on
    /// the storage being measured, not a RAM disk.
    pub work_root: PathBuf,
    /// Show a progress bar and per-scenario lines on stderr.
    pub progress: bool,
    /// Benchmark this server instead of starting one per scenario.
    pub target: Option<ExternalServer>,
    pub precision: Arc<dyn Precision>,
    /// Set (by a Ctrl-C handler) to stop at the next opportunity; the run then returns
    /// [`HarnessError::Interrupted`] and nothing is written.
    pub interrupted: Arc<AtomicBool>,
    /// Where finished rounds and scenarios leave their data, one per process (see `trash`).
    pub trash: Arc<Trash>,
    /// Runs the count round of every fixed-work scenario (see `count`); `None` skips it.
    pub valgrind: Option<Valgrind>,
}

/// Where the rounds of a scenario send their requests.
enum ServerSide {
    None,
    /// A server the harness started; on the S3 backend, with its Garage cluster (dropped
    /// after the server).
    Local(
        ServerProcess,
        #[allow(dead_code, reason = "held, not read: it stops the cluster when dropped")]
        Option<workloads::garage::Garage>,
        /// How it was started, to start it again on the same data.
        Restart,
    ),
    External(ExternalServer),
}

/// A local server's binary, data directory and environment.
struct Restart {
    binary: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Restart {
    fn new(build: &Build, dir: &std::path::Path, env: Vec<(String, String)>) -> Self {
        Self {
            binary: build.server_bin.clone(),
            dir: dir.to_owned(),
            env,
        }
    }
}

impl ServerSide {
    /// Stops a local server and starts it again on the same data; others are left alone.
    fn restart(&mut self) -> Result<(), HarnessError> {
        if let ServerSide::Local(server, _, how) = self {
            server.stop();
            *server = ServerProcess::start(&how.binary, &how.dir, &how.env, None)?;
        }
        Ok(())
    }

    fn access(&self) -> Option<ServerAccess<'_>> {
        match self {
            ServerSide::None => None,
            ServerSide::Local(s, _, _) => Some(ServerAccess {
                url: s.url(),
                user: BENCH_USER,
                token: s.token(),
                services: Some((s.services_url(), s.service_token())),
            }),
            ServerSide::External(e) => Some(ServerAccess {
                url: &e.url,
                user: &e.user,
                token: &e.token,
                services: e.services.as_ref().map(|(url, token)| (url.as_str(), token.as_str())),
            }),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            ServerSide::Local(s, _, _) => Some(s.pid()),
            _ => None,
        }
    }
}

/// One build of the stack: the binaries one side of a comparison runs.
#[derive(Debug, Clone)]
pub struct Build {
    pub server_bin: PathBuf,
    /// The `soledad-bench` executable whose `drive` subcommand runs workloads.
    pub driver_bin: PathBuf,
    /// Environment of the build's server and drivers (a build may carry runtime settings).
    pub env: Vec<(String, String)>,
}

impl Build {
    /// A build whose binaries sit in `dir` under their own names (`soledad-bench`,
    /// `blobs-server`); whether they are there is for the caller to check.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Self {
            server_bin: dir.join("blobs-server"),
            driver_bin: dir.join("soledad-bench"),
            env: Vec::new(),
        }
    }
}

impl RunConfig {
    /// The build this configuration measures: its server and driver.
    pub fn build(&self) -> Build {
        Build {
            server_bin: self.server_bin.clone(),
            driver_bin: self.driver_bin.clone(),
            env: Vec::new(),
        }
    }
}

/// Running totals across the run.
#[derive(Default)]
struct Totals {
    sampler_cpu: Duration,
    measured: Duration,
}

fn progress_bar(config: &RunConfig, rounds: u64) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(rounds), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} rounds, ~{eta} left  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn run_info(set: &ScenarioSet, config: &RunConfig, started_at: SystemTime, totals: &Totals) -> RunInfo {
    RunInfo {
        id: uuid::Uuid::new_v4().to_string(),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario_file: set.path.display().to_string(),
        sample_interval_ms: config.sample_interval.as_millis() as u64,
        seed: config.seed,
        shuffle_seed: config.shuffle_seed,
        target: config.target.as_ref().map(|t| t.url.clone()),
        sampler_cpu_s: totals.sampler_cpu.as_secs_f64(),
        measured_s: totals.measured.as_secs_f64(),
        pairing: None,
    }
}

/// Runs every scenario of `set` and returns the results; nothing is written anywhere.
pub fn run(
    set: &ScenarioSet,
    commit: CommitInfo,
    machine: MachineInfo,
    config: &RunConfig,
) -> Result<Results, HarnessError> {
    let [results] = run_builds(set, [commit], machine, config, [config.build()], [true], false)?;
    Ok(results)
}

/// Runs every scenario of `set` with the binaries of `build` (a revision other than the one
/// running, as in backfills).
pub fn run_build(
    set: &ScenarioSet,
    commit: CommitInfo,
    machine: MachineInfo,
    config: &RunConfig,
    build: Build,
) -> Result<Results, HarnessError> {
    let [results] = run_builds(set, [commit], machine, config, [build], [true], false)?;
    Ok(results)
}

/// Runs two builds on every scenario of `set`, their rounds interleaved A B B A A B ... so
/// that drift of the machine hits both alike. Returns one results set per build; round `i`
/// of one and round `i` of the other ran side by side, which paired statistics rely on.
pub fn run_interleaved(
    set: &ScenarioSet,
    commits: [CommitInfo; 2],
    machine: MachineInfo,
    config: &RunConfig,
    builds: [Build; 2],
) -> Result<[Results; 2], HarnessError> {
    run_builds(set, commits, machine, config, builds, [true, true], false)
}

/// [`run_interleaved`] for a per-commit run paired with a baseline build (A): only B, the
/// commit, gets a count round, since counts need no pairing (the baseline's are in the
/// history), and scenarios marked `paired = false` run B alone (A's results lack them).
pub fn run_paired(
    set: &ScenarioSet,
    commits: [CommitInfo; 2],
    machine: MachineInfo,
    config: &RunConfig,
    builds: [Build; 2],
) -> Result<[Results; 2], HarnessError> {
    run_builds(set, commits, machine, config, builds, [false, true], true)
}

fn run_builds<const N: usize>(
    set: &ScenarioSet,
    commits: [CommitInfo; N],
    machine: MachineInfo,
    config: &RunConfig,
    builds: [Build; N],
    counted: [bool; N],
    last_alone_when_unpaired: bool,
) -> Result<[Results; N], HarnessError> {
    let started_at = SystemTime::now();
    let progress = progress_bar(config, set.max_rounds() * N as u64);
    std::fs::create_dir_all(&config.work_root).map_err(HarnessError::io(format!(
        "cannot create work directory {}",
        config.work_root.display()
    )))?;

    let mut totals = Totals::default();
    let mut per_build: [Vec<ScenarioResult>; N] = std::array::from_fn(|_| Vec::with_capacity(set.scenarios.len()));
    for planned in &set.scenarios {
        let started = Instant::now();
        if last_alone_when_unpaired && !planned.paired {
            // The last build alone; the others get no result for this scenario.
            let last = N - 1;
            let (results, count_time) = run_scenario(
                planned,
                config,
                &[builds[last].clone()],
                [counted[last]],
                &progress,
                &mut totals,
            )?;
            progress.suspend(|| report_scenario(&results, started.elapsed(), count_time));
            let [result] = results;
            per_build[last].push(result);
            continue;
        }
        let (results, count_time) = run_scenario(planned, config, &builds, counted, &progress, &mut totals)?;
        progress.suspend(|| report_scenario(&results, started.elapsed(), count_time));
        for (list, result) in per_build.iter_mut().zip(results) {
            list.push(result);
        }
    }
    progress.finish_and_clear();
    let mut commits = commits.into_iter();
    Ok(per_build.map(|scenarios| Results {
        schema: SCHEMA.into(),
        run: run_info(set, config, started_at, &totals),
        commit: commits.next().expect("one commit per build"),
        machine: machine.clone(),
        scenarios,
    }))
}

/// One line per scenario on stderr: what it measured and how precisely, and how long its
/// count round took of the whole.
fn report_scenario(results: &[ScenarioResult], took: Duration, counted: Option<Duration>) {
    for (side, result) in results.iter().enumerate() {
        let budget = result.budget.as_ref().expect("set by run_scenario");
        let mut sorted = result.metrics[&budget.headline_metric].samples.clone();
        sorted.sort_by(f64::total_cmp);
        let label = if results.len() > 1 {
            format!("{} ", ["A", "B"].get(side).unwrap_or(&"?"))
        } else {
            String::new()
        };
        eprintln!(
            "  {label}{:<40} {} median {:.4} ±{:.1}% over {} rounds in {:.0}s{}{}",
            result.id,
            budget.headline_metric,
            sorted[sorted.len() / 2],
            budget.achieved_ci * 100.0,
            result.rounds,
            took.as_secs_f64(),
            counted.map_or(String::new(), |c| format!(" ({:.0}s counting)", c.as_secs_f64())),
            if budget.noisy && budget.paired_ci.is_none() {
                format!(" (noisy: {})", budget.stop_reason)
            } else {
                String::new()
            }
        );
    }
    // Interleaved builds stop on their ratio's interval, the same on both sides.
    if let Some(budget) = results.last().and_then(|r| r.budget.as_ref())
        && let Some(ci) = budget.paired_ci
    {
        eprintln!(
            "  {:<42} B/A ratio ±{:.1}%{}",
            "",
            ci * 100.0,
            if budget.noisy {
                format!(" (noisy: {})", budget.stop_reason)
            } else {
                String::new()
            }
        );
    }
}

fn interrupted(config: &RunConfig) -> Result<(), HarnessError> {
    if config.interrupted.load(Ordering::Relaxed) {
        Err(HarnessError::Interrupted)
    } else {
        Ok(())
    }
}

/// What one build has measured of a scenario so far.
struct SideState {
    samples: BTreeMap<&'static str, Vec<f64>>,
    latencies: Latencies,
    achieved_ci: f64,
}

/// The order of the builds in round `round`: A B, then B A, and so on.
fn round_order(round: u32, builds: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..builds).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// The server a scenario's rounds talk to, started with its data under `dir` (on the S3
/// backend with a Garage cluster of its own); under Callgrind when `count` is given.
fn start_server(
    planned: &PlannedScenario,
    config: &RunConfig,
    build: &Build,
    dir: &std::path::Path,
    count: Option<&Counted>,
) -> Result<ServerSide, HarnessError> {
    Ok(match (&config.target, planned.params.workload.needs_server()) {
        (_, false) => ServerSide::None,
        (Some(t), true) => ServerSide::External(t.clone()),
        (None, true) if planned.params.backend == Some(workloads::ServerBackendKind::S3) => {
            let garage = workloads::garage::Garage::start(&dir.join("garage"))
                .map_err(|e| HarnessError::ServerStart(e.to_string()))?;
            let mut env = build.env.clone();
            env.extend(garage.server_env("bench"));
            let server = ServerProcess::start(&build.server_bin, dir, &env, count)?;
            ServerSide::Local(server, Some(garage), Restart::new(build, dir, env))
        }
        (None, true) => {
            let server = ServerProcess::start(&build.server_bin, dir, &build.env, count)?;
            ServerSide::Local(server, None, Restart::new(build, dir, build.env.clone()))
        }
    })
}

fn run_scenario<const N: usize>(
    planned: &PlannedScenario,
    config: &RunConfig,
    builds: &[Build; N],
    count_sides: [bool; N],
    progress: &ProgressBar,
    totals: &mut Totals,
) -> Result<([ScenarioResult; N], Option<Duration>), HarnessError> {
    interrupted(config)?;
    let id = planned.id();
    let b = &planned.budget;
    let headline = planned.params.workload.headline_metric();
    let dir = tempfile::Builder::new()
        .prefix("scenario-")
        .tempdir_in(&config.work_root)
        .map_err(HarnessError::io(format!(
            "cannot create a directory in {}",
            config.work_root.display()
        )))?;
    // Each build gets its own server and data directory.
    let mut servers = Vec::with_capacity(N);
    for (i, build) in builds.iter().enumerate() {
        let side_dir = dir.path().join(format!("build-{i}"));
        std::fs::create_dir_all(&side_dir)
            .map_err(HarnessError::io(format!("cannot create {}", side_dir.display())))?;
        servers.push(start_server(planned, config, build, &side_dir, None)?);
    }
    let mut sides: Vec<SideState> = (0..N)
        .map(|_| SideState {
            samples: BTreeMap::new(),
            latencies: Latencies::new(),
            achieved_ci: f64::INFINITY,
        })
        .collect();

    let mut measured_rounds = 0;
    let mut measured_time = Duration::ZERO;
    let mut paired_ci: Option<f64> = None;
    let stop_reason;
    let mut round = 0;
    loop {
        let warmup = round < b.warmup_rounds;
        let worst_ci = sides.iter().map(|s| s.achieved_ci).fold(0.0, f64::max);
        progress.set_message(if warmup {
            format!("{id} warm-up")
        } else if worst_ci.is_finite() {
            format!("{id} round {} (±{:.1}%)", measured_rounds + 1, worst_ci * 100.0)
        } else {
            format!("{id} round {}", measured_rounds + 1)
        });
        let started = Instant::now();
        for side in round_order(round, N) {
            let fail = |message: String| {
                if message == INTERRUPTED {
                    HarnessError::Interrupted
                } else {
                    HarnessError::Round {
                        scenario: id.clone(),
                        round,
                        message,
                    }
                }
            };
            let side_dir = dir.path().join(format!("build-{side}"));
            // Interleaved builds each get a fresh server for every round: rounds that share
            // one server process share its state (its memory, a process that happens to be
            // slow), so they are not independent samples of the build, which the paired
            // statistics need (measured: identical builds then differed in most comparisons).
            if N > 1 && round > 0 {
                servers[side].restart().map_err(|e| fail(e.to_string()))?;
            }
            let m = measure_round(planned, config, &builds[side], &servers[side], &side_dir, round).map_err(fail)?;
            if let ServerSide::Local(s, _, _) = &mut servers[side] {
                s.check_alive().map_err(fail)?;
            }
            progress.inc(1);
            totals.sampler_cpu += m.sampler_cpu;
            totals.measured += Duration::from_secs_f64(m.wall_s);
            if warmup {
                continue;
            }
            let state = &mut sides[side];
            for (name, value) in m.metrics {
                state.samples.entry(name).or_default().push(value);
            }
            if let Some(l) = m.latencies {
                state.latencies.merge(&l);
            }
        }
        round += 1;
        if warmup {
            continue;
        }
        measured_time += started.elapsed();
        measured_rounds += 1;
        for state in &mut sides {
            state.achieved_ci = state
                .samples
                .get(headline)
                .and_then(|s| config.precision.relative_ci_half_width(s))
                .unwrap_or(f64::INFINITY);
        }
        // Two builds side by side are there to be compared: their ratio's interval is what
        // must be narrow, and it narrows far faster than either side's own (the machine's
        // drift cancels within a round).
        if let [a, b] = &sides[..] {
            paired_ci = match (a.samples.get(headline), b.samples.get(headline)) {
                (Some(a), Some(b)) => config.precision.paired_relative_ci_half_width(a, b),
                _ => None,
            };
        }
        let progress = Progress {
            rounds: measured_rounds,
            elapsed: measured_time,
            worst_ci: if N == 2 {
                paired_ci.unwrap_or(f64::INFINITY)
            } else {
                sides.iter().map(|s| s.achieved_ci).fold(0.0, f64::max)
            },
            builds: N as u32,
        };
        if let Some(reason) = b.stop(&progress) {
            stop_reason = reason;
            break;
        }
    }
    // Stopped before their data directories are moved, and before the count round.
    drop(servers);
    let mut counts: Vec<Vec<(&'static str, f64)>> = vec![Vec::new(); N];
    let mut counted = None;
    if let Some(valgrind) = config.valgrind.as_ref().filter(|_| planned.count_round) {
        let count_started = Instant::now();
        progress.set_message(format!("{id} count round (Valgrind)"));
        // In memory where there is room (`count::Valgrind::scratch`), removed with the guard;
        // where it cannot be made, under the scenario's directory, as without room.
        let scratch = valgrind.scratch().unwrap_or_else(|e| {
            progress.suspend(|| eprintln!("  {id}: count round on disk: no directory in memory: {e}"));
            None
        });
        let count_root = scratch.as_ref().map_or(dir.path(), |d| d.path());
        progress.set_message(format!("{id} count round (Valgrind; waiting for another run's to end)"));
        let _cpu = valgrind.take_the_cpu();
        progress.set_message(format!("{id} count round (Valgrind)"));
        for (side, build) in builds.iter().enumerate().filter(|(side, _)| count_sides[*side]) {
            let count_dir = count_root.join(format!("build-{side}")).join("count");
            match count_round(planned, config, build, side, &count_dir, valgrind) {
                Ok(c) => counts[side] = c,
                Err(e) if e == INTERRUPTED => return Err(HarnessError::Interrupted),
                // A count round that fails costs the scenario its counts, not the run its
                // timed rounds: Valgrind can fail where the stack works (a ptrace policy that
                // stops vgdb, an instruction it does not know).
                Err(e) => {
                    progress.suspend(|| eprintln!("  {id}: no instruction counts: {e}"));
                    counts = vec![Vec::new(); N];
                    break;
                }
            }
        }
        counted = Some(count_started.elapsed());
    }
    config
        .trash
        .discard(dir.path())
        .map_err(HarnessError::io(format!("cannot clear {}", dir.path().display())))?;
    // The bar counted on the most rounds; give back the ones not needed.
    let unused = (b.max_rounds - measured_rounds) as u64 * N as u64;
    progress.set_length(progress.length().unwrap_or(0).saturating_sub(unused));

    let mut out = Vec::with_capacity(N);
    for (state, counts) in sides.into_iter().zip(counts) {
        let mut metrics = BTreeMap::new();
        for (name, values) in state.samples {
            if values.len() != measured_rounds as usize {
                return Err(HarnessError::Round {
                    scenario: id,
                    round,
                    message: format!(
                        "metric {name} was measured in only {} of {measured_rounds} rounds",
                        values.len()
                    ),
                });
            }
            metrics.insert(name.to_owned(), catalogue_samples(name, values));
        }
        for (name, value) in counts {
            metrics.insert(name.to_owned(), catalogue_samples(name, vec![value]));
        }
        let achieved = state.achieved_ci;
        out.push(ScenarioResult {
            id: id.clone(),
            workload: planned.params.workload.name().into(),
            workload_version: planned.params.workload.version(),
            definition_hash: planned.params.definition_hash(),
            description: planned.params.describe(),
            params: planned.params.clone(),
            fixed_duration: !planned.params.workload.fixed_work(),
            warmup_rounds: b.warmup_rounds,
            rounds: measured_rounds,
            budget: Some(BudgetReport {
                min_rounds: b.min_rounds,
                max_rounds: b.max_rounds,
                max_time_s: b.max_time.as_secs_f64(),
                target_ci: b.target_ci,
                headline_metric: headline.into(),
                achieved_ci: if achieved.is_finite() { achieved } else { -1.0 },
                paired_ci: paired_ci.filter(|c| c.is_finite()),
                stop_reason,
                noisy: if N == 2 {
                    paired_ci.is_none_or(|c| c > b.target_ci)
                } else {
                    achieved > b.target_ci
                },
            }),
            metrics,
            latency_histogram: (!state.latencies.is_empty()).then(|| state.latencies.encode()),
        });
    }
    let out = out.try_into().unwrap_or_else(|_| unreachable!("one result per build"));
    Ok((out, counted))
}

/// What one round measured.
struct Measured {
    metrics: Vec<(&'static str, f64)>,
    latencies: Option<Latencies>,
    wall_s: f64,
    sampler_cpu: Duration,
}

/// One round: prepare the driver, measure both processes around the workload.
fn measure_round(
    planned: &PlannedScenario,
    config: &RunConfig,
    build: &Build,
    server: &ServerSide,
    scenario_dir: &std::path::Path,
    round: u32,
) -> Result<Measured, String> {
    let shared = scenario_dir.join("shared");
    std::fs::create_dir_all(&shared).map_err(|e| format!("cannot create {}: {e}", shared.display()))?;
    let work_dir = scenario_dir.join(format!("round-{round}"));
    let mut driver = DriverProcess::spawn(&DriverSpec {
        exe: &build.driver_bin,
        server: server.access(),
        params: &planned.params,
        round,
        seed: config.seed,
        work_dir: &work_dir,
        scenario_dir: &shared,
        env: &build.env,
        count: None,
    })?;
    driver.wait_ready(READY_TIMEOUT, &config.interrupted)?;
    let pinger = match server.access() {
        Some(s) => Some(Pinger::start(s.url, PING_INTERVAL)?),
        None => None,
    };
    let pids: Vec<u32> = std::iter::once(driver.pid()).chain(server.pid()).collect();
    let before: Vec<_> = pids.iter().map(|&p| probe::read(p)).collect();
    let sampler = Sampler::start(pids.clone(), config.sample_interval);
    driver.go()?;
    let outcome = driver.wait_done(DONE_TIMEOUT, &config.interrupted);
    let after: Vec<_> = pids.iter().map(|&p| probe::read(p)).collect();
    let sampled = sampler.stop();
    let pings = pinger.map(Pinger::stop);
    let outcome = outcome?;
    driver.finish()?;
    // A round's client data is not needed again; its small files are deleted only after the
    // last measurement (see `trash`).
    let _ = config.trash.discard(&work_dir);

    let latencies = outcome
        .latency
        .as_deref()
        .map(Latencies::decode)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut out = workload_metrics(planned.params.workload, &outcome, latencies.as_ref());
    for (i, who) in ["client", "server"].into_iter().enumerate().take(pids.len()) {
        let (b, a) = (
            before[i].as_ref().map_err(|e| e.to_string())?,
            after[i].as_ref().map_err(|e| e.to_string())?,
        );
        out.extend(process_metrics(who, b, a, &sampled.anon[i], outcome.wall_s));
    }
    if let Some(pings) = pings {
        out.extend(percentiles("server_ping", &pings));
    }
    debug_assert!(
        out.iter().all(|(n, _)| CATALOGUE.iter().any(|m| m.name == *n)),
        "{out:?}"
    );
    Ok(Measured {
        metrics: out,
        latencies,
        wall_s: outcome.wall_s,
        sampler_cpu: sampled.own_cpu,
    })
}

/// The count round of one build: a fresh server and driver under Callgrind, counting on in
/// both only while the driver runs its measured part (see `count`). Returns the instructions
/// of each process; the server's only for a server the harness started.
fn count_round(
    planned: &PlannedScenario,
    config: &RunConfig,
    build: &Build,
    side: usize,
    dir: &std::path::Path,
    valgrind: &Valgrind,
) -> Result<Vec<(&'static str, f64)>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let server_count = valgrind.counted(dir, "server");
    let client_count = valgrind.counted(dir, "client");
    let mut server = start_server(planned, config, build, dir, Some(&server_count)).map_err(|e| e.to_string())?;
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).map_err(|e| format!("cannot create {}: {e}", shared.display()))?;
    let mut driver = DriverProcess::spawn(&DriverSpec {
        exe: &build.driver_bin,
        server: server.access(),
        params: &planned.params,
        // Always the first round's number: what a round does may depend on it.
        round: 0,
        seed: config.seed,
        work_dir: &dir.join("round"),
        scenario_dir: &shared,
        env: &build.env,
        count: Some(&client_count),
    })?;
    driver.wait_ready(READY_TIMEOUT, &config.interrupted)?;
    let server_pid = server.pid();
    if let Some(pid) = server_pid {
        server_count.instrument(pid, true)?;
    }
    client_count.instrument(driver.pid(), true)?;
    driver.go()?;
    let outcome = driver.wait_done(COUNTED_DONE_TIMEOUT, &config.interrupted)?;
    client_count.instrument(driver.pid(), false)?;
    if let Some(pid) = server_pid {
        server_count.instrument(pid, false)?;
    }
    // Both write their profiles when they exit.
    driver.finish()?;
    if let ServerSide::Local(s, _, _) = &mut server {
        s.check_alive()?;
        s.stop();
    }
    drop(server);
    if outcome.errors > 0 {
        return Err(format!("{} operations failed under Valgrind", outcome.errors));
    }
    let mut out = vec![("client_instructions", client_count.instructions()? as f64)];
    // Named by build too: the two sides of a comparison are kept side by side.
    let file = |who: &str| {
        format!(
            "{}.build-{side}.{who}.{}.callgrind",
            planned.id().replace('/', "_"),
            std::process::id()
        )
    };
    client_count.keep(&file("client"))?;
    if server_pid.is_some() {
        out.push(("server_instructions", server_count.instructions()? as f64));
        server_count.keep(&file("server"))?;
    }
    Ok(out)
}

fn workload_metrics(workload: WorkloadKind, o: &Outcome, latencies: Option<&Latencies>) -> Vec<(&'static str, f64)> {
    let wall = o.wall_s.max(1e-9);
    let mut out = vec![("wall_s", o.wall_s), ("ops_s", o.ops as f64 / wall)];
    for &extra in workload.spec().extras {
        let value = match extra {
            Extra::Throughput => o.bytes as f64 / MIB / wall,
            Extra::SyncTime => o.wall_s,
            Extra::Errors => o.errors as f64,
        };
        out.push((catalogue_name(extra.metric()), value));
    }
    if let Some(l) = latencies {
        out.push(("latency_p50_ms", l.quantile_ms(0.50)));
        out.push(("latency_p95_ms", l.quantile_ms(0.95)));
        out.push(("latency_p99_ms", l.quantile_ms(0.99)));
        out.push(("latency_max_ms", l.max_ms()));
    }
    out.push(("client_loop_lag_p50_ms", o.loop_lag.p50_ms));
    out.push(("client_loop_lag_p99_ms", o.loop_lag.p99_ms));
    out.push(("client_loop_lag_max_ms", o.loop_lag.max_ms));
    let worker_time = wall * o.runtime_workers.max(1) as f64;
    out.push(("client_runtime_busy_pct", 100.0 * o.runtime_busy_s / worker_time));
    out
}

/// Median, 99th percentile and maximum, by nearest rank, as `PREFIX_p50_ms` and so on.
fn percentiles(prefix: &str, values: &[f64]) -> Vec<(&'static str, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let name = |suffix: &str| catalogue_name(&format!("{prefix}_{suffix}"));
    vec![
        (name("p50_ms"), nearest_rank(&sorted, 0.50)),
        (name("p99_ms"), nearest_rank(&sorted, 0.99)),
        (name("max_ms"), *sorted.last().unwrap_or(&0.0)),
    ]
}

/// A catalogue metric's samples, with its unit and direction.
fn catalogue_samples(name: &str, samples: Vec<f64>) -> MetricSamples {
    let def = metrics::lookup(name).expect("only catalogue metrics are recorded");
    MetricSamples {
        unit: def.unit.into(),
        direction: def.direction,
        samples,
    }
}

/// The catalogue's `&'static str` for a metric name built at run time.
fn catalogue_name(name: &str) -> &'static str {
    CATALOGUE
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the catalogue"))
        .name
}

/// The nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn process_metrics(
    who: &str,
    before: &Counters,
    after: &Counters,
    anon: &[u64],
    wall_s: f64,
) -> Vec<(&'static str, f64)> {
    // The sampler's last reading is taken when it stops, after the workload is done; the
    // counters read after it are a reading too (a peak between samples can still be missed).
    let peak = anon.iter().copied().max().unwrap_or(0).max(after.anon_bytes);
    let mean = if anon.is_empty() {
        after.anon_bytes as f64
    } else {
        anon.iter().sum::<u64>() as f64 / anon.len() as f64
    };
    let user = after.cpu_user_s - before.cpu_user_s;
    let sys = after.cpu_sys_s - before.cpu_sys_s;
    let mib = |a: u64, b: u64| a.saturating_sub(b) as f64 / MIB;
    let count = |a: u64, b: u64| a.saturating_sub(b) as f64;
    let switches = probe::switches(before, after);
    [
        ("cpu_user_s", user),
        ("cpu_sys_s", sys),
        ("cpu_pct", 100.0 * (user + sys) / wall_s.max(1e-9)),
        ("anon_peak_mib", peak as f64 / MIB),
        ("anon_mean_mib", mean / MIB),
        ("io_read_mib", mib(after.io_read_bytes, before.io_read_bytes)),
        ("io_write_mib", mib(after.io_write_bytes, before.io_write_bytes)),
        ("io_read_total_mib", mib(after.io_rchar, before.io_rchar)),
        ("io_write_total_mib", mib(after.io_wchar, before.io_wchar)),
        ("read_calls", count(after.read_calls, before.read_calls)),
        ("write_calls", count(after.write_calls, before.write_calls)),
        ("minor_faults", count(after.minor_faults, before.minor_faults)),
        ("major_faults", count(after.major_faults, before.major_faults)),
        ("voluntary_switches", switches.voluntary as f64),
        ("involuntary_switches", switches.involuntary as f64),
    ]
    .into_iter()
    .map(|(suffix, v)| (catalogue_name(&format!("{who}_{suffix}")), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Switches;

    #[test]
    fn builds_alternate_a_b_b_a() {
        let order: Vec<usize> = (0..4).flat_map(|r| round_order(r, 2)).collect();
        assert_eq!(order, [0, 1, 1, 0, 0, 1, 1, 0]);
        assert_eq!(round_order(3, 1), [0]);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), 5.0);
        assert_eq!(nearest_rank(&v, 0.99), 10.0);
        assert_eq!(nearest_rank(&[3.0], 0.99), 3.0);
        let p: BTreeMap<_, _> = percentiles("server_ping", &[5.0, 1.0, 3.0]).into_iter().collect();
        assert_eq!((p["server_ping_p50_ms"], p["server_ping_max_ms"]), (3.0, 5.0));
    }

    #[test]
    fn process_metrics_are_deltas_and_peaks() {
        let before = Counters {
            cpu_user_s: 1.0,
            cpu_sys_s: 0.5,
            io_write_bytes: 1 << 20,
            read_calls: 10,
            minor_faults: 100,
            switches: vec![
                (
                    1,
                    Switches {
                        voluntary: 5,
                        involuntary: 1,
                    },
                ),
                (
                    2,
                    Switches {
                        voluntary: 7,
                        involuntary: 0,
                    },
                ),
                (
                    3,
                    Switches {
                        voluntary: 9,
                        involuntary: 9,
                    },
                ),
            ],
            ..Counters::default()
        };
        let after = Counters {
            cpu_user_s: 1.25,
            cpu_sys_s: 0.75,
            io_write_bytes: 3 << 20,
            io_wchar: 5 << 20,
            anon_bytes: 10 << 20,
            read_calls: 25,
            write_calls: 4,
            minor_faults: 150,
            major_faults: 2,
            // Thread 2 lives on, 3 ended, 4 started during the round.
            switches: vec![
                (
                    1,
                    Switches {
                        voluntary: 6,
                        involuntary: 3,
                    },
                ),
                (
                    2,
                    Switches {
                        voluntary: 10,
                        involuntary: 0,
                    },
                ),
                (
                    4,
                    Switches {
                        voluntary: 2,
                        involuntary: 1,
                    },
                ),
            ],
            ..Counters::default()
        };
        let m: BTreeMap<_, _> = process_metrics("server", &before, &after, &[(10 << 20), (30 << 20)], 2.0)
            .into_iter()
            .collect();
        assert_eq!(m["server_cpu_user_s"], 0.25);
        assert_eq!(m["server_cpu_sys_s"], 0.25);
        assert_eq!(m["server_cpu_pct"], 25.0);
        assert_eq!(m["server_io_write_mib"], 2.0);
        assert_eq!(m["server_io_write_total_mib"], 5.0);
        assert_eq!(m["server_anon_peak_mib"], 30.0);
        assert_eq!(m["server_anon_mean_mib"], 20.0);
        assert_eq!((m["server_read_calls"], m["server_write_calls"]), (15.0, 4.0));
        assert_eq!((m["server_minor_faults"], m["server_major_faults"]), (50.0, 2.0));
        assert_eq!(m["server_voluntary_switches"], 1.0 + 3.0 + 2.0);
        assert_eq!(m["server_involuntary_switches"], 2.0 + 1.0);
        // The reading after the round counts when it is the highest.
        let high = Counters {
            anon_bytes: 40 << 20,
            ..after
        };
        let m: BTreeMap<_, _> = process_metrics("client", &before, &high, &[(10 << 20), (30 << 20)], 2.0)
            .into_iter()
            .collect();
        assert_eq!(m["client_anon_peak_mib"], 40.0);
    }
}
