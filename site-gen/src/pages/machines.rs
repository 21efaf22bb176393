//! The machines page: where the numbers come from, and how noisy each machine is.

use collector::statistics::verdict::Verdict;
use serde::Serialize;

use super::Site;
use super::methodology::{Calibration, calibrations};
use crate::SiteError;
use crate::format::share;

/// The noisiest series listed per machine.
const NOISIEST: usize = 8;

#[derive(Serialize)]
struct Noisy {
    scenario_id: String,
    metric: String,
    href: String,
    cv: String,
    mde: String,
}

#[derive(Serialize)]
struct MachineInfo {
    fingerprint: String,
    cpu_model: String,
    cores: i64,
    memory: String,
    kernel: String,
    os: String,
    rustc: String,
    profile: String,
    runs: usize,
    first_run: String,
    last_run: String,
    covariates: Vec<(String, String)>,
    series: usize,
    median_cv: String,
    median_mde: String,
    median_floor: String,
    noisy_share: String,
    noisiest: Vec<Noisy>,
    calibrations: Vec<Calibration>,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

pub fn write(site: &Site) -> Result<(), SiteError> {
    let model = site.model;
    let all_calibrations = calibrations(site, "", false);
    let machines: Vec<MachineInfo> = model
        .machines
        .iter()
        .map(|m| {
            let mut runs: Vec<_> = model.runs.values().filter(|r| r.machine_id == m.id).collect();
            runs.sort_by(|a, b| a.started_at.cmp(&b.started_at));
            let series: Vec<usize> = (0..model.series.len())
                .filter(|&i| model.series[i].series.machine_id == m.id)
                .collect();
            let latest_verdict = |i: usize| {
                model.series[i]
                    .verdicts
                    .last()
                    .copied()
                    .flatten()
                    .map(|v| &model.verdicts[v])
            };
            let mut noisiest: Vec<usize> = series.clone();
            noisiest.sort_by(|&a, &b| {
                let cv = |i: usize| model.series[i].latest().summary.cv();
                cv(b).total_cmp(&cv(a))
            });
            let noisy = series
                .iter()
                .filter(|&&i| latest_verdict(i).is_some_and(|v| v.verdict == Verdict::Noisy))
                .count();
            MachineInfo {
                fingerprint: m.fingerprint.clone(),
                cpu_model: m.cpu_model.clone(),
                cores: m.logical_cores,
                memory: format!("{:.1} GiB", m.memory_bytes as f64 / (1u64 << 30) as f64),
                kernel: m.kernel.clone(),
                os: m.os.clone(),
                rustc: m.rustc.clone(),
                profile: m.profile.clone(),
                runs: runs.len(),
                first_run: runs.first().map(|r| r.started_at.clone()).unwrap_or_default(),
                last_run: runs.last().map(|r| r.started_at.clone()).unwrap_or_default(),
                covariates: runs
                    .last()
                    .and_then(|r| model.covariates.get(&r.id))
                    .cloned()
                    .unwrap_or_default(),
                median_cv: median(series.iter().map(|&i| model.series[i].latest().summary.cv()).collect())
                    .map(share)
                    .unwrap_or_else(|| "–".into()),
                median_mde: median(
                    series
                        .iter()
                        .filter_map(|&i| model.series[i].latest().summary.mde)
                        .collect(),
                )
                .map(share)
                .unwrap_or_else(|| "–".into()),
                median_floor: median(
                    series
                        .iter()
                        .filter_map(|&i| latest_verdict(i).and_then(|v| v.noise_floor))
                        .collect(),
                )
                .map(share)
                .unwrap_or_else(|| "–".into()),
                noisy_share: if series.is_empty() {
                    "–".into()
                } else {
                    format!(
                        "{noisy} of {} ({})",
                        series.len(),
                        share(noisy as f64 / series.len() as f64)
                    )
                },
                series: series.len(),
                noisiest: noisiest
                    .into_iter()
                    .take(NOISIEST)
                    .map(|i| {
                        let s = &model.series[i];
                        Noisy {
                            scenario_id: s.series.scenario_id.clone(),
                            metric: s.series.metric.clone(),
                            href: format!(
                                "{}#{}",
                                site.scenario_href("", &s.series.scenario_id),
                                site.series_anchor(i)
                            ),
                            cv: share(s.latest().summary.cv()),
                            mde: s.latest().summary.mde.map(share).unwrap_or_else(|| "–".into()),
                        }
                    })
                    .collect(),
                calibrations: Vec::new(),
            }
        })
        .collect();
    // Calibrations, by machine.
    let mut machines = machines;
    for c in all_calibrations {
        if let Some(m) = machines.iter_mut().find(|m| c.machine.starts_with(&m.fingerprint)) {
            m.calibrations.push(c);
        }
    }
    let mut ctx = site.base("", "Machines");
    ctx.insert("machines", &machines);
    site.page("machines.html", "machines.html", &ctx)
}
