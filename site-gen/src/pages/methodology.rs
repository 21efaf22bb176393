//! The methodology page: `docs/statistics.md` rendered, after what was measured on the
//! machines of this history (the A/A false-positive rates).

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};
use serde::Serialize;

use super::Site;
use crate::SiteError;
use crate::format::{share, short_sha};
use crate::paths;

/// The prose twin of the statistics, as built into this version.
const STATISTICS: &str = include_str!("../../../docs/statistics.md");

#[derive(Serialize)]
pub struct Calibration {
    pub machine: String,
    pub date: String,
    pub commit: String,
    pub commit_href: Option<String>,
    pub repetitions: i64,
    pub series: i64,
    pub comparisons: i64,
    pub false_positives: i64,
    pub rate: String,
    pub upper: String,
    pub failing: String,
    pub alpha: f64,
    pub floor: String,
}

#[derive(Serialize)]
struct Heading {
    id: String,
    text: String,
}

/// The calibrations to show, newest first; `latest_only` keeps one per machine.
pub fn calibrations(site: &Site, root: &str, latest_only: bool) -> Vec<Calibration> {
    let mut seen = std::collections::HashSet::new();
    site.model
        .calibrations
        .iter()
        .filter(|c| !latest_only || seen.insert(c.machine_id))
        .map(|c| Calibration {
            machine: site
                .model
                .machine(c.machine_id)
                .map(|m| format!("{} ({})", m.fingerprint, m.cpu_model))
                .unwrap_or_default(),
            date: c.finished_at.clone(),
            commit: short_sha(&c.commit_sha).to_owned(),
            commit_href: site.commit_href(root, &c.commit_sha),
            repetitions: c.repetitions,
            series: c.series,
            comparisons: c.series_comparisons,
            false_positives: c.false_positives,
            rate: share(c.false_positive_rate()),
            upper: share(c.false_positive_upper()),
            failing: format!("{} of {}", c.failing_comparisons, c.comparisons),
            alpha: c.alpha,
            // Which rule was calibrated: the paired one of per-commit runs with a kept build,
            // or the one against the history.
            floor: match c.kind {
                collector::CalibrationKind::Paired => format!("{} (paired rule)", share(c.practical_floor)),
                _ => share(c.practical_floor),
            },
        })
        .collect()
}

/// Markdown to HTML. Raw HTML in the source is shown as text, and links to files of the
/// repository (which the site does not have) become plain text, so that nothing on the page
/// is broken. Headings get ids; the second-level ones are returned for a table of contents.
fn markdown(source: &str) -> (String, Vec<Heading>) {
    let options = Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH;
    let events: Vec<Event> = Parser::new_ext(source, options).collect();
    let mut out = Vec::with_capacity(events.len());
    let mut headings = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut dropped_links = Vec::new();
    let mut i = 0;
    while i < events.len() {
        match &events[i] {
            Event::Start(Tag::Heading {
                level, classes, attrs, ..
            }) => {
                let text: String = events[i + 1..]
                    .iter()
                    .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
                    .filter_map(|e| match e {
                        Event::Text(t) | Event::Code(t) => Some(t.to_string()),
                        _ => None,
                    })
                    .collect();
                let mut id = paths::anchor(&[&text.to_lowercase()]);
                while !used.insert(id.clone()) {
                    id.push('-');
                }
                if *level == HeadingLevel::H2 {
                    headings.push(Heading { id: id.clone(), text });
                }
                out.push(Event::Start(Tag::Heading {
                    level: *level,
                    id: Some(CowStr::from(id)),
                    classes: classes.clone(),
                    attrs: attrs.clone(),
                }));
            }
            Event::Start(Tag::Link { dest_url, .. })
                if !(dest_url.starts_with("https://")
                    || dest_url.starts_with("http://")
                    || dest_url.starts_with('#')) =>
            {
                dropped_links.push(true);
            }
            Event::Start(Tag::Link { .. }) => {
                dropped_links.push(false);
                out.push(events[i].clone());
            }
            Event::End(TagEnd::Link) => {
                if !dropped_links.pop().unwrap_or(false) {
                    out.push(events[i].clone());
                }
            }
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => {}
            Event::Html(t) | Event::InlineHtml(t) => out.push(Event::Text(t.clone())),
            other => out.push(other.clone()),
        }
        i += 1;
    }
    let mut html_out = String::new();
    html::push_html(&mut html_out, out.into_iter());
    (html_out, headings)
}

pub fn write(site: &Site) -> Result<(), SiteError> {
    let (body, headings) = markdown(STATISTICS);
    let mut ctx = site.base("", "Methodology");
    ctx.insert("statistics", &body);
    ctx.insert("headings", &headings);
    ctx.insert("calibrations", &calibrations(site, "", true));
    site.page("methodology.html", "methodology.html", &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_safely_and_without_dead_links() {
        let (html, headings) = markdown(
            "# Title\n\n## The <b>gate</b>\n\nSee [schema](collector/schema.md), [web](https://example.org/) and [up](#title).\n\n<script>alert(1)</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(
            !html.contains("schema.md\""),
            "links into the repository are dropped: {html}"
        );
        assert!(html.contains("schema"));
        assert!(html.contains("href=\"https://example.org/\"") && html.contains("href=\"#title\""));
        assert!(html.contains("<table>"));
        assert!(html.contains("<h1 id=\"title\">"));
        assert_eq!(headings.len(), 1);
        assert_eq!(headings[0].id, "the-gate");
    }

    #[test]
    fn the_statistics_twin_renders() {
        let (html, headings) = markdown(STATISTICS);
        assert!(html.contains("Mann-Whitney"));
        assert!(headings.iter().any(|h| h.text == "Calibration"));
    }
}
