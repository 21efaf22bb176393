//! The front page as a public reader meets it, in headless Chromium, on a site the size of a
//! `ci.toml` history (the synthetic history with as many series as a `ci.toml` run has): its
//! summary per workload family, the changes of the latest commits in words, Soledad's 2017
//! figures beside ours, its size budget, an accessibility check by axe-core with no serious
//! violation, visible keyboard focus, and a phone layout without sideways scrolling. It saves
//! the screenshots the README describes into `target/tmp/site-screenshots/`.

mod common;

use std::path::{Path, PathBuf};

use common::cdp::Browser;
use serde_json::Value;
use site_gen::{SiteOptions, generate};
use testdata::history::{SyntheticOptions, populate};

/// Series in a `ci.toml` run (42 scenarios, every metric of each).
const CI_SERIES: usize = 1106;
/// The front page's budget for a `ci.toml` grid.
const FRONT_PAGE_BYTES: u64 = 200 * 1024;

/// axe-core's browser build: `SOLEDAD_BENCH_AXE`, else where `scripts/test` installs it.
fn axe_script() -> String {
    let path = std::env::var_os("SOLEDAD_BENCH_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/axe/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the accessibility check needs axe-core at {} ({e}): scripts/test installs it \
             (npm install --prefix target/axe axe-core@4.14.1), or set SOLEDAD_BENCH_AXE",
            path.display()
        )
    })
}

/// Runs axe-core on the open page; returns its serious and critical violations, described.
fn serious_violations(browser: &mut Browser, axe: &str) -> Vec<String> {
    if browser.eval("typeof axe") != "object" {
        browser.eval(&format!("{axe}; typeof axe"));
    }
    let result = browser.eval(
        r#"axe.run(document, {resultTypes: ['violations'], preload: false}).then(r => r.violations.map(v => ({
             id: v.id, impact: v.impact, help: v.help,
             nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)})))"#,
    );
    result
        .as_array()
        .expect("axe's violations")
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| format!("{} ({}): {} at {}", v["id"], v["impact"], v["help"], v["nodes"]))
        .collect()
}

