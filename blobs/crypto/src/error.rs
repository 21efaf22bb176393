use thiserror::Error;

/// Why a blob could not be encrypted, parsed or verified.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("blob has no preamble separator (a space within the first {max} bytes)")]
    MissingSeparator { max: usize },
    #[error("preamble is not valid base64url")]
    BadBase64,
    #[error("preamble is {0} bytes; expected 552 (or 542 for the legacy layout)")]
    BadPreambleLength(usize),
    #[error("preamble magic is {0:02x?}; expected [13, 37]")]
    BadMagic([u8; 2]),
    #[error("unknown encryption scheme {0}")]
    UnknownScheme(i8),
    #[error("unknown encryption method {0}")]
    UnknownMethod(i8),
    #[error("blob claims scheme {found:?}; only {expected:?} is accepted here")]
    SchemeNotAllowed {
        found: crate::Scheme,
        expected: crate::Scheme,
    },
    #[error("blob uses method {0:?}; format v1 needs aes_256_gcm")]
    UnsupportedMethod(crate::Method),
    #[error("blob revision is {0:?}; expected \"ImmutableRevision\"")]
    BadRevision(String),
    #[error("blob is labelled {found:?} but was requested as {expected:?}")]
    IdMismatch { expected: String, found: String },
    #[error("{field} is {len} bytes; the preamble holds at most 254")]
    FieldTooLong { field: &'static str, len: usize },
    #[error("blob ends before its authentication tag")]
    Truncated,
    #[error("authentication failed: the blob was modified, truncated or encrypted with another key")]
    Authentication,
    #[error("preamble says the content rounds to {claimed} bytes but it is {actual} bytes")]
    SizeMismatch { claimed: u64, actual: u64 },
    #[error("the Tag header does not match the blob's own tag")]
    TagHeaderMismatch,
    #[error("secret is {0} bytes; it must be longer than 64 bytes")]
    SecretTooShort(usize),
    #[error("plaintext of {0} bytes is too large to encrypt")]
    TooLarge(u64),
}
