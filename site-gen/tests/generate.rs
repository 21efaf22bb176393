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
