//! The generated site in a real browser: headless Chromium opens it from disk, renders the
//! plots, and a screenshot is kept for people to look at.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Repo, stderr};

fn chromium() -> PathBuf {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("the browser test needs Chromium: apt-get install -y chromium (scripts/test installs it)")
}

/// Runs headless Chromium on a local file with the network features that would reach out
/// switched off. Returns (stdout, stderr).
fn headless(profile: &Path, args: &[&str], page: &Path) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
}

#[test]
fn the_site_renders_real_plots_in_chromium() {
    let repo = Repo::new();
    repo.commit("first");
    assert!(repo.bench_run(&[]).status.success());
    repo.commit("second");
    let run = repo.bench_run(&[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let site = repo.out().join("public");
    let profile = tempfile::tempdir().unwrap();

    // The index, as the browser built it, links every scenario page.
    let (dom, log) = headless(profile.path(), &["--dump-dom"], &site.join("index.html"));
    assert!(!log.contains("CONSOLE"), "console messages on the index: {log}");
    assert!(dom.contains("blobs.upload/3x10k/c2"));
    let page = site.join("scenarios/blobs.upload_3x10k_c2.html");
    assert!(dom.contains("href=\"scenarios/blobs.upload_3x10k_c2.html"));

    // A scenario page: SVG plots with two data points each, the stylesheet found.
    let (dom, log) = headless(profile.path(), &["--dump-dom"], &page);
    assert!(!log.contains("CONSOLE") && !log.contains("ERR_FILE_NOT_FOUND"), "{log}");
    // The plots over commits (scaling plots aside) have a marker per benchmarked commit.
    let plots: Vec<&str> = dom
        .split("<svg")
        .skip(1)
        .map(|plot| &plot[..plot.find("</svg>").unwrap()])
        .filter(|svg| svg.contains("class=\"pts\""))
        .collect();
    assert!(plots.len() >= 8, "expected a plot per metric, found {}", plots.len());
    for svg in plots {
        let markers = svg.matches("class=\"pt\"").count() + svg.matches("class=\"pt ").count();
        assert_eq!(markers, 2, "a marker per commit");
        assert!(svg.contains("is better"), "plots say which way is better");
    }

    // Screenshots, kept for people to look at.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, file) in [("run-index.png", site.join("index.html")), ("run-scenario.png", page)] {
        let png = shots.join(name);
        let _ = std::fs::remove_file(&png);
        headless(
            profile.path(),
            &[&format!("--screenshot={}", png.display()), "--window-size=1024,1400"],
            &file,
        );
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is not a PNG");
        assert!(bytes.len() > 20_000, "{name} looks blank ({} bytes)", bytes.len());
    }
}
