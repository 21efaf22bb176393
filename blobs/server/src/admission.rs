//! The admission rule every storage backend applies to a write, so that the fs and S3
//! backends can never disagree on what they accept: the size cap, the write mode against the
//! blob already there (checked when the upload starts and again when it is published, since
//! another upload may have won meanwhile), and the bytes an incoming delivery adds for its
//! preamble.

use crate::storage::{StorageError, WriteMode};

/// Refuses a declared length over the size cap, before anything is looked up or reserved.
pub fn declared(declared: Option<u64>, max: u64) -> Result<(), StorageError> {
    match declared {
        Some(n) if n > max => Err(StorageError::TooLarge { max }),
        _ => Ok(()),
    }
}

/// Refuses a body that has grown over the size cap.
pub fn received(size: u64, max: u64) -> Result<(), StorageError> {
    if size > max {
        Err(StorageError::TooLarge { max })
    } else {
        Ok(())
    }
}

/// What an admitted write may count on when it reserves quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Bytes of the blob it replaces, which its own bytes take over in the quota.
    pub credit: u64,
    /// Bytes stored beyond the body: an incoming delivery's preamble and its newline.
    pub overhead: u64,
}

/// Admits a write of blob `id` in `mode` when the blob there now has `existing` bytes (or
/// there is none): a create or a delivery never overwrites.
pub fn start(id: &str, mode: &WriteMode, existing: Option<u64>) -> Result<Admitted, StorageError> {
    let credit = match (mode, existing) {
        (WriteMode::Create | WriteMode::Incoming, Some(_)) => return Err(StorageError::Exists(id.to_owned())),
        (WriteMode::Replace { .. }, Some(size)) => size,
        _ => 0,
    };
    let overhead = if *mode == WriteMode::Incoming {
        blobs_crypto::PREAMBLE_B64_LEN as u64 + 1
    } else {
        0
    };
    Ok(Admitted { credit, overhead })
}

/// Whether a finished upload may become blob `id`, now that the blob there has the ETag
/// `current` (or there is none): a create or a delivery still finds no blob, and a replace
/// with `If-Match` still finds the blob it named (`*` matches any, even none).
pub fn publish(id: &str, mode: &WriteMode, current: Option<&str>) -> Result<(), StorageError> {
    match (mode, current) {
        (WriteMode::Create | WriteMode::Incoming, Some(_)) => Err(StorageError::Exists(id.to_owned())),
        (WriteMode::Replace { if_match: Some(want) }, current) if current != Some(want.as_str()) && want != "*" => {
            Err(StorageError::PreconditionFailed(want.clone()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(if_match: Option<&str>) -> WriteMode {
        WriteMode::Replace {
            if_match: if_match.map(str::to_owned),
        }
    }

    fn name(r: Result<impl std::fmt::Debug, StorageError>) -> String {
        match r {
            Ok(v) => format!("ok {v:?}"),
            Err(StorageError::Exists(_)) => "exists".into(),
            Err(StorageError::PreconditionFailed(_)) => "precondition".into(),
            Err(StorageError::TooLarge { .. }) => "too large".into(),
            Err(e) => format!("other {e}"),
        }
    }

    #[test]
    fn sizes_are_capped_when_declared_and_when_received() {
        assert_eq!(name(declared(None, 10)), "ok ()");
        assert_eq!(name(declared(Some(10), 10)), "ok ()");
        assert_eq!(name(declared(Some(11), 10)), "too large");
        assert_eq!(name(received(10, 10)), "ok ()");
        assert_eq!(name(received(11, 10)), "too large");
    }

    #[test]
    fn the_mode_decides_against_the_blob_there() {
        let overhead = blobs_crypto::PREAMBLE_B64_LEN as u64 + 1;
        let cases: [(WriteMode, Option<u64>, &str); 7] = [
            (WriteMode::Create, None, "ok Admitted { credit: 0, overhead: 0 }"),
            (WriteMode::Create, Some(5), "exists"),
            (WriteMode::Incoming, Some(5), "exists"),
            (replace(None), None, "ok Admitted { credit: 0, overhead: 0 }"),
            (replace(None), Some(5), "ok Admitted { credit: 5, overhead: 0 }"),
            (
                replace(Some("\"x\"")),
                Some(7),
                "ok Admitted { credit: 7, overhead: 0 }",
            ),
            (
                WriteMode::Incoming,
                None,
                &format!("ok Admitted {{ credit: 0, overhead: {overhead} }}"),
            ),
        ];
        for (mode, existing, want) in cases {
            assert_eq!(name(start("b1", &mode, existing)), want, "{mode:?} over {existing:?}");
        }
    }

    #[test]
    fn publishing_checks_again_what_may_have_changed() {
        let cases = [
            (WriteMode::Create, None, "ok ()"),
            (WriteMode::Create, Some("\"a\""), "exists"),
            (WriteMode::Incoming, Some("\"a\""), "exists"),
            (replace(None), Some("\"a\""), "ok ()"),
            (replace(Some("\"a\"")), Some("\"a\""), "ok ()"),
            (replace(Some("\"a\"")), Some("\"b\""), "precondition"),
            (replace(Some("\"a\"")), None, "precondition"),
            (replace(Some("*")), None, "ok ()"),
            (replace(Some("*")), Some("\"b\""), "ok ()"),
        ];
        for (mode, current, want) in cases {
            assert_eq!(name(publish("b1", &mode, current)), want, "{mode:?} over {current:?}");
        }
    }
}
