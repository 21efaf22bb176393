//! Blob flags: the states of an incoming-box item.
//!
//! Upstream accepted exactly these four names and stored them as a JSON list beside the blob;
//! the same file format is kept so that data directories carry over.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    Pending,
    Processing,
    Processed,
    Failed,
}

impl Flag {
    pub const ALL: [Flag; 4] = [Flag::Pending, Flag::Processing, Flag::Processed, Flag::Failed];

    pub fn name(self) -> &'static str {
        match self {
            Flag::Pending => "PENDING",
            Flag::Processing => "PROCESSING",
            Flag::Processed => "PROCESSED",
            Flag::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.name() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of flags (upstream stored a list; order and duplicates never carried meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FlagSet(u8);

impl FlagSet {
    pub const EMPTY: FlagSet = FlagSet(0);

    pub fn of(flags: &[Flag]) -> Self {
        FlagSet(flags.iter().fold(0, |acc, f| acc | f.bit()))
    }

    pub fn contains(self, f: Flag) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, f: Flag) -> Self {
        FlagSet(self.0 | f.bit())
    }

    pub fn without(self, f: Flag) -> Self {
        FlagSet(self.0 & !f.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Flag::name).collect()
    }

    /// The JSON list stored in `<id>.flags`.
    pub fn to_json(self) -> String {
        serde_json::to_string(&self.names()).expect("a list of strings serializes")
    }

    /// Parses a JSON list of flag names. `Err` says what is wrong, for a 4xx response.
    pub fn from_json(raw: &[u8]) -> Result<Self, FlagsError> {
        let names: Vec<String> = serde_json::from_slice(raw).map_err(|e| FlagsError::Json(e.to_string()))?;
        Self::from_names(names.iter().map(String::as_str))
    }

    /// Parses flag names, rejecting unknown ones.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, FlagsError> {
        let mut set = FlagSet::EMPTY;
        for n in names {
            set = set.with(Flag::parse(n).ok_or_else(|| FlagsError::Unknown(n.to_owned()))?);
        }
        Ok(set)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FlagsError {
    #[error("flags must be a JSON list of strings: {0}")]
    Json(String),
    #[error("invalid flag: {0:?} (expected PENDING, PROCESSING, PROCESSED or FAILED)")]
    Unknown(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_names() {
        let set = FlagSet::from_json(br#"["PROCESSING","PENDING","PENDING"]"#).unwrap();
        assert_eq!(set.names(), ["PENDING", "PROCESSING"]);
        assert_eq!(FlagSet::from_json(set.to_json().as_bytes()).unwrap(), set);
        assert_eq!(
            FlagSet::from_json(br#"["pending"]"#),
            Err(FlagsError::Unknown("pending".into()))
        );
        assert!(matches!(FlagSet::from_json(b"{\"a\":1}"), Err(FlagsError::Json(_))));
        assert_eq!(FlagSet::from_json(b"[]").unwrap(), FlagSet::EMPTY);
    }
}
