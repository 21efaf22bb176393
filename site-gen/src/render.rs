//! Templates, escaping, writing files, and spreading pages over the cores.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tera::{Context, Tera};

use crate::SiteError;

const TEMPLATES: [(&str, &str); 13] = [
    ("components.html", include_str!("../templates/components.html")),
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("series.html", include_str!("../templates/series.html")),
    ("scenario.html", include_str!("../templates/scenario.html")),
    ("commit.html", include_str!("../templates/commit.html")),
    ("verdict_rows.html", include_str!("../templates/verdict_rows.html")),
    ("compare.html", include_str!("../templates/compare.html")),
    ("branch_compare.html", include_str!("../templates/branch_compare.html")),
    ("compare_index.html", include_str!("../templates/compare_index.html")),
    ("machines.html", include_str!("../templates/machines.html")),
    ("methodology.html", include_str!("../templates/methodology.html")),
    ("feed.xml", include_str!("../templates/feed.xml")),
];

/// The templates. Those ending in `.html` and `.xml` are autoescaped: text from git and
/// scenario files is never read as markup. Only SVG and Markdown rendered here (which escape
/// their own text) are marked `safe`.
pub fn templates() -> Result<Tera, SiteError> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html", ".xml"]);
    tera.add_raw_templates(TEMPLATES).map_err(|e| SiteError::Template {
        template: "(loading)".into(),
        message: e.to_string(),
    })?;
    Ok(tera)
}

pub fn render(tera: &Tera, template: &str, ctx: &Context) -> Result<String, SiteError> {
    tera.render(template, ctx).map_err(|e| SiteError::Template {
        template: template.into(),
        message: e.to_string(),
    })
}

/// Text made safe for HTML and XML, for what is written outside the templates (SVG).
pub fn escape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    tera::escape_html(text, &mut out).expect("writing to memory");
    String::from_utf8(out).expect("escaping keeps UTF-8")
}

/// Writes one file, creating its directory.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), SiteError> {
    let fail = |source| SiteError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, contents).map_err(fail)
}

/// Runs `job` on every item, on as many threads as there are cores; the first error wins.
pub fn each<T: Sync>(items: &[T], job: impl Fn(&T) -> Result<(), SiteError> + Sync) -> Result<(), SiteError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<SiteError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || failure.lock().expect("not poisoned").is_some() {
                        break;
                    }
                    if let Err(e) = job(&items[i]) {
                        failure.lock().expect("not poisoned").get_or_insert(e);
                    }
                }
            });
        }
    });
    match failure.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn every_item_is_done_once_and_errors_surface() {
        let done = AtomicUsize::new(0);
        each(&(0..100).collect::<Vec<_>>(), |_| {
            done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(done.into_inner(), 100);
        let r = each(&[1, 2, 3], |&i| {
            if i == 2 {
                Err(SiteError::Plot {
                    series: "x".into(),
                    message: "boom".into(),
                })
            } else {
                Ok(())
            }
        });
        assert!(r.is_err());
    }
}
