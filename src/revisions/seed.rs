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

/// What was brought over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    pub linked: usize,
    pub copied: usize,
}

/// Names of the workspace's own packages and targets, which must not be brought over.
#[derive(Debug, Default)]
pub struct Members {
    /// Package names, as in `.fingerprint/` and `build/` (`blobs-server`).
    packages: BTreeSet<String>,
    /// Target names as crates, as in `deps/` (`blobs_server`, `revisions`).
    crates: BTreeSet<String>,
}

impl Members {
    /// The path packages of a `cargo metadata` output (the workspace and its path
    /// dependencies), with their targets.
    pub fn from_metadata(meta: &serde_json::Value) -> Self {
        let mut members = Self::default();
        for package in meta["packages"].as_array().into_iter().flatten() {
            if !package["source"].is_null() {
                continue;
            }
            if let Some(name) = package["name"].as_str() {
                members.packages.insert(name.to_owned());
                members.crates.insert(name.replace('-', "_"));
            }
            for target in package["targets"].as_array().into_iter().flatten() {
                if let Some(name) = target["name"].as_str() {
                    members.crates.insert(name.replace('-', "_"));
                }
            }
        }
        members
    }
}

/// `name-0123abcd...` without its hash, or `None` for a name without one.
fn unit_name(file: &str) -> Option<&str> {
    let (name, hash) = file.rsplit_once('-')?;
    let hash = hash.split('.').next()?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// Brings what `from` (a build directory's `release/`) holds of dependencies outside the
/// workspace into `to`, where missing.
pub fn seed(from: &Path, to: &Path, members: &Members) -> anyhow::Result<Seeded> {
    let mut seeded = Seeded::default();
    if !from.is_dir() {
        return Ok(seeded);
    }
    for (dir, by_crate) in [("deps", true), (".fingerprint", false), ("build", false)] {
        let (src, dst) = (from.join(dir), to.join(dir));
        let Ok(entries) = std::fs::read_dir(&src) else { continue };
        std::fs::create_dir_all(&dst).with_context(|| format!("cannot create {}", dst.display()))?;
        for entry in entries {
            let entry = entry?;
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(name) = unit_name(file) else { continue };
            let own = if by_crate {
                members.crates.contains(name.strip_prefix("lib").unwrap_or(name)) || members.crates.contains(name)
            } else {
                members.packages.contains(name)
            };
            let target = dst.join(file);
            if own || target.symlink_metadata().is_ok() {
                continue;
            }
            let source = entry.path();
            let linkable = by_crate && !file.ends_with(".d") && entry.file_type()?.is_file();
            match linkable.then(|| std::fs::hard_link(&source, &target)) {
                Some(Ok(())) => seeded.linked += 1,
                // Another file system: a copy does as well.
                Some(Err(e)) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                    copy_tree(&source, &target)?;
                    seeded.copied += 1;
                }
                Some(Err(e)) => {
                    return Err(e).with_context(|| format!("cannot link {} to {}", source.display(), target.display()));
                }
                None => {
                    copy_tree(&source, &target)?;
                    seeded.copied += 1;
                }
            }
        }
    }
    Ok(seeded)
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
    fn only_dependencies_outside_the_workspace_are_brought_over() {
        let meta = serde_json::json!({"packages": [
            {"name": "blobs-server", "source": null, "targets": [{"name": "blobs-server"}, {"name": "api"}]},
            {"name": "ring", "source": "registry+https://github.com/rust-lang/crates.io-index", "targets": [{"name": "ring"}]},
        ]});
        let members = Members::from_metadata(&meta);
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let h = "0123456789abcdef";
        let files = [
            format!("deps/libring-{h}.rlib"),
            format!("deps/ring-{h}.d"),
            format!("deps/libblobs_server-{h}.rlib"),
            format!("deps/api-{h}"),
            format!(".fingerprint/ring-{h}/lib-ring"),
            format!(".fingerprint/blobs-server-{h}/lib-blobs_server"),
            format!("build/ring-{h}/out/x.o"),
            format!("build/blobs-server-{h}/output"),
        ];
        for f in &files {
            let path = from.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, f).unwrap();
        }
        let seeded = seed(from.path(), to.path(), &members).unwrap();
        assert_eq!(seeded, Seeded { linked: 1, copied: 3 });
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
            format!(".fingerprint/blobs-server-{h}"),
            format!("build/blobs-server-{h}"),
        ] {
            assert!(!to.path().join(own).exists());
        }
        // Again: nothing is missing any more.
        assert_eq!(seed(from.path(), to.path(), &members).unwrap(), Seeded::default());
    }
}
