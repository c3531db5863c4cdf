//! Range and If-Range (RFC 9110 sections 14.2 and 13.1.5).
//!
//! One range is answered with 206. Several ranges are answered with the whole
//! object as 200, which the RFC allows (a server may ignore Range); update
//! clients ask for one range at a time. A Range header that does not parse is
//! ignored the same way.

use std::time::SystemTime;

/// One byte range as the client wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// `first-last`, both inclusive.
    FromTo(u64, u64),
    /// `first-`
    From(u64),
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No Range header, or one the server ignores (syntax error, several
    /// ranges, a unit other than bytes): the answer is a full 200.
    Whole,
    Single(ByteRange),
}

/// What to send for a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// 200 with all `len` bytes.
    Whole,
    /// 206 with bytes `start..end` (end exclusive).
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl ByteRange {
    /// The first byte this range needs, if it is known without the length.
    pub(crate) fn known_start(self) -> Option<u64> {
        match self {
            ByteRange::FromTo(first, _) | ByteRange::From(first) => Some(first),
            ByteRange::Suffix(_) => None,
        }
    }

    /// The bytes `start..end` this range selects in `len` bytes, or `None`
    /// when it selects nothing (unsatisfiable).
    pub(crate) fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::FromTo(first, last) => {
                (first < len).then(|| (first, last.saturating_add(1).min(len)))
            }
            ByteRange::From(first) => (first < len).then_some((first, len)),
            ByteRange::Suffix(suffix) => {
                (suffix > 0 && len > 0).then(|| (len - suffix.min(len), len))
            }
        }
    }
}

impl RangeRequest {
    pub(crate) fn select(self, len: u64) -> Selection {
        match self {
            RangeRequest::Whole => Selection::Whole,
            RangeRequest::Single(range) => match range.resolve(len) {
                Some((start, end)) => Selection::Partial { start, end },
                None => Selection::Unsatisfiable,
            },
        }
    }
}

pub(crate) fn parse_range(value: &[u8]) -> RangeRequest {
    let Ok(text) = std::str::from_utf8(value) else {
        return RangeRequest::Whole;
    };
    let Some((unit, set)) = text.trim().split_once('=') else {
        return RangeRequest::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Whole;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeRequest::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (parse_number(first), parse_number(last)) {
        (Some(first), Some(last)) if first <= last => ByteRange::FromTo(first, last),
        (Some(first), None) if last.is_empty() => ByteRange::From(first),
        (None, Some(suffix)) if first.is_empty() => ByteRange::Suffix(suffix),
        _ => return RangeRequest::Whole,
    };
    RangeRequest::Single(range)
}

fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether an If-Range header lets the Range apply: an entity tag must match
/// the object's strongly (weak tags never match), a date must equal the
/// object's Last-Modified.
pub(crate) fn if_range_matches(
    value: &[u8],
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return match etag {
            Some(etag) => !value.starts_with("W/") && !etag.starts_with("W/") && value == etag,
            None => false,
        };
    }
    match (parse_date(value), last_modified.and_then(parse_date)) {
        (Some(asked), Some(actual)) => asked == actual,
        _ => false,
    }
}

fn parse_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &str) -> ByteRange {
        match parse_range(text.as_bytes()) {
            RangeRequest::Single(r) => r,
            RangeRequest::Whole => panic!("{text} ignored"),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(single("bytes=0-99"), ByteRange::FromTo(0, 99));
        assert_eq!(single("Bytes = 5 - "), ByteRange::From(5));
        assert_eq!(single("bytes=-10"), ByteRange::Suffix(10));
        assert_eq!(single("bytes=3-3, "), ByteRange::FromTo(3, 3));
    }

    #[test]
    fn ignored_forms() {
        for text in [
            "bytes=5-3",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=99999999999999999999999-",
            "bytes=",
        ] {
            assert_eq!(parse_range(text.as_bytes()), RangeRequest::Whole, "{text}");
        }
    }

    #[test]
    fn resolution() {
        assert_eq!(ByteRange::FromTo(0, 99).resolve(50), Some((0, 50)));
        assert_eq!(ByteRange::FromTo(50, 99).resolve(50), None);
        assert_eq!(ByteRange::From(49).resolve(50), Some((49, 50)));
        assert_eq!(ByteRange::Suffix(10).resolve(50), Some((40, 50)));
        assert_eq!(ByteRange::Suffix(100).resolve(50), Some((0, 50)));
        assert_eq!(ByteRange::Suffix(0).resolve(50), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
        assert_eq!(ByteRange::FromTo(0, u64::MAX).resolve(7), Some((0, 7)));
    }

    #[test]
    fn if_range() {
        let lm = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert!(if_range_matches(b"\"abc\"", Some("\"abc\""), None));
        assert!(!if_range_matches(b"\"abd\"", Some("\"abc\""), None));
        assert!(!if_range_matches(b"W/\"abc\"", Some("W/\"abc\""), None));
        assert!(!if_range_matches(b"\"abc\"", None, Some(lm)));
        assert!(if_range_matches(lm.as_bytes(), Some("\"x\""), Some(lm)));
        assert!(if_range_matches(
            b"Wednesday, 21-Oct-15 07:28:00 GMT",
            None,
            Some(lm)
        ));
        assert!(!if_range_matches(
            b"Wed, 21 Oct 2015 07:28:01 GMT",
            None,
            Some(lm)
        ));
        assert!(!if_range_matches(b"yesterday", None, Some(lm)));
    }
}
