//! The `Range` request header (RFC 7233 byte ranges) for downloads.
//!
//! Hand-written because it is a dozen lines of grammar and the answer must be exact for the
//! cases upstream got wrong: the end is inclusive, `a-` and `-n` are allowed, and a range past
//! the end is clamped or unsatisfiable, never a hang (spec bugs 6 and 7).

/// What to send for a request with a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Ignore the header and send the whole blob (200): other units, or several ranges.
    Full,
    /// Send bytes `start..=end` (206).
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`: syntactically wrong or not satisfiable.
    Unsatisfiable,
}

/// Decides how to answer `Range: value` for a blob of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> RangeAnswer {
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return RangeAnswer::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        // RFC 7233 3.1: a range unit the server does not understand is ignored.
        return if unit.trim().is_empty() || !unit.trim().bytes().all(is_tchar) {
            RangeAnswer::Unsatisfiable
        } else {
            RangeAnswer::Full
        };
    }
    let spec = spec.trim();
    if spec.contains(',') {
        // Several ranges would need multipart/byteranges; RFC 7233 lets a server ignore
        // the header instead, so valid multi-range requests get the whole blob.
        return if spec.split(',').all(|r| parse_one(r.trim()).is_some()) {
            RangeAnswer::Full
        } else {
            RangeAnswer::Unsatisfiable
        };
    }
    let Some(one) = parse_one(spec) else {
        return RangeAnswer::Unsatisfiable;
    };
    match one {
        Spec::From { start, end } => {
            if start >= size {
                return RangeAnswer::Unsatisfiable;
            }
            let end = end.map_or(size - 1, |e| e.min(size - 1));
            RangeAnswer::Partial { start, end }
        }
        Spec::Suffix(n) => {
            if n == 0 || size == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            }
        }
    }
}

enum Spec {
    From { start: u64, end: Option<u64> },
    Suffix(u64),
}

fn parse_one(spec: &str) -> Option<Spec> {
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return Some(Spec::Suffix(digits(b)?));
    }
    let start = digits(a)?;
    let end = if b.is_empty() { None } else { Some(digits(b)?) };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some(Spec::From { start, end })
}

/// A non-empty run of ASCII digits that fits in u64 (no signs, no spaces).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_rfc_7233() {
        assert_eq!(parse_range("bytes=10-20", 100), Partial { start: 10, end: 20 });
        assert_eq!(parse_range("bytes=10-", 100), Partial { start: 10, end: 99 });
        assert_eq!(parse_range("bytes=-5", 100), Partial { start: 95, end: 99 });
        assert_eq!(parse_range("bytes=-500", 100), Partial { start: 0, end: 99 });
        assert_eq!(parse_range("bytes=90-500", 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range("BYTES = 0-0", 100), Partial { start: 0, end: 0 });
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
        for bad in [
            "bytes",
            "bytes=",
            "bytes=1",
            "bytes=blah-100",
            "bytes=5-1",
            "bytes=-",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=0x1-2",
            "=1-2",
            "bytes=99999999999999999999-",
            "bytes=1-2,x",
        ] {
            assert_eq!(parse_range(bad, 100), Unsatisfiable, "{bad}");
        }
        assert_eq!(parse_range("items=0-5", 100), Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full);
    }

    proptest! {
        // Whatever the header, the answer is a valid range of the blob or a refusal.
        #[test]
        fn any_header_gives_a_range_inside_the_blob(value in ".{0,40}", size in 0u64..10_000) {
            if let Partial { start, end } = parse_range(&value, size) {
                prop_assert!(start <= end && end < size);
            }
        }

        #[test]
        fn well_formed_ranges_are_exact(a in 0u64..5000, len in 0u64..5000, size in 1u64..10_000) {
            let b = a + len;
            let got = parse_range(&format!("bytes={a}-{b}"), size);
            if a >= size {
                prop_assert_eq!(got, Unsatisfiable);
            } else {
                prop_assert_eq!(got, Partial { start: a, end: b.min(size - 1) });
            }
        }

        #[test]
        fn suffix_ranges_are_exact(n in 1u64..20_000, size in 1u64..10_000) {
            prop_assert_eq!(
                parse_range(&format!("bytes=-{n}"), size),
                Partial { start: size.saturating_sub(n), end: size - 1 }
            );
        }
    }
}
