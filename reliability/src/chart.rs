//! A small SVG line chart, hand-written so the report needs no plotting
//! dependency: a few series on shared linear axes, with labelled vertical
//! markers (such as "snapshot pinned") and a legend.

use std::fmt::Write as _;

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's name for the line.
    pub name: String,
    /// `(x, y)` points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart; [`LineChart::to_svg`] renders it.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// The heading drawn above the plot.
    pub title: String,
    /// The x axis's label.
    pub x_label: String,
    /// The y axis's label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Vertical markers at an x value, with a label.
    pub markers: Vec<(f64, String)>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

impl LineChart {
    /// Renders the chart as a standalone SVG document. The y axis starts
    /// at zero so that growth is shown to scale.
    pub fn to_svg(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
        let mut x_min = f64::INFINITY;
        for &(x, y) in points {
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_max = y_max.max(y);
        }
        // Start the x axis at zero when the data is all positive, so the
        // ticks fall on round numbers from the origin.
        x_min = x_min.min(0.0);
        let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
        let y_step = nice_step(y_max.max(1.0) / 5.0);
        let y_top = (y_max / y_step).ceil().max(1.0) * y_step;
        let x_step = nice_step((x_max - x_min) / 6.0);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
        let sy = |y: f64| TOP + plot_h - y / y_top * plot_h;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        let mut y = 0.0;
        while y <= y_top + y_step / 2.0 {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                sy(y) + 4.0,
                tick(y),
                py = sy(y)
            );
            y += y_step;
        }
        let mut x = (x_min / x_step).ceil() * x_step;
        while x <= x_max + x_step / 100.0 {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                sx(x),
                TOP + plot_h + 16.0,
                tick(x)
            );
            x += x_step;
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h + 36.0,
            escape(&self.x_label),
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (at, label) in &self.markers {
            let px = sx(*at);
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#888" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="11" fill="#555">{}</text>"##,
                TOP + plot_h,
                px + 3.0,
                TOP + 12.0,
                escape(label)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
            let ly = HEIGHT - 14.0;
            let lx = LEFT + i as f64 * 220.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * power)
}

/// A tick label: 1.5M, 200k or 12.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(33.0), 50.0);
        assert_eq!(nice_step(1_700_000.0), 2_000_000.0);
        assert_eq!(tick(2_500_000.0), "2.5M");
        assert_eq!(tick(200_000.0), "200k");
        assert_eq!(tick(12.0), "12");
    }

    #[test]
    fn svg_draws_every_series_marker_and_escaped_label() {
        let chart = LineChart {
            title: "RSS <soak>".into(),
            x_label: "events".into(),
            y_label: "MiB".into(),
            series: vec![
                Series {
                    name: "rss".into(),
                    points: vec![(0.0, 10.0), (100.0, 30.0), (200.0, 20.0)],
                },
                Series {
                    name: "other".into(),
                    points: vec![(0.0, 5.0)],
                },
            ],
            markers: vec![(100.0, "pinned".into())],
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("RSS &lt;soak&gt;"), "{svg}");
        assert!(svg.contains(">pinned</text>"), "{svg}");
        // x from 0 to 200 spans the plot's width; y from 0 to 30 (the top
        // tick) its height, so the peak sits on the top edge, mid-way.
        assert!(svg.contains(r#"points="70.0,"#), "{svg}");
        assert!(svg.contains(" 405.0,40.0 "), "{svg}");
    }
}
