//! The targets of the report: bounds on a ratio ("Parley ÷ Prosody ≤ 1/10") or on a value
//! ("≤ 12 KiB"), their met / not-met verdicts, and the "Parley against …" tables built
//! from them. Pure formatting, so that what the report claims is unit-tested.

use std::fmt::Write as _;

/// A target on a figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bound {
    /// At most one n-th (of the reference): a ratio target.
    OneIn(u32),
    /// At most this value.
    AtMost(f64),
    /// At least this value.
    AtLeast(f64),
    /// No target: the figure is shown for information.
    None,
}

impl Bound {
    /// How the target column shows it.
    pub(crate) fn label(self) -> String {
        match self {
            Bound::OneIn(n) => format!("≤ 1/{n}"),
            Bound::AtMost(x) => format!("≤ {}", number(x)),
            Bound::AtLeast(x) => format!("≥ {}", number(x)),
            Bound::None => "(none)".into(),
        }
    }

    /// Whether `value` meets the target; None when there is no target or no value.
    pub(crate) fn met(self, value: Option<f64>) -> Option<bool> {
        let v = value.filter(|v| v.is_finite())?;
        match self {
            Bound::OneIn(n) => Some(v <= 1.0 / f64::from(n)),
            Bound::AtMost(x) => Some(v <= x),
            Bound::AtLeast(x) => Some(v >= x),
            Bound::None => None,
        }
    }
}

/// A bound's number without trailing zeros ("16", "0.25").
fn number(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `a ÷ b` when both are finite and `b` is above zero.
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// A ratio as the tables show it: below 1 also as "1/n", the form the targets take.
pub(crate) fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() && r > 0.0 && r < 1.0 => format!("{r:.3} (1/{:.1})", 1.0 / r),
        Some(r) if r.is_finite() => format!("{r:.2}"),
        _ => "–".into(),
    }
}

/// The met column: a miss stands out.
pub(crate) fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    }
}

/// A value with `digits` decimals, "–" for none.
pub(crate) fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

/// One row of a "Parley against …" table: the figure of each side, and the target on
/// Parley ÷ reference.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Versus {
    pub label: String,
    pub parley: Option<f64>,
    pub reference: Option<f64>,
    /// Decimals of the two figures.
    pub digits: usize,
    pub bound: Bound,
}

/// The table: figure, Parley, the reference, the ratio, the target, met.
pub(crate) fn versus_table(out: &mut String, reference: &str, rows: &[Versus]) {
    let _ = writeln!(
        out,
        "| figure | Parley | {reference} | Parley ÷ {reference} | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in rows {
        let q = ratio(r.parley, r.reference);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.label,
            fmt_opt(r.parley, r.digits),
            fmt_opt(r.reference, r.digits),
            fmt_ratio(q),
            r.bound.label(),
            verdict(r.bound.met(q)),
        );
    }
    let _ = writeln!(out);
}

/// One row of the absolute targets: the value as text, and whether it met the target
/// (computed by the caller when it takes more than the bound, e.g. nothing lost).
pub(crate) fn absolute_row(
    out: &mut String,
    label: &str,
    value: &str,
    bound: Bound,
    met: Option<bool>,
) {
    let _ = writeln!(
        out,
        "| {label} | {value} | {} | {} |",
        bound.label(),
        verdict(met)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_label_and_judge() {
        assert_eq!(Bound::OneIn(10).label(), "≤ 1/10");
        assert_eq!(Bound::AtMost(16.0).label(), "≤ 16");
        assert_eq!(Bound::AtMost(0.25).label(), "≤ 0.25");
        assert_eq!(Bound::AtLeast(5.0).label(), "≥ 5");
        assert_eq!(Bound::None.label(), "(none)");
        assert_eq!(Bound::OneIn(10).met(Some(0.1)), Some(true));
        assert_eq!(Bound::OneIn(10).met(Some(0.11)), Some(false));
        assert_eq!(Bound::OneIn(20).met(Some(0.06)), Some(false));
        assert_eq!(Bound::AtMost(12.0).met(Some(11.9)), Some(true));
        assert_eq!(Bound::AtLeast(2.0).met(Some(1.62)), Some(false));
        assert_eq!(Bound::None.met(Some(0.01)), None);
        assert_eq!(Bound::OneIn(10).met(None), None);
        assert_eq!(Bound::OneIn(10).met(Some(f64::NAN)), None);
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(4.0)), None);
        assert_eq!(ratio(Some(f64::INFINITY), Some(4.0)), None);
        assert_eq!(fmt_ratio(Some(0.05)), "0.050 (1/20.0)");
        assert_eq!(fmt_ratio(Some(2.5)), "2.50");
        assert_eq!(fmt_ratio(None), "–");
    }

    #[test]
    fn versus_rows_show_both_figures_the_ratio_and_the_verdict() {
        let mut out = String::new();
        versus_table(
            &mut out,
            "Prosody",
            &[
                Versus {
                    label: "chat at 1000 msg/s: server CPU per stanza (µs)".into(),
                    parley: Some(5.0),
                    reference: Some(100.0),
                    digits: 1,
                    bound: Bound::OneIn(10),
                },
                Versus {
                    label: "login: server CPU per login (ms)".into(),
                    parley: Some(0.5),
                    reference: Some(3.0),
                    digits: 2,
                    bound: Bound::OneIn(15),
                },
                Versus {
                    label: "x".into(),
                    parley: None,
                    reference: Some(3.0),
                    digits: 2,
                    bound: Bound::None,
                },
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "| figure | Parley | Prosody | Parley ÷ Prosody | target | met |"
        );
        assert_eq!(
            lines[2],
            "| chat at 1000 msg/s: server CPU per stanza (µs) | 5.0 | 100.0 | 0.050 (1/20.0) | ≤ 1/10 | yes |"
        );
        assert_eq!(
            lines[3],
            "| login: server CPU per login (ms) | 0.50 | 3.00 | 0.167 (1/6.0) | ≤ 1/15 | **no** |"
        );
        assert_eq!(lines[4], "| x | – | 3.00 | – | (none) | – |");
    }

    #[test]
    fn absolute_rows() {
        let mut out = String::new();
        absolute_row(
            &mut out,
            "RSS (KiB)",
            "11.0",
            Bound::AtMost(12.0),
            Some(true),
        );
        assert_eq!(out, "| RSS (KiB) | 11.0 | ≤ 12 | yes |\n");
    }
}
