//! The Atom feed of regressions: one entry per published commit with regressions, newest
//! first, so that a feed reader tells people when something got slower.

use collector::statistics::verdict::Verdict;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::SiteError;
use crate::format::{self, short_sha};
use crate::pages::{Site, effect_order};
use crate::paths::{self, FEED};
use crate::render::escape;

/// Entries in the feed.
const ENTRIES: usize = 50;

#[derive(Serialize)]
struct Entry {
    id: String,
    title: String,
    updated: String,
    link: String,
    author: String,
    /// HTML, escaped once more by the template (Atom's `type="html"`).
    content: String,
}

/// A stable `urn:uuid:` for a name.
fn urn(name: &str) -> String {
    let h = hex::encode(&Sha256::digest(name.as_bytes())[..16]);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn write(site: &Site) -> Result<(), SiteError> {
    let model = site.model;
    let base = site.options.site_url.as_deref().map(|u| {
        if u.ends_with('/') {
            u.to_owned()
        } else {
            format!("{u}/")
        }
    });
    let absolute = |path: &str| format!("{}{path}", base.as_deref().unwrap_or(""));
    let entries: Vec<Entry> = model
        .commits
        .iter()
        .rev()
        .filter(|c| c.count(model, Verdict::Regression) > 0)
        .take(ENTRIES)
        .map(|c| {
            let sha = &c.commit.sha;
            let mut rows: Vec<_> = c
                .verdicts
                .iter()
                .map(|&v| &model.verdicts[v])
                .filter(|v| v.verdict == Verdict::Regression)
                .map(|v| site.verdict_row(v, base.as_deref().unwrap_or("")))
                .collect();
            rows.sort_by(effect_order);
            let mut content = format!(
                "<p>{} of {} series regressed at <code>{}</code> {}.</p><ul>",
                rows.len(),
                c.verdicts.len(),
                short_sha(sha),
                escape(&c.commit.subject)
            );
            for r in &rows {
                content.push_str(&format!(
                    "<li><a href=\"{}\">{} {}</a>: {} {} ({} → {})</li>",
                    escape(&r.href),
                    escape(&r.scenario_id),
                    escape(&r.metric),
                    escape(&r.change),
                    escape(&r.change_ci),
                    escape(&r.baseline),
                    escape(&r.commit)
                ));
            }
            content.push_str("</ul>");
            let updated = c
                .runs
                .iter()
                .filter_map(|r| model.runs.get(r))
                .map(|r| r.started_at.clone())
                .max()
                .unwrap_or_else(|| format::rfc3339(c.commit.author_time));
            let worst = rows
                .first()
                .map(|r| format!(", {} {} {}", r.scenario_id, r.metric, r.change));
            Entry {
                id: urn(&format!("soledad-bench regression {sha}")),
                title: format!(
                    "{}: {} regression{}{} ({})",
                    short_sha(sha),
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" },
                    worst.unwrap_or_default(),
                    format::truncate(&c.commit.subject, 80)
                ),
                updated,
                link: absolute(&format!("{}/{}", paths::COMMITS, paths::commit_file(sha))),
                author: c.commit.author_name.clone(),
                content,
            }
        })
        .collect();
    let updated = entries
        .iter()
        .map(|e| e.updated.clone())
        .max()
        .unwrap_or_else(|| site.generated_at.clone());
    let mut ctx = site.base("", "Regressions");
    ctx.insert(
        "feed_id",
        &base
            .as_ref()
            .map(|b| format!("{b}{FEED}"))
            .unwrap_or_else(|| urn(&format!("soledad-bench feed {}", site.options.title))),
    );
    ctx.insert("self_link", &base.as_ref().map(|b| format!("{b}{FEED}")));
    ctx.insert("home", &absolute("index.html"));
    ctx.insert("updated", &updated);
    ctx.insert("entries", &entries);
    site.page(FEED, "feed.xml", &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_uuids() {
        let a = urn("x");
        assert_eq!(a, urn("x"));
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_ne!(a, urn("y"));
    }
}
