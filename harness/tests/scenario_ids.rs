//! Scenario ids and definition hashes name the series in every database: a change to either
//! starts new series and orphans the old ones. This pins what every scenario file of the
//! repository plans, with what the harness learns of each workload, against a stored listing.
//! Regenerate the listing with `SOLEDAD_BENCH_BLESS=1` only for an intended change (a new
//! workload, or a workload version bumped on purpose).

use std::fmt::Write as _;
use std::path::Path;

use harness::scenario::ScenarioSet;

#[test]
fn every_planned_scenario_keeps_its_id_hash_and_description() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "scenario files in {}", root.display());
    let mut listing = String::new();
    for file in &files {
        let set = ScenarioSet::load(file).unwrap();
        writeln!(listing, "# {}", file.file_name().unwrap().to_string_lossy()).unwrap();
        for s in &set.scenarios {
            let w = s.params.workload;
            let extras: Vec<&str> = w.spec().extras.iter().map(|e| e.metric()).collect();
            writeln!(
                listing,
                "{} {} v{} server={} services={} headline={} extras={}\n  {}",
                s.id(),
                s.params.definition_hash(),
                w.version(),
                w.needs_server(),
                w.needs_services(),
                w.headline_metric(),
                extras.join(","),
                s.params.describe()
            )
            .unwrap();
        }
    }
    let stored = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios.txt");
    if std::env::var_os("SOLEDAD_BENCH_BLESS").is_some() {
        std::fs::write(&stored, &listing).unwrap();
    }
    let expected = std::fs::read_to_string(&stored).unwrap();
    if listing != expected {
        let first = listing
            .lines()
            .zip(expected.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("now:    {a}\nstored: {b}"))
            .unwrap_or_else(|| "one listing is a prefix of the other".into());
        panic!("the planned scenarios changed; first difference:\n{first}");
    }
}

/// The harness reports what a workload's contract names: every metric named there is in the
/// catalogue the collector and the site read.
#[test]
fn every_workload_names_catalogued_metrics() {
    use contract::metrics::CATALOGUE;
    let catalogued = |name: &str| CATALOGUE.iter().any(|m| m.name == name);
    for w in workloads::WorkloadKind::all() {
        assert!(catalogued(w.headline_metric()), "{w}: {}", w.headline_metric());
        for extra in w.spec().extras {
            assert!(catalogued(extra.metric()), "{w}: {}", extra.metric());
        }
    }
}
