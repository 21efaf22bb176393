//! The token file: which user may use which token.
//!
//! One `user:token` pair per line; blank lines and lines starting with `#` are ignored. A user
//! may have several tokens. Only SHA-256 digests are kept in memory, and they are compared in
//! constant time, so neither a memory dump nor response timing gives a token away.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::is_valid_name;

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {problem}")]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// Digests of the accepted tokens, per user.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    by_user: HashMap<String, Vec<[u8; 32]>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, problem)| TokenFileError::Malformed {
            path: path.to_owned(),
            line,
            problem,
        })
    }

    /// Parses the file's text; errors carry the 1-based line number.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut tokens = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, token)) = line.split_once(':') else {
                return Err((i + 1, "expected `user:token`".into()));
            };
            if !is_valid_name(user) {
                return Err((i + 1, format!("user {user:?} is not 1-200 characters of [A-Za-z0-9_-]")));
            }
            if token.is_empty() || token.chars().any(char::is_whitespace) {
                return Err((i + 1, "token must be non-empty and without spaces".into()));
            }
            tokens.insert(user, token);
        }
        Ok(tokens)
    }

    pub fn insert(&mut self, user: &str, token: &str) {
        self.by_user.entry(user.to_owned()).or_default().push(digest(token));
    }

    /// True if `token` is one of `user`'s tokens.
    pub fn verify(&self, user: &str, token: &str) -> bool {
        let presented = digest(token);
        // An unknown user is checked against a dummy digest so that it costs the same time.
        let entry = self.by_user.get(user);
        let known = entry.map(Vec::as_slice).unwrap_or(&[[0u8; 32]]);
        let mut ok = subtle::Choice::from(0);
        for d in known {
            ok |= d.ct_eq(&presented);
        }
        bool::from(ok) && entry.is_some()
    }

    /// True if `user` has at least one token (is a user of this server).
    pub fn contains(&self, user: &str) -> bool {
        self.by_user.contains_key(user)
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_blank_lines_and_several_tokens() {
        let t = Tokens::parse("# users\n\nalice:t1\nalice:t2\nbob:secret\n").unwrap();
        assert!(t.verify("alice", "t1") && t.verify("alice", "t2") && t.verify("bob", "secret"));
        assert!(!t.verify("alice", "secret") && !t.verify("carol", "t1") && !t.verify("bob", ""));
    }

    #[test]
    fn reports_the_line_of_each_mistake() {
        assert_eq!(Tokens::parse("a:b\nnocolon\n").unwrap_err().0, 2);
        assert_eq!(Tokens::parse("../x:tok").unwrap_err().0, 1);
        assert_eq!(Tokens::parse("#c\nu:\n").unwrap_err().0, 2);
        assert_eq!(Tokens::parse("u:a b").unwrap_err().0, 1);
    }
}
