//! What was benchmarked: the commit checked out in the repository.

use std::path::{Path, PathBuf};

use git2::{Repository, StatusOptions};

use contract::results::CommitInfo;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(
        "{0} is not inside a git repository; soledad-bench records the commit it benchmarks, so run it in a git checkout (or pass --repo DIR)"
    )]
    NotARepository(PathBuf),
    #[error("repository {path} has no commit checked out: {message}")]
    NoHead { path: PathBuf, message: String },
    #[error("cannot read repository {path}: {message}")]
    Git { path: PathBuf, message: String },
}

/// Describes HEAD of the repository that contains `dir`.
pub fn describe_head(dir: &Path) -> Result<CommitInfo, CommitError> {
    let repo = Repository::discover(dir).map_err(|_| CommitError::NotARepository(dir.to_owned()))?;
    let path = repo.workdir().unwrap_or(repo.path()).to_owned();
    let git = |e: git2::Error| CommitError::Git {
        path: path.clone(),
        message: e.message().to_owned(),
    };
    let head = repo.head().map_err(|e| CommitError::NoHead {
        path: path.clone(),
        message: e.message().to_owned(),
    })?;
    let commit = head.peel_to_commit().map_err(git)?;
    let branch = head
        .is_branch()
        .then(|| String::from_utf8_lossy(head.shorthand_bytes()).into_owned());

    let dirty = if repo.is_bare() {
        false
    } else {
        let mut opts = StatusOptions::new();
        opts.include_untracked(false).include_ignored(false);
        !repo.statuses(Some(&mut opts)).map_err(git)?.is_empty()
    };
    info(&repo, &commit, branch, dirty).map_err(git)
}

/// Describes any commit of the repository that contains `dir`, as it would be recorded had
/// it been checked out cleanly on `branch` (backfills and comparisons).
pub fn describe(dir: &Path, rev: &str, branch: Option<String>) -> Result<CommitInfo, CommitError> {
    let repo = Repository::discover(dir).map_err(|_| CommitError::NotARepository(dir.to_owned()))?;
    let path = repo.workdir().unwrap_or(repo.path()).to_owned();
    let git = |e: git2::Error| CommitError::Git {
        path: path.clone(),
        message: e.message().to_owned(),
    };
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| CommitError::Git {
            path: path.clone(),
            message: format!("{rev:?} is not a commit: {}", e.message()),
        })?;
    info(&repo, &commit, branch, false).map_err(git)
}

fn info(
    repo: &Repository,
    commit: &git2::Commit,
    branch: Option<String>,
    dirty: bool,
) -> Result<CommitInfo, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(commit.id())?;
    walk.simplify_first_parent()?;
    let depth = walk.count() as u64 - 1;
    let author = commit.author();
    Ok(CommitInfo {
        sha: commit.id().to_string(),
        parents: commit.parent_ids().map(|p| p.to_string()).collect(),
        subject: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
        author_name: String::from_utf8_lossy(author.name_bytes()).into_owned(),
        author_time: author.when().seconds(),
        commit_time: commit.time().seconds(),
        branch,
        dirty,
        depth,
    })
}
