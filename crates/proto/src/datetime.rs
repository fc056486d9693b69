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
    fn xep0082_datetime_profile() {
        assert_eq!(xep0082(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(xep0082(1_795_340_531_250), "2026-11-22T09:42:11.250Z");
    }
}
