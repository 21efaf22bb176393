//! The site in a real browser: headless Chromium loads every page of a site generated from a
//! realistic history (the synthetic one, through the collector's real ingest and analysis,
//! with hostile text in it), opened from disk and served under a sub-path on loopback, and
//! finds no console error, no failed load, no request leaving the site, no broken link,
//! anchor or image, no dialog (no injected script ran). It saves screenshots of the index, a
//! scenario page and a compare page, whose plots must be on screen, into
//! `target/tmp/site-screenshots/`.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cdp::{Browser, Diagnostics};
use site_gen::{SiteOptions, generate};
use testdata::history::{SyntheticOptions, populate};

const REPOSITORY: &str = "https://git.example.org/leap/soledad-bench/-/commit/";
const PREFIX: &str = "/group/soledad-bench/";

/// Everything a page links to or loads, resolved, and what images failed.
const INSPECT: &str = r#"(() => {
  const links = [];
  for (const el of document.querySelectorAll('a, link[href], script[src], img, image, use')) {
    const raw = el.getAttribute('href') ?? el.getAttribute('xlink:href') ?? el.getAttribute('src');
    if (raw === null) continue;
    links.push([el.tagName.toLowerCase(), raw, new URL(raw, document.baseURI).href]);
  }
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  return {links, broken};
})()"#;

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            html_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
}

/// Serves `root` under `PREFIX` on 127.0.0.1, as GitLab Pages serves a project; anything
/// outside the prefix is a 404, so that a link that climbs out of the sub-path fails.
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}{PREFIX}", listener.local_addr().unwrap());
    assert!(base.starts_with("http://127.0.0.1:"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            // A connection per thread: Chromium opens connections it may never use.
            std::thread::spawn(move || answer(stream, &root));
        }
    });
    base
}

fn answer(mut stream: TcpStream, root: &Path) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let target = target.split(['?', '#']).next().unwrap_or("");
    let file = target
        .strip_prefix(PREFIX)
        .filter(|rest| !rest.split('/').any(|part| part == ".."))
        .map(|rest| {
            let path = root.join(rest);
            if rest.is_empty() || rest.ends_with('/') {
                path.join("index.html")
            } else {
                path
            }
        });
    let (status, body, kind) = match file.and_then(|f| std::fs::read(&f).ok().map(|b| (f, b))) {
        Some((f, body)) => {
            let kind = match f.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("css") => "text/css",
                Some("js") => "text/javascript",
                Some("xml") | Some("atom") => "application/atom+xml",
                Some("csv") => "text/csv",
                Some("svg") => "image/svg+xml",
                _ => "application/octet-stream",
            };
            ("200 OK", body, kind)
        }
        None => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

struct Checker {
    /// The site's root URL, ending in `/`.
    base: String,
    root: PathBuf,
    ids: HashMap<PathBuf, String>,
    checked: HashSet<String>,
}

impl Checker {
    /// The file a URL of the site names, or why it is not one.
    fn file_of(&self, url: &str) -> Result<(PathBuf, Option<String>), String> {
        let rest = url
            .strip_prefix(&self.base)
            .ok_or_else(|| format!("{url} is outside the site ({})", self.base))?;
        let (path, fragment) = match rest.split_once('#') {
            Some((p, f)) => (p, Some(f.to_owned()).filter(|f| !f.is_empty())),
            None => (rest, None),
        };
        let path = path.split('?').next().unwrap_or("");
        let file = if path.is_empty() || path.ends_with('/') {
            self.root.join(path).join("index.html")
        } else {
            self.root.join(path)
        };
        Ok((file, fragment))
    }

    fn check(&mut self, page: &str, tag: &str, raw: &str, url: &str, problems: &mut Vec<String>) {
        if url.starts_with(REPOSITORY) && tag == "a" {
            return; // the commit in the repository's web interface: a link, never loaded
        }
        if url.starts_with("data:") {
            return; // inline (the empty favicon that spares a request)
        }
        if !self.checked.insert(url.to_owned()) {
            return;
        }
        let (file, fragment) = match self.file_of(url) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("{page}: <{tag}> {raw:?}: {e}"));
                return;
            }
        };
        if !file.is_file() {
            problems.push(format!("{page}: <{tag}> {raw:?}: no file {}", file.display()));
            return;
        }
        if let Some(id) = fragment
            && file.extension().is_some_and(|e| e == "html")
        {
            let text = self
                .ids
                .entry(file.clone())
                .or_insert_with(|| std::fs::read_to_string(&file).unwrap());
            if !text.contains(&format!("id=\"{id}\"")) {
                problems.push(format!("{page}: <{tag}> {raw:?}: no #{id} in {}", file.display()));
            }
        }
    }
}

