//! What a commit did to a series, or a build to another in a comparison.

use serde::{Deserialize, Serialize};

/// Ordered by how much attention it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Regression,
    Improvement,
    /// The data cannot tell: a change large enough to matter is neither shown nor ruled out.
    Noisy,
    /// A series without a baseline.
    New,
    /// A change large enough to matter is ruled out.
    Unchanged,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Regression,
        Verdict::Improvement,
        Verdict::Noisy,
        Verdict::New,
        Verdict::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::Improvement => "improvement",
            Self::Noisy => "noisy",
            Self::New => "new",
            Self::Unchanged => "unchanged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// A change either way.
    pub fn is_change(self) -> bool {
        matches!(self, Self::Regression | Self::Improvement)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert_eq!(Verdict::parse("incomparable"), None);
    }
}
