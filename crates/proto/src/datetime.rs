//! Calendar arithmetic for XEP-0082 timestamps, without a clock: callers pass the time in.

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// A XEP-0082 DateTime in UTC with millisecond precision, e.g. `2026-11-22T09:42:11.250Z`.
pub fn xep0082(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads a XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss]TZD`, TZD `Z` or `±hh:mm`) as unix
/// milliseconds; None for anything else. Fractions past milliseconds are cut, not rounded.
pub fn parse_xep0082(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in_month || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 60 + om;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    // `mo` and `d` were checked above, so the narrowing is exact.
    let days = days_from_civil(y, mo as u8, d as u8);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// XEP-0202 §3: the entity's time, `<time><tzo/><utc/></time>`; a server keeps UTC, so
/// its offset is `Z`'s `+00:00`.
pub fn entity_time(unix_ms: i64) -> parley_xml::Element {
    use parley_xml::Element;
    Element::new("time", crate::ns::TIME)
        .with_child(Element::new("tzo", crate::ns::TIME).with_text("+00:00"))
        .with_child(Element::new("utc", crate::ns::TIME).with_text(xep0082(unix_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn xep0082_parses_what_it_formats_and_offsets() {
        for ms in [0, 1_795_340_531_250, 951_782_400_000, -86_400_000] {
            assert_eq!(parse_xep0082(&xep0082(ms)), Some(ms), "{ms}");
        }
        // XEP-0082 §3.2: the examples, with and without fractions and offsets.
        assert_eq!(parse_xep0082("1969-07-21T02:56:15Z"), Some(-14_159_025_000));
        assert_eq!(
            parse_xep0082("1969-07-20T21:56:15-05:00"),
            Some(-14_159_025_000)
        );
        assert_eq!(
            parse_xep0082("2026-11-22T09:42:11.25Z"),
            Some(1_795_340_531_250)
        );
        assert_eq!(
            parse_xep0082("2026-11-22T09:42:11.250999Z"),
            Some(1_795_340_531_250)
        );
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T09:42:11",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T09:42:11.Z",
            "2026-11-22T09:42:11+0100",
            "2026-11-22T09:42:11Zjunk",
            "２０２６-11-22T09:42:11Z",
        ] {
            assert_eq!(parse_xep0082(bad), None, "{bad}");
        }
    }

    #[test]
    fn xep0082_datetime_profile() {
        assert_eq!(xep0082(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(xep0082(1_795_340_531_250), "2026-11-22T09:42:11.250Z");
    }
}