/// Opens a page and checks what it did and what it links to.
fn visit(browser: &mut Browser, checker: &mut Checker, url: &str, problems: &mut Vec<String>) {
    let d: Diagnostics = browser.open(url);
    problems.extend(d.problems.iter().map(|p| format!("{url}: {p}")));
    for request in &d.requests {
        if !request.starts_with(&checker.base) && !request.starts_with("data:") {
            problems.push(format!("{url}: requested {request}, outside the site"));
        }
    }
    let found = browser.eval(INSPECT);
    for link in found["links"].as_array().unwrap() {
        let (tag, raw, resolved) = (
            link[0].as_str().unwrap(),
            link[1].as_str().unwrap(),
            link[2].as_str().unwrap(),
        );
        checker.check(url, tag, raw, resolved, problems);
    }
    for image in found["broken"].as_array().unwrap() {
        problems.push(format!("{url}: broken image {image}"));
    }
}

/// How many plots of `selector` are drawn within the top `height` pixels, with some size.
fn visible_plots(browser: &mut Browser, selector: &str, min_width: f64, height: f64) -> u64 {
    let count = browser.eval(&format!(
        r#"[...document.querySelectorAll({selector:?})].filter(s => {{
             const r = s.getBoundingClientRect();
             return r.width >= {min_width} && r.height >= 10 && r.top + window.scrollY < {height}
               && getComputedStyle(s).visibility !== 'hidden' && s.querySelectorAll('path, circle, polyline, line').length >= 2;
           }}).length"#
    ));
    count.as_u64().unwrap()
}

