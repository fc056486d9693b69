//! Minimal SVG line charts for docs/benchmarks.md: one chart, several named series.

use std::fmt::Write;

/// A named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, axis labels and series.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The data.
    pub series: Vec<Series>,
    /// A logarithmic y axis (decades), for series that differ by orders of magnitude.
    pub log_y: bool,
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A "nice" upper bound and tick step for an axis whose data reaches `max`.
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_tick(v: f64) -> String {
    if v >= 1000.0 && v % 1000.0 == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        // Short forms for sub-unit ticks: 0.1, 0.25, 0.01.
        format!("{}", (v * 1e6).round() / 1e6)
    }
}

impl Chart {
    /// Renders the chart as a standalone SVG document.
    pub fn render(&self) -> String {
        let xmax = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.0, f64::max);
        let ymax = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let ymin_pos = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|y| *y > 0.0)
            .fold(f64::INFINITY, f64::min);
        let (xtop, xstep) = nice_axis(xmax);
        let (ytop, ystep) = nice_axis(ymax);
        // Log axis: whole decades around the data.
        let (dlo, dhi) = if ymin_pos.is_finite() {
            (
                ymin_pos.log10().floor(),
                ymax.log10().ceil().max(ymin_pos.log10().floor() + 1.0),
            )
        } else {
            (0.0, 1.0)
        };
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + x / xtop * pw;
        let log_y = self.log_y;
        let sy = move |y: f64| {
            if log_y {
                let l = y.max(10f64.powf(dlo)).log10();
                TOP + ph - (l - dlo) / (dhi - dlo) * ph
            } else {
                TOP + ph - y / ytop * ph
            }
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' viewBox='0 0 {W} {H}' font-family='sans-serif' font-size='12'>\
             <rect width='100%' height='100%' fill='white'/>\
             <text x='{}' y='22' text-anchor='middle' font-size='15'>{}</text>",
            W / 2.0,
            parley_xml::escape::text(&self.title)
        );
        // Grid and ticks.
        let yticks: Vec<f64> = if self.log_y {
            (dlo as i32..=dhi as i32).map(|d| 10f64.powi(d)).collect()
        } else {
            let mut t = Vec::new();
            let mut v = 0.0;
            while v <= ytop + 1e-9 {
                t.push(v);
                v += ystep;
            }
            t
        };
        for v in yticks {
            let y = sy(v);
            let _ = write!(
                out,
                "<line x1='{LEFT}' y1='{y:.1}' x2='{:.1}' y2='{y:.1}' stroke='#ddd'/>\
                 <text x='{:.1}' y='{:.1}' text-anchor='end'>{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                fmt_tick(v)
            );
        }
        let mut v = 0.0;
        while v <= xtop + 1e-9 {
            let x = sx(v);
            let _ = write!(
                out,
                "<line x1='{x:.1}' y1='{TOP}' x2='{x:.1}' y2='{:.1}' stroke='#eee'/>\
                 <text x='{x:.1}' y='{:.1}' text-anchor='middle'>{}</text>",
                TOP + ph,
                TOP + ph + 16.0,
                fmt_tick(v)
            );
            v += xstep;
        }
        let _ = write!(
            out,
            "<rect x='{LEFT}' y='{TOP}' width='{pw}' height='{ph}' fill='none' stroke='#444'/>\
             <text x='{:.1}' y='{:.1}' text-anchor='middle'>{}</text>\
             <text transform='translate(16 {:.1}) rotate(-90)' text-anchor='middle'>{}</text>",
            LEFT + pw / 2.0,
            H - 12.0,
            parley_xml::escape::text(&self.x_label),
            TOP + ph / 2.0,
            parley_xml::escape::text(&self.y_label)
        );
        for (i, s) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = s
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let _ = write!(
                out,
                "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>",
                path.join(" ")
            );
            for (x, y) in &s.points {
                let _ = write!(
                    out,
                    "<circle cx='{:.1}' cy='{:.1}' r='3' fill='{color}'/>",
                    sx(*x),
                    sy(*y)
                );
            }
            let ly = TOP + 14.0 + 16.0 * i as f64;
            let _ = write!(
                out,
                "<rect x='{:.1}' y='{:.1}' width='12' height='3' fill='{color}'/>\
                 <text x='{:.1}' y='{:.1}'>{}</text>",
                LEFT + 10.0,
                ly - 4.0,
                LEFT + 28.0,
                ly,
                parley_xml::escape::text(&s.name)
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        assert_eq!(nice_axis(9.0), (10.0, 2.0));
        assert_eq!(nice_axis(4200.0), (5000.0, 1000.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.25));
    }

    #[test]
    fn renders_every_series_and_escapes_labels() {
        let chart = Chart {
            title: "RSS <per> session".into(),
            x_label: "sessions".into(),
            y_label: "MiB".into(),
            series: vec![
                Series {
                    name: "Parley".into(),
                    points: vec![(0.0, 1.0), (1000.0, 6.0)],
                },
                Series {
                    name: "Prosody".into(),
                    points: vec![(0.0, 16.0), (1000.0, 49.0)],
                },
            ],
            log_y: false,
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("RSS &lt;per&gt; session"));
        assert!(svg.contains(">Prosody<"));
    }

    #[test]
    fn log_axis_has_a_tick_per_decade() {
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "s".into(),
                points: vec![(1.0, 0.2), (2.0, 4500.0)],
            }],
            log_y: true,
        };
        let svg = chart.render();
        for tick in [">0.1<", ">1<", ">10<", ">100<", ">1k<", ">10k<"] {
            assert!(svg.contains(tick), "{tick} missing");
        }
    }
}
