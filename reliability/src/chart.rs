//! The report's line charts (RSS over a soak): a few series on shared
//! linear axes, with labelled vertical markers (such as "pinned") and a
//! legend. Drawn with plotters' SVG backend, the library bench draws its
//! throughput chart with, so the workspace has one chart library (its
//! features are in the workspace manifest: SVG only, no font libraries).

use plotters::prelude::*;

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

const SIZE: (u32, u32) = (760, 380);
/// The markers' lines and labels: grey, so the data stands out. (Solid:
/// the SVG backend has no dash style, and `DashedPathElement` writes one
/// element per dash.)
const MARKER: RGBColor = RGBColor(120, 120, 120);
/// Font sizes as plotters takes them; it draws text at about 0.8 of
/// these, so labels come out near 12 px and the title near 15.
const TITLE_FONT: u32 = 19;
const LABEL_FONT: u32 = 15;
const MARKER_FONT: u32 = 14;

impl LineChart {
    /// Renders the chart as a standalone SVG document. The y axis starts
    /// at zero so that growth is shown to scale, and so does the x axis
    /// when the data is all positive, so its ticks count from the origin.
    ///
    /// # Errors
    ///
    /// Plotters could not lay the chart out (its message, as text).
    pub fn to_svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        self.draw(SVGBackend::with_string(&mut svg, SIZE))
            .map_err(|e| format!("chart {:?}: {e}", self.title))?;
        Ok(svg)
    }

    fn draw(&self, backend: SVGBackend<'_>) -> Result<(), Box<dyn std::error::Error>> {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let x_min = points().map(|p| p.0).fold(0.0, f64::min);
        let x_max = points().map(|p| p.0).fold(x_min, f64::max);
        let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
        // A tenth of headroom above the highest point: the markers' labels
        // sit there, clear of the lines.
        let y_top = points().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;

        let root = backend.into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", TITLE_FONT))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x_min..x_max, 0.0..y_top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            // Grid lines at the labelled ticks only.
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", LABEL_FONT))
            .axis_desc_style(("sans-serif", LABEL_FONT))
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .draw()?;

        chart.draw_series(self.markers.iter().map(|&(at, _)| {
            PathElement::new([(at, 0.0), (at, y_top)], MARKER.mix(0.6).stroke_width(1))
        }))?;
        chart.draw_series(self.markers.iter().map(|(at, label)| {
            EmptyElement::at((*at, y_top))
                + Text::new(
                    label.clone(),
                    (3, 4),
                    ("sans-serif", MARKER_FONT).into_font().color(&MARKER),
                )
        }))?;

        for (i, series) in self.series.iter().enumerate() {
            // Palette99, as bench's bars: the same colours in order.
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    series.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(&series.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
        // Lower right: an RSS curve climbs from the left and holds high,
        // so that corner stays clear of it.
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", LABEL_FONT))
            .draw()?;
        root.present()?;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(2_500_000.0), "2.5M");
        assert_eq!(tick(200_000.0), "200k");
        assert_eq!(tick(12.0), "12");
        assert_eq!(tick(0.0), "0");
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
                    points: vec![(0.0, 5.0), (200.0, 5.0)],
                },
            ],
            markers: vec![(100.0, "pinned".into())],
        };
        let svg = chart.to_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        for text in [
            "RSS &lt;soak&gt;",
            "events",
            "MiB",
            "pinned",
            "rss",
            "other",
        ] {
            assert!(
                svg.contains(&format!(">\n{text}\n</text>")),
                "{text}: {svg}"
            );
        }
        // Each series' line has its points; the marker is a vertical line.
        assert_eq!(
            svg.matches(r#"stroke-width="2" points=""#).count(),
            2,
            "{svg}"
        );
        assert_eq!(svg.matches(r##"stroke="#787878""##).count(), 1, "{svg}");
        // Both axes start at zero.
        assert_eq!(svg.matches(">\n0\n</text>").count(), 2, "{svg}");
    }
}
