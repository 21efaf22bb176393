//! Text from git and from scenario files is shown as text: a commit of a real repository whose
//! subject is `<script>alert(1)</script>`, and a scenario with markup in its id, description
//! and parameters, appear escaped on every page, in the feed and in the scripts' data, and
//! nowhere as markup.

use std::path::{Path, PathBuf};
use std::process::Command;

use collector::record::CommitInfo;
use site_gen::{SiteOptions, generate};
use testdata::history::{HOSTILE_SUBJECT, SyntheticOptions, populate};

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Mallory \"&\" 'Co'")
        .env("GIT_AUTHOR_EMAIL", "mallory@example.org")
        .env("GIT_COMMITTER_NAME", "Mallory")
        .env("GIT_COMMITTER_EMAIL", "mallory@example.org")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// A commit of `repo` as the harness records it, read with git itself.
fn describe(repo: &Path, rev: &str) -> CommitInfo {
    let out = |args: &[&str]| {
        let o = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .expect("git runs");
        assert!(o.status.success(), "git {args:?}");
        String::from_utf8(o.stdout).unwrap().trim_end_matches('\n').to_owned()
    };
    let log = out(&["log", "-1", "--format=%H%x00%P%x00%s%x00%an%x00%at%x00%ct", rev]);
    let f: Vec<&str> = log.split('\0').collect();
    let depth: u64 = out(&["rev-list", "--first-parent", "--count", rev]).parse().unwrap();
    CommitInfo {
        sha: f[0].to_owned(),
        parents: f[1].split_whitespace().map(str::to_owned).collect(),
        subject: f[2].to_owned(),
        author_name: f[3].to_owned(),
        author_time: f[4].parse().unwrap(),
        commit_time: f[5].parse().unwrap(),
        branch: Some("master".into()),
        dirty: false,
        depth: depth - 1,
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn a_script_in_a_commit_subject_shows_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "master"]);
    for subject in ["first", HOSTILE_SUBJECT, "third & \"last\""] {
        git(&repo, &["commit", "-q", "--allow-empty", "-m", subject]);
    }
    let commits: Vec<CommitInfo> = ["HEAD~2", "HEAD~1", "HEAD"]
        .iter()
        .map(|rev| describe(&repo, rev))
        .collect();
    assert_eq!(commits[1].subject, HOSTILE_SUBJECT, "git kept the subject as it is");
    let hostile_sha = commits[1].sha.clone();
    // A later commit, with the same subject, that did not build.
    git(&repo, &["commit", "-q", "--allow-empty", "-m", HOSTILE_SUBJECT]);
    let broken = describe(&repo, "HEAD");

    let mut db = collector::Database::open(&dir.path().join("bench.sqlite")).unwrap();
    populate(
        &mut db,
        &SyntheticOptions {
            series: 60,
            hostile: true,
            history: Some(commits),
            ..SyntheticOptions::default()
        },
    )
    .unwrap();
    // A build's output is text from the commit too (a compiler quoting its source).
    db.record_build_failure(&broken, "exit status: 101; <b>not</b> <img src=x onerror=alert(5)>")
        .unwrap();
    let site = dir.path().join("public");
    generate(
        &db,
        &site,
        &SiteOptions {
            site_url: Some("https://pages.example.org/soledad-bench/".into()),
            ..SiteOptions::default()
        },
    )
    .unwrap();

    let mut all = Vec::new();
    files(&site, &mut all);
    let mut markup = 0;
    for file in &all {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "html" | "atom" | "xml" | "js" | "svg" | "css") {
            continue; // CSV is data, not markup; the database is binary
        }
        markup += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for raw in ["<script>alert", "<img src=x", "<b>not</b>", "onerror=alert"] {
            // `onerror=alert` may appear only inside an escaped `&lt;img ... &gt;`.
            let unescaped = if raw == "onerror=alert" {
                text.contains("<img src=x onerror=alert")
            } else {
                text.contains(raw)
            };
            assert!(!unescaped, "{} holds {raw:?} unescaped", file.display());
        }
    }
    assert!(markup > 10, "only {markup} markup files");

    let page = site.join("commits").join(format!("{hostile_sha}.html"));
    let text = std::fs::read_to_string(&page).unwrap();
    assert!(
        text.contains("&lt;script&gt;alert(1)&lt;"),
        "{} shows the subject as text",
        page.display()
    );
    assert!(text.contains("Mallory &quot;&amp;&quot;"), "the author is escaped too");
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains("bench&#x2F;&lt;img src=x onerror=alert(4)&gt;")
            || index.contains("bench/&lt;img src=x onerror=alert(4)&gt;")
    );
    let failures = &index[index
        .find("id=\"failures-h\"")
        .expect("the front page lists the commits that did not build")..];
    let listed = format!(
        "<code>{}</code> <span class=\"subject\">&lt;script&gt;alert(1)&lt;/script&gt;</span>",
        &broken.sha[..10]
    );
    assert!(
        failures.contains(&listed) && failures.contains("exit status: 101; &lt;b&gt;not&lt;/b&gt;"),
        "the commit that did not build is listed as text"
    );
    let feed = std::fs::read_to_string(site.join("regressions.atom")).unwrap();
    assert!(!feed.contains("<script>"));
}

/// A commit subject that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) reaches the
/// published CSV files as text: its cell begins with an apostrophe, which makes spreadsheets
/// read it as text. Other subjects and the numbers are written as they are.
#[test]
fn a_formula_in_a_commit_subject_is_text_in_the_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "master"]);
    let subjects = [
        "=HYPERLINK(\"https://example.invalid/\",\"open me\")",
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "plain, \"quoted\" = fine",
    ];
    for subject in subjects {
        git(&repo, &["commit", "-q", "--allow-empty", "-m", subject]);
    }
    let commits: Vec<CommitInfo> = (0..subjects.len())
        .rev()
        .map(|back| describe(&repo, &format!("HEAD~{back}")))
        .collect();
    let mut db = collector::Database::open(&dir.path().join("bench.sqlite")).unwrap();
    populate(
        &mut db,
        &SyntheticOptions {
            series: 6,
            history: Some(commits),
            ..SyntheticOptions::default()
        },
    )
    .unwrap();
    let site = dir.path().join("public");
    generate(&db, &site, &SiteOptions::default()).unwrap();

    let mut all = Vec::new();
    files(&site, &mut all);
    let csvs: Vec<&PathBuf> = all
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "csv"))
        .collect();
    assert!(!csvs.is_empty(), "the site publishes CSV files");
    for file in csvs {
        let mut reader = csv::Reader::from_path(file).unwrap();
        let header = reader.headers().unwrap().clone();
        assert_eq!(&header[2], "subject");
        let mut seen = Vec::new();
        for record in reader.records() {
            let record = record.unwrap();
            let subject = &record[2];
            assert!(
                !subject.starts_with(['=', '+', '-', '@']),
                "{}: {subject}",
                file.display()
            );
            seen.push(subject.to_owned());
            // The medians stay numbers.
            assert!(
                record[3].is_empty() || record[3].parse::<f64>().is_ok(),
                "{:?}",
                &record[3]
            );
        }
        for subject in &subjects[..4] {
            assert!(
                seen.contains(&format!("'{subject}")),
                "{}: {subject} as text in {seen:?}",
                file.display()
            );
        }
        assert!(
            seen.iter().any(|s| s == subjects[4]),
            "an ordinary subject is unchanged"
        );
    }
}
