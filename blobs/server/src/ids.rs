//! Which names may reach the filesystem.
//!
//! Users, namespaces and blob ids become path components, so they are checked here and only
//! here: 1 to [`MAX_NAME_LEN`] characters of `[A-Za-z0-9_-]`, the whole string (upstream's
//! Python regex also let a trailing newline through, spec bug 4).

/// Longest accepted name. Side files append up to 8 bytes (`.deleted`) and the
/// preamble holds ids of at most 254 bytes, so 200 leaves room under the 255-byte limit of
/// common filesystems.
pub const MAX_NAME_LEN: usize = 200;

/// True if `s` may be used as a user, namespace or blob id.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The default namespace, used when a request names none.
pub const DEFAULT_NAMESPACE: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Every accepted name is exactly one plain path component: nothing that joins it to a
        // directory can climb out, add a level or name a side file.
        #[test]
        fn accepted_names_are_single_plain_components(s in "\\PC{0,8}|[A-Za-z0-9_.\\-/\n]{0,12}") {
            if is_valid_name(&s) {
                let parts: Vec<_> = std::path::Path::new(&s).components().collect();
                prop_assert_eq!(parts.len(), 1);
                prop_assert!(matches!(parts[0], std::path::Component::Normal(p) if p == s.as_str()));
                prop_assert!(!s.contains(['.', '/', '\n', '\0', '\\']));
            }
        }

        #[test]
        fn the_charset_is_accepted_whole(s in "[A-Za-z0-9_-]{1,200}") {
            prop_assert!(is_valid_name(&s));
        }

        #[test]
        fn one_foreign_character_anywhere_is_rejected(
            s in "[A-Za-z0-9_-]{0,50}",
            at in 0usize..51,
            c in any::<char>().prop_filter("outside the charset", |c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')),
        ) {
            let mut bad = s.clone();
            bad.insert(at.min(s.len()), c);
            prop_assert!(!is_valid_name(&bad));
        }
    }

    #[test]
    fn accepts_the_charset_and_nothing_else() {
        for ok in ["a", "blob_id", "A-Z_09", &"x".repeat(MAX_NAME_LEN)] {
            assert!(is_valid_name(ok), "{ok:?}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "..", ".", "a/b", "a\n", "a b", "é", "a.flags", &long, "a\0", "%2e"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
