//! `soledad-bench noise`: the machine-steadiness probe, run for real.

mod common;

use std::ffi::OsStr;

use common::{bench, stderr};

fn noise(args: &[&str]) -> std::process::Output {
    let args: Vec<&OsStr> = std::iter::once("noise")
        .chain(args.iter().copied())
        .map(OsStr::new)
        .collect();
    bench(&args)
}

#[test]
fn both_kernels_are_measured_in_alternating_rounds() {
    let out = noise(&["--seconds", "0.3", "--round-ms", "5", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["round_ms"], 5);
    assert_eq!(report["target_ci"], 0.02);
    let kernels = report["kernels"].as_array().unwrap();
    let names: Vec<&str> = kernels.iter().map(|k| k["kernel"].as_str().unwrap()).collect();
    assert_eq!(names, ["cpu", "memory"]);
    // Alternating: both ran the same number of rounds, at least a scenario's minimum.
    assert_eq!(kernels[0]["rounds"], kernels[1]["rounds"]);
    for k in kernels {
        let f = |field: &str| k[field].as_f64().unwrap_or_else(|| panic!("{field} in {k}"));
        assert!(f("rounds") >= 5.0, "{k}");
        assert!(f("median_ms") > 0.0, "{k}");
        assert!(f("cv") >= 0.0 && f("ci") >= 0.0, "{k}");
        assert!(f("p90_over_p10") >= 1.0, "{k}");
        assert!(f("rounds_for_target") >= 5.0, "{k}");
        let paired = &k["paired"];
        assert!(
            paired["pairs"].as_u64().unwrap() * 2 <= k["rounds"].as_u64().unwrap() + 1,
            "{k}"
        );
        assert!(paired["ratio_cv"].as_f64().unwrap() >= 0.0, "{k}");
        assert!(paired["pairs_for_target"].as_u64().is_none_or(|n| n >= 6), "{k}");
    }
}

#[test]
fn the_table_names_the_target_and_bad_values_are_refused() {
    let out = noise(&["--seconds", "0.2", "--round-ms", "2", "--target-ci", "0.05"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("rounds for ±5.0%"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("cpu ")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("memory ")), "{table}");
    assert!(table.contains("pairs for ±5.0%"), "{table}");

    for (flag, value, expected) in [
        ("--seconds", "0", "above 0"),
        ("--target-ci", "2", "between 0 and 1"),
        ("--round-ms", "0", "--round-ms"),
    ] {
        let out = noise(&[flag, value]);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        assert!(stderr(&out).contains(expected), "{flag} {value}: {}", stderr(&out));
    }
}
