//! The commit graph as stored: series follow a branch's first-parent chain, not the clock nor
//! the order runs were stored in.
//!
//! The chain of a commit is found by following stored first parents. Commits reached through
//! a merge's second parent are not on it: a merged feature branch's commits do not interleave
//! with the branch's own. When a first parent was never benchmarked (CI skipped it), the walk
//! continues at the deepest commit above which runs on the same branch were made, by
//! first-parent depth: the harness records that depth, so the order holds across gaps and
//! whatever order runs were stored in.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use crate::CollectorError;

#[derive(Debug, Clone)]
struct Node {
    depth: i64,
    commit_time: i64,
    first_parent: Option<String>,
}

pub(crate) struct CommitGraph {
    nodes: HashMap<String, Node>,
    /// Commits with history runs on each branch, deepest first.
    by_branch: HashMap<String, Vec<String>>,
}

impl CommitGraph {
    pub(crate) fn load(conn: &Connection) -> Result<Self, CollectorError> {
        let mut nodes = HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT c.sha, c.depth, c.commit_time, p.parent
             FROM commits c LEFT JOIN commit_parents p ON p.sha = c.sha AND p.position = 0",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Node {
                    depth: r.get(1)?,
                    commit_time: r.get(2)?,
                    first_parent: r.get(3)?,
                },
            ))
        })?;
        for row in rows {
            let (sha, node) = row?;
            nodes.insert(sha, node);
        }
        let mut by_branch: HashMap<String, Vec<String>> = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT DISTINCT branch, commit_sha FROM runs WHERE purpose = 'history' AND branch IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (branch, sha) = row?;
            by_branch.entry(branch).or_default().push(sha);
        }
        let order = |a: &String, b: &String| {
            let (na, nb) = (&nodes[a], &nodes[b]);
            (nb.depth, nb.commit_time, b).cmp(&(na.depth, na.commit_time, a))
        };
        for list in by_branch.values_mut() {
            list.sort_by(order);
        }
        Ok(Self { nodes, by_branch })
    }

    pub(crate) fn depth(&self, sha: &str) -> Option<i64> {
        self.nodes.get(sha).map(|n| n.depth)
    }

    /// The deepest commit with history runs on `branch`: where its chain starts.
    pub(crate) fn tip(&self, branch: &str) -> Option<&str> {
        self.by_branch.get(branch).and_then(|l| l.first()).map(String::as_str)
    }

    /// The first-parent chain from `from` back to the root, newest first, through stored
    /// commits. `branch` is where to continue when a first parent was never stored.
    pub(crate) fn chain(&self, from: &str, branch: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut current = self.nodes.contains_key(from).then(|| from.to_owned());
        while let Some(sha) = current {
            if !seen.insert(sha.clone()) {
                break;
            }
            let node = &self.nodes[&sha];
            current = match &node.first_parent {
                Some(p) if self.nodes.contains_key(p) => Some(p.clone()),
                _ => branch.and_then(|b| {
                    self.by_branch
                        .get(b)
                        .and_then(|list| list.iter().find(|c| self.nodes[*c].depth < node.depth).cloned())
                }),
            };
            out.push(sha);
        }
        out
    }
}
