//! The results format did not change when its types moved to the `contract` crate: a file the
//! harness wrote before (`contract/tests/fixtures/results-v1.json`, a real run of two
//! scenarios) reads back into the harness's results and writes out byte for byte the same.

use std::path::Path;

use harness::runner::Results;

#[test]
fn a_results_file_from_before_the_contract_crate_round_trips_byte_for_byte() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contract/tests/fixtures/results-v1.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let results = Results::load(&path).unwrap();
    assert_eq!(results.scenarios.len(), 2);
    assert_eq!(results.scenarios[1].params.scenario_id(), "blobs.upload/3x10k/c2");
    // At the workload version the file recorded (`blobs.upload` is at 2 since).
    let s = &results.scenarios[1];
    assert_eq!(
        s.params.definition_hash_at(s.workload_version),
        s.definition_hash,
        "the parameters hash as they did"
    );
    assert_eq!(serde_json::to_string_pretty(&results).unwrap(), text);
    // And through the file writer.
    let out = tempfile::tempdir().unwrap();
    results.save(&out.path().join("r.json")).unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join("r.json")).unwrap(), text);
}