#[test]
fn every_page_loads_clean_from_disk_and_under_a_sub_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = collector::Database::open(&dir.path().join("bench.sqlite")).unwrap();
    let options = SyntheticOptions {
        commits: 24,
        series: 40,
        hostile: true,
        ..SyntheticOptions::default()
    };
    populate(&mut db, &options).unwrap();
    // A commit that did not build, with a subject and an error line that do not break.
    let broken = collector::record::CommitInfo {
        sha: "f".repeat(40),
        parents: Vec::new(),
        subject: format!("broken{}", "_".repeat(120)),
        author_name: "a".into(),
        author_time: 1_900_000_000,
        commit_time: 1_900_000_000,
        branch: Some("master".into()),
        dirty: false,
        depth: 0,
    };
    db.record_build_failure(&broken, &format!("exit status: 101; error: {}", "x".repeat(300)))
        .unwrap();
    let root = dir.path().join("public");
    generate(
        &db,
        &root,
        &SiteOptions {
            commit_url: Some(format!("{REPOSITORY}{{sha}}")),
            site_url: Some("https://pages.example.org/group/soledad-bench/".into()),
            ..SiteOptions::default()
        },
    )
    .unwrap();
    let root = root.canonicalize().unwrap();
    let mut pages = Vec::new();
    html_files(&root, &mut pages);
    pages.sort();
    let kinds: HashSet<_> = pages
        .iter()
        .map(|p| p.parent().unwrap().strip_prefix(&root).unwrap().to_owned())
        .collect();
    for dir in ["", "scenarios", "commits", "compare"] {
        assert!(kinds.contains(Path::new(dir)), "no page in {dir:?}: {pages:?}");
    }
    for page in [
        "index.html",
        "series.html",
        "machines.html",
        "methodology.html",
        "compare/index.html",
    ] {
        assert!(root.join(page).is_file(), "{page} missing");
    }
    assert!(root.join(site_gen::DATABASE).is_file());

    let mut browser = Browser::start();
    browser.viewport(1280, 900, 1.0, false);
    let mut problems = Vec::new();

    // Every page, opened from disk.
    let file_base = format!("file://{}/", root.display());
    let mut checker = Checker {
        base: file_base.clone(),
        root: root.clone(),
        ids: HashMap::new(),
        checked: HashSet::new(),
    };
    for page in &pages {
        let url = format!("file://{}", page.display());
        visit(&mut browser, &mut checker, &url, &mut problems);
    }

    // One page of each kind under a sub-path, as GitLab Pages serves it.
    let http_base = serve(root.clone());
    let mut checker = Checker {
        base: http_base.clone(),
        root: root.clone(),
        ids: HashMap::new(),
        checked: HashSet::new(),
    };
    let mut seen_kinds = HashSet::new();
    for page in &pages {
        let relative = page.strip_prefix(&root).unwrap();
        let kind = relative.parent().unwrap().to_owned();
        let is_root_page = kind.as_os_str().is_empty();
        if is_root_page || seen_kinds.insert(kind) {
            let url = format!("{http_base}{}", relative.display());
            visit(&mut browser, &mut checker, &url, &mut problems);
        }
    }
    // The directory itself, as a reader types it.
    visit(&mut browser, &mut checker, &http_base, &mut problems);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // The selector of any two commits, from disk: the oldest against the newest differ.
    let d = browser.open(&format!("file://{}", root.join("compare/index.html").display()));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    let rows = browser.eval(
        r#"new Promise(resolve => {
             const a = document.getElementById('pick-a');
             a.selectedIndex = a.options.length - 1;
             a.dispatchEvent(new Event('change', {bubbles: true}));
             const t0 = Date.now();
             (function poll() {
               const n = document.querySelectorAll('#pick-out table tbody tr').length;
               if (n > 0 || Date.now() - t0 > 10000) resolve(n); else setTimeout(poll, 20);
             })();
           })"#,
    );
    assert!(rows.as_u64().unwrap() > 0, "the selector compared nothing");
    let late = browser.drain(Duration::from_millis(50));
    for v in &late {
        let mut d = Diagnostics::default();
        browser.diagnose(v, &mut d);
        assert!(d.problems.is_empty(), "selector: {:?}", d.problems);
    }

    // Screenshots, with their plots on screen.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let pick = |dir: &str, marker: &str| {
        pages
            .iter()
            .filter(|p| p.parent().unwrap().ends_with(dir))
            .find(|p| std::fs::read_to_string(p).unwrap().contains(marker))
            .unwrap_or_else(|| panic!("no page in {dir} with {marker:?}"))
            .clone()
    };
    let scenario = pick("scenarios", "class=\"cp reg\"");
    let compare = pick("compare", "class=\"pt reg\"");
    for (name, page, selector, min_width, least) in [
        ("index", root.join("index.html"), "svg.spark", 40.0, 3),
        ("scenario", scenario, "svg.plot", 300.0, 1),
        ("compare", compare, "svg.plot", 300.0, 1),
    ] {
        let d = browser.open(&format!("file://{}", page.display()));
        assert!(d.problems.is_empty(), "{name}: {:?}", d.problems);
        let png = browser.screenshot(&shots.join(format!("{name}.png")), 1600.0);
        let shown = visible_plots(&mut browser, selector, min_width, 1600.0);
        assert!(
            shown >= least,
            "{name}: {shown} visible plots ({selector}) in {}",
            page.display()
        );
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "{name}: {} bytes",
            png.len()
        );
    }

    // A phone: the page itself does not scroll sideways (wide tables scroll in their box).
    browser.viewport(390, 844, 2.0, true);
    for page in ["index.html", "series.html", "methodology.html"] {
        browser.open(&format!("file://{}", root.join(page).display()));
        // The build log of a commit that did not build, opened.
        let opened = browser
            .eval("Array.from(document.querySelectorAll('.build-failures details')).map(d => d.open = true).length");
        assert_eq!(
            opened.as_f64(),
            Some(if page == "index.html" { 1.0 } else { 0.0 }),
            "{page}"
        );
        let overflow = browser.eval("document.documentElement.scrollWidth - window.innerWidth");
        assert!(
            overflow.as_f64().unwrap() <= 1.0,
            "{page} is {overflow} px too wide on a phone"
        );
        browser.screenshot(&shots.join(page.replace(".html", "-phone.png")), 2400.0);
    }
}
