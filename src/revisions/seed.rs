//! Seeding a commit build's own cargo directory with the dependencies the working tree has
//! compiled already, so that the first build of a revision compiles the workspace's crates
//! and not every dependency again (9 minutes here, against 2 to 3).
//!
//! The build directory cannot simply be shared with the working tree: cargo names a
//! workspace member's artifacts after its path *relative to the workspace root*, so the
//! checkout's `collector` and the working tree's `collector` share one file name, and
//! whichever was built last looks fresh to the other (measured here: the working tree then
//! linked against a revision's collector). So only dependencies from outside the workspace
//! (registry and git packages) are brought over, one way, from the working tree's build
//! directory into the cache's:
//!
//! - compiled libraries (`deps/`) are hard-linked: rustc replaces an output by renaming a new
//!   file over it, so a later rebuild in one directory never writes into the other's file;
//!   their dep-info (`.d`) files, which rustc rewrites in place, are copied;
//! - fingerprints (`.fingerprint/`) and build scripts with their outputs (`build/`), which
//!   cargo and build scripts rewrite in place, are copied with their modification times
//!   (cargo compares them: copies dated now made every dependency look newer than the
//!   crates built on it, and the whole tree was compiled again). Cargo relocates a build
//!   script's recorded output directory when it is read from another place.
//!
//! The layout of a build directory is cargo's internal detail: whatever this does not
//! recognise is left alone, and a dependency not brought over is only compiled again.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context as _;

/// What was brought over: units (a dependency's library, fingerprint or build script).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    pub units: usize,
}

/// The packages that may be brought over: those of the lock file with a registry or git
/// source, less any name that is a package or target of the workspaces involved (the working
/// tree's and the commit's: a crate since removed from the workspace must not come back from
/// an old build).
#[derive(Debug, Default)]
pub struct Outside {
    /// Package names, as in `.fingerprint/` and `build/` (`serde_json`, `ring`).
    packages: BTreeSet<String>,
    /// The same as crate names, as in `deps/` (`-` becomes `_`).
    crates: BTreeSet<String>,
}

impl Outside {
    /// From the working tree's `Cargo.lock` and the `cargo metadata` (without dependencies)
    /// of the workspaces whose own packages must stay out.
    pub fn new(lock: &str, workspaces: &[&serde_json::Value]) -> Self {
        let mut own = BTreeSet::new();
        for meta in workspaces {
            for package in meta["packages"].as_array().into_iter().flatten() {
                own.extend(package["name"].as_str().map(|n| n.replace('-', "_")));
                for target in package["targets"].as_array().into_iter().flatten() {
                    own.extend(target["name"].as_str().map(|n| n.replace('-', "_")));
                }
            }
        }
        let mut outside = Self::default();
        let lock: toml::Table = lock.parse().unwrap_or_default();
        for package in lock.get("package").and_then(|p| p.as_array()).into_iter().flatten() {
            let (Some(name), true) = (
                package.get("name").and_then(|n| n.as_str()),
                package.get("source").is_some(),
            ) else {
                continue;
            };
            if own.contains(&name.replace('-', "_")) {
                continue;
            }
            outside.packages.insert(name.to_owned());
            outside.crates.insert(name.replace('-', "_"));
        }
        outside
    }

    fn allows(&self, dir: &str, name: &str) -> bool {
        if dir == "deps" {
            self.crates.contains(name.strip_prefix("lib").unwrap_or(name)) || self.crates.contains(name)
        } else {
            self.packages.contains(name)
        }
    }
}

/// `name-0123abcd...` without its hash, or `None` for a name without one.
fn unit_name(file: &str) -> Option<&str> {
    let (name, hash) = file.rsplit_once('-')?;
    let hash = hash.split('.').next()?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// Brings what `from` (a build directory's `release/`) holds of the dependencies `outside`
/// allows into `to`, where missing. Only an optimisation: what cannot be brought over is
/// compiled again, so failures are reported and skipped. Fingerprints come last, so that a
/// dependency looks built only once its outputs are all there.
pub fn seed(from: &Path, to: &Path, outside: &Outside) -> Seeded {
    let mut seeded = Seeded::default();
    for dir in ["deps", "build", ".fingerprint"] {
        let (src, dst) = (from.join(dir), to.join(dir));
        let Ok(entries) = std::fs::read_dir(&src) else { continue };
        if let Err(e) = std::fs::create_dir_all(&dst) {
            eprintln!("warning: cannot create {}: {e}", dst.display());
            return seeded;
        }
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(name) = unit_name(file) else { continue };
            let target = dst.join(file);
            if !outside.allows(dir, name) || target.symlink_metadata().is_ok() {
                continue;
            }
            match bring(&entry.path(), &target, dir == "deps" && !file.ends_with(".d")) {
                Ok(()) => seeded.units += usize::from(dir == ".fingerprint"),
                Err(e) => eprintln!("warning: not reusing {}: {e:#}", entry.path().display()),
            }
        }
    }
    seeded
}

