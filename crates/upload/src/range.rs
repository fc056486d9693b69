//! The part of a file a GET asks for (RFC 9110 §14): one byte range of a `Range: bytes=…`
//! header, worked out against the file's recorded size. Whichever store holds the bytes,
//! the HTTP listener answers 206 with that part, 416 when nothing of the file is asked for,
//! and the whole file (200) for anything it does not serve: several ranges, another unit,
//! a header it cannot read (§14.2 lets a server ignore `Range`).

use std::ops::Range;

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// The whole file (no header, or one that is ignored).
    Whole,
    /// These bytes (never empty, within the file).
    Part(Range<u64>),
    /// A range that starts past the end (§15.5.17: 416).
    Unsatisfiable,
}

/// Reads `header` (a `Range` value) for a file of `size` bytes.
pub fn requested(header: Option<&str>, size: u64) -> Requested {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Requested::Whole;
    };
    if spec.contains(',') {
        // Several ranges: a multipart/byteranges answer is not worth its cost here.
        return Requested::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Requested::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // `-N`: the last N bytes.
        return match number(last) {
            None => Requested::Whole,
            Some(0) => Requested::Unsatisfiable,
            Some(_) if size == 0 => Requested::Unsatisfiable,
            Some(n) => Requested::Part(size.saturating_sub(n)..size),
        };
    }
    let Some(start) = number(first) else {
        return Requested::Whole;
    };
    let end = if last.is_empty() {
        size
    } else {
        match number(last) {
            // `first-last` with last before first is not a valid range: ignored (§14.1.1).
            Some(l) if l >= start => l.saturating_add(1).min(size),
            _ => return Requested::Whole,
        }
    };
    if start >= size {
        return Requested::Unsatisfiable;
    }
    Requested::Part(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9110 §14.1.2's forms, on a 100-byte file.
    #[test]
    fn rfc9110_14_1_2_byte_ranges() {
        let r = |h: &str| requested(Some(h), 100);
        assert_eq!(r("bytes=0-9"), Requested::Part(0..10));
        assert_eq!(r("bytes=10-19"), Requested::Part(10..20));
        assert_eq!(r("bytes=90-"), Requested::Part(90..100));
        assert_eq!(r("bytes=-5"), Requested::Part(95..100));
        assert_eq!(r("bytes=-500"), Requested::Part(0..100));
        assert_eq!(r("bytes=50-5000"), Requested::Part(50..100));
        assert_eq!(r("bytes=99-99"), Requested::Part(99..100));
    }

    /// §15.5.17: a range that starts at or past the end is unsatisfiable; so is `-0`.
    #[test]
    fn rfc9110_15_5_17_unsatisfiable_ranges() {
        assert_eq!(requested(Some("bytes=100-"), 100), Requested::Unsatisfiable);
        assert_eq!(
            requested(Some("bytes=200-300"), 100),
            Requested::Unsatisfiable
        );
        assert_eq!(requested(Some("bytes=-0"), 100), Requested::Unsatisfiable);
        assert_eq!(requested(Some("bytes=0-"), 0), Requested::Unsatisfiable);
        assert_eq!(requested(Some("bytes=-3"), 0), Requested::Unsatisfiable);
    }

    /// What is not served as a range is served whole: no header, other units, several
    /// ranges, nonsense.
    #[test]
    fn other_headers_get_the_whole_file() {
        for h in [
            None,
            Some("items=0-1"),
            Some("bytes=0-1,5-6"),
            Some("bytes=5-1"),
            Some("bytes=a-b"),
            Some("bytes=-"),
            Some("bytes=+1-2"),
            Some("bytes=99999999999999999999999-"),
        ] {
            assert_eq!(requested(h, 100), Requested::Whole, "{h:?}");
        }
    }
}