fn text(browser: &mut Browser, selector: &str) -> String {
    let v = browser.eval(&format!(
        "Array.from(document.querySelectorAll({selector:?})).map(e => e.textContent.replace(/\\s+/g, ' ').trim()).join('\\n')"
    ));
    v.as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_front_page_tells_a_reader_the_story_at_a_glance() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = collector::Database::open(&dir.path().join("bench.sqlite")).unwrap();
    let options = SyntheticOptions {
        commits: 24,
        series: CI_SERIES,
        ..SyntheticOptions::default()
    };
    let report = populate(&mut db, &options).unwrap();
    assert_eq!(report.series, CI_SERIES);
    let root = dir.path().join("public");
    generate(
        &db,
        &root,
        &SiteOptions {
            export_database: false,
            ..SiteOptions::default()
        },
    )
    .unwrap();

    // The size budget: the front page of a ci.toml grid, while the table of all series (more
    // than five times as large) has a page of its own.
    let front = std::fs::metadata(root.join("index.html")).unwrap().len();
    let all = std::fs::metadata(root.join("series.html")).unwrap().len();
    assert!(
        front <= FRONT_PAGE_BYTES,
        "the front page has {front} bytes, over its budget of {FRONT_PAGE_BYTES}"
    );
    assert!(all > 5 * front, "series.html ({all} bytes) should hold the full table");

    let axe = axe_script();
    let mut browser = Browser::start();
    browser.viewport(1280, 900, 1.0, false);
    let index = format!("file://{}", root.join("index.html").display());
    let d = browser.open(&index);
    assert!(d.problems.is_empty(), "{:?}", d.problems);

    // A summary per family, in the order of the stack, each scenario a tile with a plot
    // that has a text alternative and numbers in words.
    let families = text(&mut browser, "section.family h3");
    let families: Vec<&str> = families.lines().collect();
    for (i, title) in [
        "Upload",
        "Download",
        "Sync",
        "Listing",
        "Mail delivery",
        "Mail processing",
        "Encryption",
        "Decryption",
        "Local store: writing",
        "Local store: reading",
        "Server storage",
        "Server under load",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            families.get(i).is_some_and(|f| f.starts_with(title)),
            "family {i} should be {title}: {families:?}"
        );
    }
    let tiles = browser.eval(
        r#"Array.from(document.querySelectorAll('li.tile')).map(t => ({
             plot: (t.querySelector('svg[role=img]') || {getAttribute: () => ''}).getAttribute('aria-label'),
             points: t.querySelectorAll('svg polyline, svg circle').length,
             numbers: Array.from(t.querySelectorAll('dd')).map(d => d.textContent.replace(/\s+/g, ' ').trim())}))"#,
    );
    let tiles = tiles.as_array().unwrap();
    assert!(tiles.len() >= 40, "{} tiles", tiles.len());
    for t in tiles {
        let label = t["plot"].as_str().unwrap_or("");
        assert!(
            label.contains("over the last 24 commits: from ") && label.contains(" between "),
            "a plot without a text alternative that gives its numbers: {t}"
        );
        assert!(t["points"].as_u64().unwrap() >= 2, "{t}");
        let numbers = t["numbers"].as_array().unwrap();
        assert!(!numbers.is_empty(), "{t}");
        for n in numbers {
            let n = n.as_str().unwrap();
            assert!(
                [
                    "worse",
                    "better",
                    "unchanged",
                    "no clear change",
                    "first result",
                    "not judged"
                ]
                .iter()
                .any(|w| n.contains(w)),
                "a number without its verdict in words: {n:?}"
            );
        }
    }
    // The headline numbers a user of the stack asks for, by family.
    let summary = text(&mut browser, "section.family");
    for wanted in [
        "time",
        "throughput",
        "sync time",
        "requests per second",
        "latency p99",
        "client memory (peak)",
        "server memory (peak)",
        "client loop lag p99",
    ] {
        assert!(summary.contains(wanted), "the summary does not show {wanted}");
    }
    // The last commit slowed downloads and syncs (the synthetic history's last event): the
    // tiles say so with the shape as well as the colour.
    let downloads = text(&mut browser, "#s-blobs-download li.tile dd");
    assert!(downloads.contains("▲") && downloads.contains("worse"), "{downloads}");

    // The changes of the latest commits, newest first, in words with links to the commit and
    // its comparison.
    let news = text(&mut browser, "ol.news > li");
    let first = news.lines().next().unwrap_or("");
    assert!(
        first.contains("client: verify each downloaded blob twice") && first.contains("regressions"),
        "{news}"
    );
    assert!(first.contains("Download, ") && first.contains("(worse)"), "{first}");
    let links = browser.eval(
        r#"Array.from(document.querySelector('ol.news > li').querySelectorAll('a')).map(a => a.getAttribute('href'))"#,
    );
    let links: Vec<&str> = links.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(links.iter().any(|l| l.starts_with("commits/")), "{links:?}");
    assert!(links.iter().any(|l| l.starts_with("compare/")), "{links:?}");
    assert!(links.iter().any(|l| l.starts_with("scenarios/")), "{links:?}");

    // Then and now: Soledad's published figures beside the latest values here, whose value is
    // the one the summary shows for the same series.
    let rows = browser.eval(
        r#"Array.from(document.querySelectorAll('table.then-now tbody tr')).map(r =>
             Array.from(r.cells).map(c => c.textContent.replace(/\s+/g, ' ').trim()))"#,
    );
    let rows = rows.as_array().unwrap();
    let row = |what: &str| {
        rows.iter()
            .find(|r| r[0].as_str() == Some(what))
            .unwrap_or_else(|| panic!("no row {what:?} in {rows:?}"))
    };
    assert_eq!(row("Mail pipeline, 1000 messages of 10 kB")[1], "72.5 ± 19.38 s");
    assert_eq!(row("Encrypted local store, writing 1 blob of 10 MB")[1], "25.4 MB/s");
    let upload = row("Server, uploads of 10 kB by 25 clients");
    assert_eq!(upload[1], "12.4 req/s");
    let tile_value = browser.eval(
        r#"(() => { const t = Array.from(document.querySelectorAll('#s-server-load li.tile'))
             .find(t => t.querySelector('h4 a').title === 'server.load/upload/10k/c25');
             return t.querySelector('dd .v').textContent; })()"#,
    );
    let now = upload[2].as_str().unwrap();
    assert_eq!(
        now,
        format!("{} ops/s", tile_value.as_str().unwrap()).replace("ops/s", "req/s")
    );
    assert!(upload[3].as_str().unwrap().ends_with("× higher"), "{upload:?}");
    let sources = text(&mut browser, "ol.sources li");
    assert!(
        sources.contains("FunkLoad") && sources.contains("loopback"),
        "{sources}"
    );
    // "Noisy" is explained once, not on every row.
    let page = text(&mut browser, "main");
    assert_eq!(page.matches("which is not the same as unchanged").count(), 1);

    // Accessibility, by a real checker in the real browser: the front page, the table of
    // all series and a scenario page.
    let scenario = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "html"))
        .unwrap();
    let first_html = |dir: &str| {
        std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "html") && !p.ends_with("index.html"))
            .min()
            .unwrap_or_else(|| panic!("no page in {dir}"))
    };
    for page in [
        root.join("index.html"),
        root.join("series.html"),
        scenario,
        first_html("commits"),
        first_html("compare"),
        root.join("compare/index.html"),
        root.join("machines.html"),
        root.join("methodology.html"),
    ] {
        let d = browser.open(&format!("file://{}", page.display()));
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let violations = serious_violations(&mut browser, &axe);
        assert!(
            violations.is_empty(),
            "{}: {} serious accessibility violations:\n{}",
            page.display(),
            violations.len(),
            violations.join("\n")
        );
    }

    // Keyboard focus is visible: the first Tab lands on a link with an outline.
    browser.open(&index);
    for kind in ["keyDown", "keyUp"] {
        browser.page_call(
            "Input.dispatchKeyEvent",
            serde_json::json!({"type": kind, "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9}),
        );
    }
    let focus = browser.eval(
        r#"(() => { const e = document.activeElement, s = getComputedStyle(e);
             return [e.tagName, s.outlineStyle, parseFloat(s.outlineWidth)]; })()"#,
    );
    assert_eq!(focus[0], "A", "{focus}");
    assert!(
        focus[1] != "none" && focus[2].as_f64().unwrap() >= 2.0,
        "no visible focus: {focus}"
    );

    // Screenshots at desktop and phone width; on a phone, no page scrolls sideways.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    browser.screenshot(&shots.join("front-desktop.png"), 2400.0);
    browser.viewport(390, 844, 2.0, true);
    for page in ["index.html", "series.html"] {
        browser.open(&format!("file://{}", root.join(page).display()));
        let overflow = browser.eval("document.documentElement.scrollWidth - window.innerWidth");
        assert!(
            overflow.as_f64().unwrap() <= 1.0,
            "{page} is {overflow} px too wide on a phone"
        );
    }
    browser.open(&index);
    browser.screenshot(&shots.join("front-phone.png"), 3000.0);
}

