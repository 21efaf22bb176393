use super::*;

fn parse(text: &str) -> Result<ScenarioSet, ScenarioError> {
    ScenarioSet::parse(Path::new("set.toml"), text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn ids(text: &str) -> Vec<String> {
    parse(text).unwrap().scenarios.iter().map(|s| s.id()).collect()
}

#[test]
fn expands_grids_in_order_with_budgets() {
    let set = parse(
        r#"
description = "demo"
rounds = 6
[[scenario]]
workload = "blobs.upload"
payloads = ["10x100k", "1x1M"]
concurrency = [1, 10]
[[scenario]]
workload = "blobs.download"
payloads = ["10x100k"]
concurrency = [4]
warmup_rounds = 0
min_rounds = 7
max_rounds = 20
max_time_s = 30
target_ci = 0.05
"#,
    )
    .unwrap();
    let ids: Vec<_> = set.scenarios.iter().map(|s| s.id()).collect();
    assert_eq!(
        ids,
        [
            "blobs.upload/10x100k/c1",
            "blobs.upload/10x100k/c10",
            "blobs.upload/1x1M/c1",
            "blobs.upload/1x1M/c10",
            "blobs.download/10x100k/c4"
        ]
    );
    let fixed = &set.scenarios[0].budget;
    assert_eq!((fixed.warmup_rounds, fixed.min_rounds, fixed.max_rounds), (1, 6, 6));
    let b = &set.scenarios[4].budget;
    assert_eq!((b.warmup_rounds, b.min_rounds, b.max_rounds), (0, 7, 20));
    assert_eq!(b.max_time, Duration::from_secs(30));
    assert_eq!(b.target_ci, 0.05);
    assert_eq!(set.max_rounds(), 4 * 7 + 20);
}

#[test]
fn every_workload_has_its_grid() {
    assert_eq!(
        ids(r#"
[[scenario]]
workload = "crypto.encrypt"
payloads = ["1x10M", "100x100k"]
[[scenario]]
workload = "crypto.decrypt"
payloads = ["1x10k"]
formats = ["v1"]
[[scenario]]
workload = "blobs.sync"
directions = ["up", "down", "none"]
payloads = ["100xmail"]
concurrency = [3]
[[scenario]]
workload = "blobs.list"
payloads = ["1000x1k"]
concurrency = [1]
[[scenario]]
workload = "store.put"
payloads = ["1000x10k"]
[[scenario]]
workload = "store.get"
payloads = ["1000x10k"]
stores = ["sqlcipher"]
[[scenario]]
workload = "server.backend"
ops = ["write", "read"]
payloads = ["100x100k"]
concurrency = [10]
[[scenario]]
workload = "server.load"
ops = ["upload", "download"]
sizes = ["1k", "1M"]
concurrency = [25, 200]
duration_s = 5
"#),
        [
            "crypto.encrypt/v1/1x10M",
            "crypto.encrypt/v1/100x100k",
            "crypto.decrypt/v1/1x10k",
            "blobs.sync/up/100xmail/c3",
            "blobs.sync/down/100xmail/c3",
            "blobs.sync/none/100xmail/c3",
            "blobs.list/1000x1k/c1",
            "store.put/sqlcipher/1000x10k",
            "store.get/sqlcipher/1000x10k",
            "server.backend/write/fs/100x100k/c10",
            "server.backend/read/fs/100x100k/c10",
            "server.load/upload/1k/c25",
            "server.load/upload/1k/c200",
            "server.load/upload/1M/c25",
            "server.load/upload/1M/c200",
            "server.load/download/1k/c25",
            "server.load/download/1k/c200",
            "server.load/download/1M/c25",
            "server.load/download/1M/c200",
        ]
    );
}

#[test]
fn every_mistake_names_file_line_and_field() {
    let base = "[[scenario]]\nworkload = \"blobs.upload\"\npayloads = [\"10x100k\"]\nconcurrency = [1]\n";
    assert_eq!(parse(base).unwrap().scenarios.len(), 1);

    let e = err(&base.replace("blobs.upload", "blobs.uplod"));
    assert!(e.starts_with("set.toml:2:"), "{e}");
    assert!(e.contains("blobs.uplod") && e.contains("blobs.upload"), "{e}");

    let e = err(&base.replace("10x100k", "10y100k"));
    assert!(e.starts_with("set.toml:3:") && e.contains("COUNTxSIZE"), "{e}");

    let e = err(&base.replace("10x100k", "0x100k"));
    assert!(e.starts_with("set.toml:3:") && e.contains("at least 1"), "{e}");

    let e = err(&format!("{base}speed = 3\n"));
    assert!(e.starts_with("set.toml:") && e.contains("unknown field `speed`"), "{e}");

    let e = err(&format!("rounds = 2\n{base}"));
    assert!(
        e.starts_with("set.toml:1:") && e.contains("field `rounds`") && e.contains("at least 5"),
        "{e}"
    );

    let e = err(&format!("min_rounds = 8\nmax_rounds = 6\n{base}"));
    assert!(
        e.starts_with("set.toml:2:") && e.contains("field `max_rounds`") && e.contains("at least 8"),
        "{e}"
    );

    let e = err(&format!("target_ci = 2\n{base}"));
    assert!(e.starts_with("set.toml:1:") && e.contains("field `target_ci`"), "{e}");

    let e = err(&format!("max_time_s = -1\n{base}"));
    assert!(e.starts_with("set.toml:1:") && e.contains("field `max_time_s`"), "{e}");

    let e = err(&base.replace("[1]", "[]"));
    assert!(e.starts_with("set.toml:4:") && e.contains("field `concurrency`"), "{e}");

    let e = err(&base.replace("[1]", "[0]"));
    assert!(e.starts_with("set.toml:4:") && e.contains("at least 1"), "{e}");

    let e = err(&base.replace("[1]", "[\"one\"]"));
    assert!(e.starts_with("set.toml:4:"), "{e}");

    let e = err(&format!("{base}{base}"));
    assert!(e.starts_with("set.toml:5:") && e.contains("defined twice"), "{e}");

    let e = err("description = \"nothing\"\n");
    assert!(e.contains("no [[scenario]]"), "{e}");

    let e = err("[[scenario]\n");
    assert!(e.starts_with("set.toml:1:"), "{e}");

    let e = err(&base.replace("payloads = [\"10x100k\"]\n", ""));
    assert!(
        e.starts_with("set.toml:1:") && e.contains("needs the field `payloads`"),
        "{e}"
    );

    let e = err(&format!("{base}formats = [\"v1\"]\n"));
    assert!(
        e.starts_with("set.toml:5:") && e.contains("`formats` does not apply to workload blobs.upload"),
        "{e}"
    );

    let crypto = "[[scenario]]\nworkload = \"crypto.encrypt\"\npayloads = [\"1x1k\"]\n";
    let e = err(&format!("{crypto}formats = [\"v9\"]\n"));
    assert!(e.starts_with("set.toml:4:") && e.contains("v9"), "{e}");
    let e = err(&format!("{crypto}concurrency = [2]\n"));
    assert!(
        e.contains("`concurrency` does not apply to workload crypto.encrypt"),
        "{e}"
    );

    let process = "[[scenario]]\nworkload = \"incoming.process\"\npayloads = [\"10xmail\"]\n";
    let e = err(&format!("{process}concurrency = [2]\n"));
    assert!(
        e.starts_with("set.toml:4:") && e.contains("`concurrency` does not apply to workload incoming.process"),
        "{e}"
    );
    let e = err("[[scenario]]\nworkload = \"incoming.deliver\"\npayloads = [\"10xmail\"]\n");
    assert!(
        e.contains("workload incoming.deliver needs the field `concurrency`"),
        "{e}"
    );

    let load = "[[scenario]]\nworkload = \"server.load\"\nsizes = [\"1k\"]\nconcurrency = [25]\n";
    let e = err(&format!("{load}ops = [\"write\"]\n"));
    assert!(
        e.starts_with("set.toml:5:") && e.contains("runs upload or download"),
        "{e}"
    );
    let e = err(&format!("{load}ops = [\"upload\"]\nduration_s = 0\n"));
    assert!(e.starts_with("set.toml:6:") && e.contains("duration_s"), "{e}");
    let e = err(&format!("{load}ops = [\"upload\"]\npayloads = [\"1x1k\"]\n"));
    assert!(e.contains("`payloads` does not apply to workload server.load"), "{e}");
    let e = err(&format!("{load}ops = [\"upload\"]\n").replace("\"1k\"", "\"mail\""));
    assert!(e.contains("needs fixed sizes"), "{e}");
    let e = err(load);
    assert!(e.contains("needs the field `ops`"), "{e}");
}

#[test]
fn count_rounds_are_on_for_fixed_work_unless_turned_off() {
    let counted = |text: &str| -> Vec<(String, bool)> {
        parse(text)
            .unwrap()
            .scenarios
            .iter()
            .map(|s| (s.id(), s.count_round))
            .collect()
    };
    let upload = "[[scenario]]\nworkload = \"blobs.upload\"\npayloads = [\"1x1k\"]\nconcurrency = [1]\n";
    let load = "[[scenario]]\nworkload = \"server.load\"\nops = [\"upload\"]\nsizes = [\"1k\"]\nconcurrency = [1]\n";
    let both = format!("{upload}{load}");
    assert_eq!(
        counted(&both),
        [
            ("blobs.upload/1x1k/c1".to_owned(), true),
            ("server.load/upload/1k/c1".to_owned(), false)
        ]
    );
    // Off for the file; on again for one scenario.
    assert!(!counted(&format!("count_round = false\n{both}"))[0].1);
    let again = format!("count_round = false\n{upload}count_round = true\n");
    assert!(counted(&again)[0].1);
    // A workload that runs for a duration cannot have one.
    let e = err(&format!("{load}count_round = true\n"));
    assert!(
        e.starts_with("set.toml:6:") && e.contains("server.load runs for a duration"),
        "{e}"
    );
    assert!(!counted(&format!("{load}count_round = false\n"))[0].1);
}

#[test]
fn a_missing_file_is_named() {
    let e = ScenarioSet::load(Path::new("/nonexistent/x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/x.toml: cannot read scenario file"), "{e}");
}

#[test]
fn shuffling_is_deterministic() {
    let text = "[[scenario]]\nworkload = \"blobs.upload\"\npayloads = [\"1x1k\", \"2x1k\", \"3x1k\", \"4x1k\"]\nconcurrency = [1, 2]\n";
    let mut a = parse(text).unwrap();
    let mut b = parse(text).unwrap();
    a.shuffle(7);
    b.shuffle(7);
    let ids = |s: &ScenarioSet| s.scenarios.iter().map(|p| p.id()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a), ids(&parse(text).unwrap()));
}

#[test]
fn the_shipped_sets_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for name in ["smoke.toml", "ci.toml", "full.toml"] {
        let set = ScenarioSet::load(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!set.scenarios.is_empty());
    }
}