/// Links (when `link` and possible) or copies `from` to `to`, through a temporary name so
/// that an interrupted copy leaves nothing half there.
fn bring(from: &Path, to: &Path, link: bool) -> anyhow::Result<()> {
    if link && std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(format!(".seeding-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    copy_tree(from, &tmp)?;
    std::fs::rename(&tmp, to).with_context(|| format!("cannot move {} to {}", tmp.display(), to.display()))
}

/// Copies a file, or a directory with everything in it (symbolic links as links), keeping
/// the files' modification times.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let meta = from.symlink_metadata()?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else {
        std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        std::fs::File::options()
            .write(true)
            .open(to)
            .and_then(|f| f.set_modified(meta.modified()?))
            .with_context(|| format!("cannot date {}", to.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_named_without_their_hash() {
        assert_eq!(
            unit_name("libblobs_server-0123456789abcdef.rlib"),
            Some("libblobs_server")
        );
        assert_eq!(unit_name("ring-0123456789abcdef"), Some("ring"));
        assert_eq!(unit_name("soledad_bench-0123456789abcdef.d"), Some("soledad_bench"));
        assert_eq!(unit_name(".cargo-lock"), None);
        assert_eq!(unit_name("serde-json"), None);
    }

    #[test]
    fn only_dependencies_outside_the_workspaces_are_brought_over() {
        let working = serde_json::json!({"packages": [
            {"name": "blobs-server", "targets": [{"name": "blobs-server"}, {"name": "api"}]},
        ]});
        // A crate of the commit's workspace that the working tree no longer has.
        let commit = serde_json::json!({"packages": [{"name": "old-member", "targets": [{"name": "old_member"}]}]});
        let lock = r#"
            [[package]]
            name = "ring"
            version = "0.17.14"
            source = "registry+https://github.com/rust-lang/crates.io-index"
            [[package]]
            name = "blobs-server"
            version = "0.1.0"
            [[package]]
            name = "old-member"
            version = "0.1.0"
            source = "registry+https://github.com/rust-lang/crates.io-index"
        "#;
        let outside = Outside::new(lock, &[&working, &commit]);
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let h = "0123456789abcdef";
        let files = [
            format!("deps/libring-{h}.rlib"),
            format!("deps/ring-{h}.d"),
            format!("deps/libblobs_server-{h}.rlib"),
            format!("deps/api-{h}"),
            format!("deps/libold_member-{h}.rlib"),
            format!(".fingerprint/ring-{h}/lib-ring"),
            format!(".fingerprint/blobs-server-{h}/lib-blobs_server"),
            format!(".fingerprint/old-member-{h}/lib-old_member"),
            format!("build/ring-{h}/out/x.o"),
            format!("build/blobs-server-{h}/output"),
        ];
        for f in &files {
            let path = from.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, f).unwrap();
        }
        assert_eq!(seed(from.path(), to.path(), &outside), Seeded { units: 1 });
        use std::os::unix::fs::MetadataExt;
        let rlib = to.path().join(format!("deps/libring-{h}.rlib"));
        assert_eq!(rlib.metadata().unwrap().nlink(), 2, "hard-linked");
        assert_eq!(
            to.path().join(format!("deps/ring-{h}.d")).metadata().unwrap().nlink(),
            1,
            "copied"
        );
        let copied = to.path().join(format!("build/ring-{h}/out/x.o"));
        let original = from.path().join(format!("build/ring-{h}/out/x.o"));
        assert_eq!(
            copied.metadata().unwrap().modified().unwrap(),
            original.metadata().unwrap().modified().unwrap(),
            "copies keep their dates"
        );
        assert!(to.path().join(format!(".fingerprint/ring-{h}/lib-ring")).is_file());
        for own in [
            format!("deps/libblobs_server-{h}.rlib"),
            format!("deps/api-{h}"),
            format!("deps/libold_member-{h}.rlib"),
            format!(".fingerprint/blobs-server-{h}"),
            format!(".fingerprint/old-member-{h}"),
            format!("build/blobs-server-{h}"),
        ] {
            assert!(!to.path().join(own).exists());
        }
        // Nothing half-copied is left beside what was brought over.
        let names: Vec<String> = std::fs::read_dir(to.path().join("build"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("ring-{h}")]);
        // Again: nothing is missing any more.
        assert_eq!(seed(from.path(), to.path(), &outside), Seeded::default());
    }
}