/// The all-series page with thousands of series, measured in Chromium: the time to first
/// contentful paint and how long a filter takes to answer (the input event to the next
/// layout). A benchmark, not a check of the suite (timings on a shared machine): run it with
/// `cargo test --release -p site-gen --test front_page -- --ignored --nocapture`; the
/// figures are in `site-gen/BENCHMARKS.md`.
#[test]
#[ignore = "a benchmark: run it alone"]
fn the_all_series_page_stays_usable_with_thousands_of_series() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = collector::Database::open(&dir.path().join("bench.sqlite")).unwrap();
    let options = SyntheticOptions {
        commits: 12,
        series: 4000,
        nightly: true,
        calibration: false,
        comparison: false,
        ..SyntheticOptions::default()
    };
    let report = populate(&mut db, &options).unwrap();
    let root = dir.path().join("public");
    let site = SiteOptions {
        export_database: false,
        ..SiteOptions::default()
    };
    generate(&db, &root, &site).unwrap();
    let bytes = std::fs::metadata(root.join("series.html")).unwrap().len();
    let mut browser = Browser::start();
    browser.viewport(1280, 900, 1.0, false);
    let url = format!("file://{}", root.join("series.html").display());
    let mut paints = Vec::new();
    let mut filters = Vec::new();
    for _ in 0..5 {
        let d = browser.open(&url);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let paint =
            browser.eval("performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0] || -1");
        paints.push(paint.as_f64().unwrap());
        // Each filter as a reader changes it, timed to the layout that shows the result.
        let times = browser.eval(
            r#"(() => {
                 const form = document.getElementById('filters');
                 const set = (name, value) => {
                   const el = form.querySelector(`[data-filter=${name}]`);
                   el.value = value;
                   const t0 = performance.now();
                   el.dispatchEvent(new Event(el.tagName === 'INPUT' ? 'input' : 'change', {bubbles: true}));
                   document.body.getBoundingClientRect();
                   return performance.now() - t0;
                 };
                 const out = [set('metric', 'wall_s'), set('metric', ''), set('verdict', 'regression'),
                              set('verdict', ''), set('text', '10x1M'), set('text', '')];
                 return [out, document.getElementById('filter-count').textContent];
               })()"#,
        );
        let count = times[1].as_str().unwrap();
        assert!(count.ends_with(&format!("of {} series", report.series)), "{count}");
        filters.extend(times[0].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()));
    }
    paints.sort_by(f64::total_cmp);
    filters.sort_by(f64::total_cmp);
    println!(
        "series.html with {} series ({bytes} bytes): first contentful paint {:.0} ms median of {} loads (max {:.0}); \
         a filter answers in {:.1} ms median, {:.1} ms at most, over {} changes",
        report.series,
        paints[paints.len() / 2],
        paints.len(),
        paints[paints.len() - 1],
        filters[filters.len() / 2],
        filters[filters.len() - 1],
        filters.len()
    );
}
