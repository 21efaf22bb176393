//! The stages depend on what they read and nothing before them: the collector reads results
//! files (the `contract` crate), not the harness that writes them nor the stack it drives;
//! the site reads the collector's store, not the harness. Checked on cargo's own view of the
//! dependency graph, development dependencies included.

use std::process::Command;

/// Every package in `cargo tree -p PACKAGE`, by name.
fn tree(package: &str) -> Vec<String> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["tree", "--locked", "--prefix", "none", "--format", "{p}", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_collector_reads_results_files_not_the_stack() {
    let collector = tree("collector");
    assert!(collector.iter().any(|p| p == "contract"), "{collector:?}");
    for stage in [
        "harness",
        "workloads",
        "blobs-server",
        "blobs-client",
        "site-gen",
        "axum",
        "object_store",
    ] {
        assert!(
            !collector.iter().any(|p| p == stage),
            "the collector depends on {stage}"
        );
    }
}

#[test]
fn the_site_reads_the_store_not_the_harness() {
    let site = tree("site-gen");
    assert!(site.iter().any(|p| p == "collector"), "{site:?}");
    for stage in ["harness", "workloads", "blobs-server", "blobs-client"] {
        assert!(!site.iter().any(|p| p == stage), "the site depends on {stage}");
    }
}

#[test]
fn the_contract_stands_alone() {
    let contract = tree("contract");
    for crate_ in ["harness", "collector", "site-gen", "workloads", "blobs-server"] {
        assert!(
            !contract.iter().any(|p| p == crate_),
            "the contract depends on {crate_}"
        );
    }
}
