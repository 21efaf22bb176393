//! What is kept of a failed build's log as its reason: the first error and the end, without
//! the build machine's paths (the site publishes it).

use std::path::{Path, PathBuf};

/// Lines of a failed build's output kept as its reason (the site shows them).
const EXCERPT_LINES: usize = 15;
/// And at most this many bytes of them.
const EXCERPT_BYTES: usize = 4000;

/// `text` without the paths of this machine (the site publishes a failure's reason): the
/// checkout becomes `.`, then the build cache, the repository, `$CARGO_HOME` and `~`.
pub(super) fn redact(text: &str, source: &Path, cache: &Path, repo: &Path) -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
    redact_paths(
        text,
        &[
            (Some(source.to_owned()), "."),
            (Some(cache.to_owned()), "<build cache>"),
            (Some(repo.to_owned()), "<repository>"),
            (cargo_home, "$CARGO_HOME"),
            (home, "~"),
        ],
    )
}

/// Replaces each path prefix by its placeholder, the first that matches winning (so list the
/// longer paths first). Only whole paths match: `/home/ann` is taken out of `/home/ann/x`
/// and `/home/ann.` (the end of a sentence), not out of `/home/anne`, `/home/ann.bak` or
/// `/mnt/home/ann`. Relative paths are made absolute first.
fn redact_paths(text: &str, paths: &[(Option<PathBuf>, &str)]) -> String {
    // A character that can be part of a file name (as far as logs go).
    let in_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '+' | '~' | '@' | '%');
    let mut out = text.to_owned();
    for (path, placeholder) in paths {
        let Some(path) = path.as_ref().and_then(|p| std::path::absolute(p).ok()) else {
            continue;
        };
        let Some(path) = path.to_str().map(|p| p.trim_end_matches('/')) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let mut redacted = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(path) {
            let (before, after) = (&rest[..at], &rest[at + path.len()..]);
            let starts = before
                .chars()
                .last()
                .or_else(|| redacted.chars().last())
                .is_none_or(|c| !in_name(c) && !matches!(c, '/' | '.'));
            let mut next = after.chars();
            let ends = match next.next() {
                None => true,
                Some('.') => !next.next().is_some_and(in_name),
                Some(c) => !in_name(c),
            };
            redacted.push_str(before);
            redacted.push_str(if starts && ends { placeholder } else { path });
            rest = after;
        }
        redacted.push_str(rest);
        out = redacted;
    }
    out
}

/// The excerpt of a build log file that says why the build failed.
pub(super) fn log_excerpt(path: &Path) -> String {
    build_log_excerpt(&std::fs::read_to_string(path).unwrap_or_default())
}

/// What says why a build failed: its first error and what follows it, then its last lines
/// (cargo's summary); without an error line, the last lines alone. The end of a log is
/// usually only "could not compile", the first error is the cause.
fn build_log_excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let first_error = lines.iter().position(|l| l.starts_with("error"));
    let tail = lines.len().saturating_sub(3);
    let mut kept: Vec<&str> = match first_error {
        Some(at) if at + EXCERPT_LINES < tail => {
            let mut kept = lines[at..at + EXCERPT_LINES].to_vec();
            kept.push("...");
            kept.extend(&lines[tail..]);
            kept
        }
        Some(at) => lines[at..].to_vec(),
        None => lines[lines.len().saturating_sub(EXCERPT_LINES)..].to_vec(),
    };
    let mut bytes = 0;
    kept.retain(|l| {
        bytes += l.len() + 1;
        bytes <= EXCERPT_BYTES
    });
    kept.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_of_the_build_machine_are_taken_out_of_a_build_log() {
        let log = "error: failed to run custom build command for `x v0.1.0 (/srv/cache/worktrees/abc/x)`\n\
                   --> /home/ann/.cargo/registry/src/y-1.0/src/lib.rs:3:1\n\
                   note: /home/anne/file and /home/ann/notes, /srv/repo/Cargo.toml\n\
                   in /home/ann. /home/ann.bak /mnt/home/ann/x [/home/ann]\t/home/ann";
        let paths = [
            (Some(PathBuf::from("/srv/cache/worktrees/abc")), "."),
            (Some(PathBuf::from("/srv/cache/")), "<build cache>"),
            (Some(PathBuf::from("/srv/repo")), "<repository>"),
            (None, "$NOTHING"),
            (Some(PathBuf::from("/home/ann/.cargo")), "$CARGO_HOME"),
            (Some(PathBuf::from("/home/ann")), "~"),
        ];
        assert_eq!(
            redact_paths(log, &paths),
            "error: failed to run custom build command for `x v0.1.0 (./x)`\n\
             --> $CARGO_HOME/registry/src/y-1.0/src/lib.rs:3:1\n\
             note: /home/anne/file and ~/notes, <repository>/Cargo.toml\n\
             in ~. /home/ann.bak /mnt/home/ann/x [~]\t~"
        );
    }

    #[test]
    fn a_build_log_is_cut_to_its_first_error_and_its_end() {
        let mut log = String::from("   Compiling a v0.1.0\n   Compiling b v0.1.0\n\n");
        log.push_str("error[E0425]: cannot find value `x` in this scope\n --> src/lib.rs:1:1\n");
        for i in 0..30 {
            log.push_str(&format!("  | detail {i}\n"));
        }
        log.push_str("error: could not compile `b` (lib) due to 1 previous error\n");
        let excerpt = build_log_excerpt(&log);
        let lines: Vec<&str> = excerpt.lines().collect();
        assert_eq!(lines[0], "error[E0425]: cannot find value `x` in this scope");
        assert_eq!(lines.len(), EXCERPT_LINES + 4, "{excerpt}");
        assert_eq!(lines[EXCERPT_LINES], "...");
        assert_eq!(
            lines.last(),
            Some(&"error: could not compile `b` (lib) due to 1 previous error")
        );
        // Short logs whole from their error; without one, the last lines.
        assert_eq!(build_log_excerpt("x\nerror: e\ny\n"), "error: e\ny");
        assert_eq!(build_log_excerpt("a\n\nb\n"), "a\nb");
        // Bounded in bytes too.
        let long = vec!["y".repeat(900); 20].join("\n");
        assert!(build_log_excerpt(&long).len() <= EXCERPT_BYTES);
    }
}
