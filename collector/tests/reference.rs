//! The hand-written statistics against independent implementations: values computed by
//! scipy, numpy, R and Apache Otava on the same inputs, stored in `fixtures/reference.json`
//! with the exact call and version that produced each (`fixtures/reference.py` regenerates
//! them).

use collector::rate_upper_bound;
use collector::statistics::change_point::{ChangePointOptions, change_points};
use collector::statistics::fdr::benjamini_hochberg;
use collector::statistics::hodges_lehmann::hodges_lehmann;
use collector::statistics::mann_whitney::{Method, mann_whitney_u};
use collector::statistics::paired::{PairedOptions, compare_paired};
use collector::statistics::quantile::quantile_of_sorted;
use collector::statistics::t_test::{Side, student_t_p_value};
use collector::statistics::verdict::Direction;
use serde_json::Value;

fn fixtures() -> Value {
    let text = include_str!("fixtures/reference.json");
    serde_json::from_str(text).expect("reference.json is JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    let scale = a.abs().max(b.abs()).max(1e-300);
    assert!((a - b).abs() / scale <= rel, "{what}: {a} vs reference {b}");
}

#[test]
fn mann_whitney_matches_scipy() {
    let f = fixtures();
    for case in f["mann_whitney"].as_array().unwrap() {
        let (x, y) = (floats(&case["x"]), floats(&case["y"]));
        let r = mann_whitney_u(&x, &y).unwrap();
        let expected = match case["method"].as_str().unwrap() {
            "exact" => Method::Exact,
            _ => Method::Normal,
        };
        let what = case["source"].as_str().unwrap();
        assert_eq!(r.method, expected, "{what} n = {}, {}", x.len(), y.len());
        close(r.u, case["u"].as_f64().unwrap(), 1e-12, what);
        close(r.p_value, case["p"].as_f64().unwrap(), 1e-9, what);
    }
}

#[test]
fn paired_t_test_matches_scipy() {
    let f = fixtures();
    for case in f["paired_t"].as_array().unwrap() {
        let (a, b) = (floats(&case["a"]), floats(&case["b"]));
        let what = case["source"].as_str().unwrap();
        let c = compare_paired(&a, &b, Direction::Lower, &PairedOptions::default()).unwrap();
        let t = c.test.unwrap();
        close(t.t, case["t"].as_f64().unwrap(), 1e-9, what);
        close(t.p_larger, case["p_greater"].as_f64().unwrap(), 1e-9, what);
        close(t.p_smaller, case["p_less"].as_f64().unwrap(), 1e-9, what);
        close(c.ci_lower.ln(), case["ci_low"].as_f64().unwrap(), 1e-9, what);
        close(c.ci_upper.ln(), case["ci_high"].as_f64().unwrap(), 1e-9, what);
    }
}

#[test]
fn benjamini_hochberg_matches_scipy() {
    let f = fixtures();
    for case in f["bh"].as_array().unwrap() {
        let q = benjamini_hochberg(&floats(&case["p"]));
        for (a, b) in q.iter().zip(floats(&case["q"])) {
            close(*a, b, 1e-12, case["source"].as_str().unwrap());
        }
    }
}

#[test]
fn hodges_lehmann_matches_r() {
    let f = fixtures();
    for case in f["hodges_lehmann"].as_array().unwrap() {
        let s = hodges_lehmann(&floats(&case["baseline"]), &floats(&case["commit"]), 0.95).unwrap();
        let what = case["source"].as_str().unwrap();
        let ci = floats(&case["ci"]);
        // R computes the differences in another order; they agree to rounding.
        assert!((s.estimate - case["estimate"].as_f64().unwrap()).abs() < 1e-9, "{what}");
        assert!((s.ci_lower - ci[0]).abs() < 1e-9, "{what}: {} vs {}", s.ci_lower, ci[0]);
        assert!((s.ci_upper - ci[1]).abs() < 1e-9, "{what}: {} vs {}", s.ci_upper, ci[1]);
        assert!(s.ci_level >= 0.95, "{what}");
    }
}

#[test]
fn t_test_matches_scipy() {
    let f = fixtures();
    for case in f["t_test"].as_array().unwrap() {
        let side = |v: &Value| {
            let v = floats(v);
            Side {
                mean: v[0],
                std: v[1],
                n: v[2] as usize,
            }
        };
        let p = student_t_p_value(side(&case["a"]), side(&case["b"]));
        close(p, case["p"].as_f64().unwrap(), 1e-9, case["source"].as_str().unwrap());
    }
}

#[test]
fn change_points_match_otava() {
    let f = fixtures();
    // Otava's own choices: no minimum segment, no minimum magnitude, no rank check.
    let otava_like = ChangePointOptions {
        min_segment: 1,
        rank_check: false,
        min_magnitude: 0.0,
        ..ChangePointOptions::default()
    };
    for case in f["change_points"].as_array().unwrap() {
        let series = floats(&case["series"]);
        let note = case["note"].as_str().unwrap();
        let expected: Vec<usize> = floats(&case["indices"]).into_iter().map(|i| i as usize).collect();
        let found: Vec<usize> = change_points(&series, &otava_like).iter().map(|c| c.index).collect();
        assert_eq!(found, expected, "{note}: {}", case["source"]);
        // With the defaults (levels of at least 3 points told apart by ranks too, 1% at
        // least), Otava's pair of change points around a single outlier is not reported;
        // everything else is.
        let ours: Vec<usize> = change_points(&series, &ChangePointOptions::default())
            .iter()
            .map(|c| c.index)
            .collect();
        if note.contains("outlier") {
            assert_eq!(expected.len(), 2, "{note}");
            assert!(ours.is_empty(), "{note}: {ours:?}");
        } else {
            assert_eq!(ours, expected, "{note}");
        }
    }
}

#[test]
fn percentiles_match_numpy_and_bounds_match_scipy() {
    let f = fixtures();
    for case in f["percentile"].as_array().unwrap() {
        let v = floats(&case["values"]);
        for (q, r) in floats(&case["q"]).into_iter().zip(floats(&case["result"])) {
            close(quantile_of_sorted(&v, q), r, 1e-12, case["source"].as_str().unwrap());
        }
    }
    for case in f["beta_ppf"].as_array().unwrap() {
        let k = case["k"].as_u64().unwrap() as usize;
        let n = case["n"].as_u64().unwrap() as usize;
        close(
            rate_upper_bound(k, n),
            case["upper"].as_f64().unwrap(),
            1e-6,
            case["source"].as_str().unwrap(),
        );
    }
}
