//! Where each page lives. Every link is relative: a page at depth 1 (`scenarios/x.html`)
//! reaches the root through `../`, so the site works under any sub-path and from disk.
//!
//! Names come from the database (scenario ids, shas, comparison uuids), which comes from
//! results files; they are reduced to a safe alphabet so that no name can escape its
//! directory or need escaping in a URL.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

pub const SCENARIOS: &str = "scenarios";
pub const COMMITS: &str = "commits";
pub const COMPARE: &str = "compare";
pub const DATA: &str = "data";
/// The page with every series (the front page is the summary).
pub const SERIES_PAGE: &str = "series.html";
/// The database export, at the root under this exact name: the next CI job fetches it.
pub const DATABASE: &str = "bench.sqlite.gz";
pub const FEED: &str = "regressions.atom";

/// A name made of `[A-Za-z0-9._-]` only, never starting with a dot.
pub fn slug(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

/// A commit's file name: its sha when it is one (hex), otherwise a slug with a hash.
pub fn commit_file(sha: &str) -> String {
    if !sha.is_empty() && sha.len() <= 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{}.html", sha.to_ascii_lowercase())
    } else {
        format!(
            "{}-{}.html",
            slug(&sha.chars().take(40).collect::<String>()),
            short_hash(sha)
        )
    }
}

/// The compare page of two commits, from the root.
pub fn compare_commits(a: &str, b: &str) -> String {
    let strip = |f: String| f.trim_end_matches(".html").to_owned();
    format!("{COMPARE}/{}_{}.html", strip(commit_file(a)), strip(commit_file(b)))
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..4])
}

/// File names of scenario pages: `blobs.upload/10x100k/c1` becomes
/// `blobs.upload_10x100k_c1.html`; two ids that would share a name are told apart by a hash.
pub struct ScenarioFiles(HashMap<String, String>);

impl ScenarioFiles {
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut ids: Vec<&str> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let mut count: HashMap<String, usize> = HashMap::new();
        for id in &ids {
            *count.entry(slug(&id.replace('/', "_"))).or_default() += 1;
        }
        let map = ids
            .into_iter()
            .map(|id| {
                let s = slug(&id.replace('/', "_"));
                let name = if count[&s] > 1 {
                    format!("{s}-{}", short_hash(id))
                } else {
                    s
                };
                (id.to_owned(), name)
            })
            .collect();
        Self(map)
    }

    /// The page's name without extension, or `None` for an unknown id.
    pub fn stem(&self, scenario_id: &str) -> Option<&str> {
        self.0.get(scenario_id).map(String::as_str)
    }

    /// The page from the root.
    pub fn page(&self, scenario_id: &str) -> String {
        format!("{SCENARIOS}/{}.html", self.stem(scenario_id).unwrap_or("_unknown"))
    }
}

/// An id for an HTML anchor: letters, digits, `-` and `_`.
pub fn anchor(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_in_their_directory() {
        assert_eq!(slug("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(slug("<script>"), "_script_");
        assert_eq!(slug(""), "_");
        assert_eq!(commit_file("ABCdef0123"), "abcdef0123.html");
        assert!(commit_file("../x").starts_with("_.._x-"));
        assert_eq!(compare_commits("aa", "bb"), "compare/aa_bb.html");
    }

    #[test]
    fn scenario_files_are_unique() {
        let files = ScenarioFiles::new(["blobs.upload/10x100k/c1", "a/b", "a_b", "a/b"]);
        assert_eq!(files.stem("blobs.upload/10x100k/c1"), Some("blobs.upload_10x100k_c1"));
        assert_ne!(files.stem("a/b"), files.stem("a_b"));
        assert!(files.stem("a/b").unwrap().starts_with("a_b-"));
        assert_eq!(anchor(&["wall_s", "1", "ab"]), "wall_s-1-ab");
    }
}
