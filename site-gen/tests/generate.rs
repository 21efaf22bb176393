//! A generated site as its readers use it without a browser: the published history opens as
//! a database with every run, the Atom feed lists the regressions, and a second generation
//! replaces the first without leaving pages of commits that are gone.

use site_gen::{SiteOptions, generate};
use testdata::history::{SyntheticOptions, populate};

#[test]
fn the_site_publishes_its_history_and_a_feed_and_regenerates_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = collector::Database::open(&dir.path().join("bench.sqlite")).unwrap();
    populate(
        &mut db,
        &SyntheticOptions {
            commits: 30,
            series: 24,
            ..SyntheticOptions::default()
        },
    )
    .unwrap();
    let out = dir.path().join("public");
    let options = SiteOptions {
        site_url: Some("https://pages.example.org/soledad-bench/".into()),
        ..SiteOptions::default()
    };
    let first = generate(&db, &out, &options).unwrap();
    assert_eq!(first.branch.as_deref(), Some("master"));

    // The published history is the whole database.
    let published = first.database.expect("the database is published");
    assert_eq!(published, out.join(site_gen::DATABASE));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&published).unwrap().permissions().mode();
    assert_eq!(mode & 0o044, 0o044, "readable by the web server: {mode:o}");
    let copy = dir.path().join("fetched.sqlite");
    let fetched = collector::Database::import_compressed(&published, &copy).unwrap();
    assert_eq!(fetched.runs().unwrap(), db.runs().unwrap());
    assert_eq!(
        fetched.comparisons().unwrap().len(),
        1,
        "the branch comparison travels too"
    );

    // The feed: an Atom document whose entries are the commits with regressions, each
    // linking to its commit page with an absolute URL.
    let feed = std::fs::read_to_string(out.join("regressions.atom")).unwrap();
    assert!(feed.starts_with("<?xml") && feed.contains("<feed xmlns=\"http://www.w3.org/2005/Atom\""));
    let entries = feed.matches("<entry>").count();
    assert!(entries >= 1, "{feed}");
    assert_eq!(entries, feed.matches("</entry>").count());
    assert!(
        feed.contains("https://pages.example.org/soledad-bench/commits/"),
        "{feed}"
    );

    // A page of a commit that is no longer published goes; the others are written again.
    let stale = out
        .join("commits")
        .join("0123456789abcdef0123456789abcdef01234567.html");
    std::fs::write(&stale, "stale").unwrap();
    let index_before = std::fs::metadata(out.join("index.html")).unwrap().len();
    let second = generate(&db, &out, &options).unwrap();
    assert!(!stale.exists(), "the stale page was pruned");
    assert_eq!(second.pages, first.pages);
    assert_eq!(std::fs::metadata(out.join("index.html")).unwrap().len(), index_before);
}

/// A total of a fixed-duration round (the server's CPU seconds under `server.load`) is shown
/// with its plot, labelled as unjudged with the reason, and counted apart on the series page;
/// the same metric of a fixed-work scenario keeps its verdicts.
#[test]
fn series_no_rule_judges_are_shown_unjudged_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = collector::Database::open(&dir.path().join("bench.sqlite")).unwrap();
    populate(
        &mut db,
        &SyntheticOptions {
            commits: 8,
            series: 600,
            ..SyntheticOptions::default()
        },
    )
    .unwrap();
    let out = dir.path().join("public");
    generate(&db, &out, &SiteOptions::default()).unwrap();

    let series = std::fs::read_to_string(out.join("series.html")).unwrap();
    let rows: Vec<&str> = series
        .split("<tr ")
        .filter(|r| r.contains("data-metric=\"server_cpu_user_s\""))
        .collect();
    let load: Vec<&&str> = rows
        .iter()
        .filter(|r| r.contains("data-scenario=\"server.load/"))
        .collect();
    assert!(!load.is_empty(), "the synthetic history has server.load's CPU seconds");
    for row in &load {
        assert!(row.contains("data-verdict=\"unjudged\""), "{row}");
    }
    assert!(
        rows.iter()
            .any(|r| !r.contains("data-scenario=\"server.load/") && !r.contains("data-verdict=\"unjudged\"")),
        "fixed-work scenarios judge their CPU seconds"
    );
    assert!(series.contains("series shown and never judged"), "{series}");

    let scenario = std::fs::read_dir(out.join("scenarios"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|page| page.contains("server.load/") && page.contains("server_cpu_user_s"))
        .expect("a page of a server.load scenario");
    let reason = contract::metrics::FOLLOWS_THROUGHPUT.replace('\'', "&#39;");
    assert!(scenario.contains(&reason), "the reason is given: {scenario}");
    assert!(scenario.contains("badge unjudged"), "{scenario}");
}
