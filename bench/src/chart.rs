//! The throughput chart: grouped bars of ops/s per mix, one bar per
//! contender, on a log scale (the contenders span five orders of
//! magnitude), as SVG through plotters' SVG backend (no font libraries).

use std::path::Path;

use plotters::prelude::*;

use crate::sets::SetResult;
use crate::workload::Config;

/// Draws `set`'s throughput for the configurations that `pick` keeps
/// (one group of bars per configuration, labelled by its mix) to `path`.
///
/// # Errors
///
/// The file could not be written, or nothing was picked.
pub fn throughput(
    path: &Path,
    title: &str,
    set: &SetResult,
    pick: impl Fn(&Config) -> bool,
) -> Result<(), String> {
    let mut configs: Vec<Config> = Vec::new();
    for row in set.rows.iter().filter(|r| pick(&r.config)) {
        if !configs.contains(&row.config) {
            configs.push(row.config);
        }
    }
    if configs.is_empty() {
        return Err(format!("{title}: no rows to chart"));
    }
    let bars = set.contenders.len() as f64;
    let value = |config: &Config, contender: &str| {
        set.rows
            .iter()
            .find(|r| r.config == *config && r.contender == contender)
            .map(|r| r.result.ops_per_s().max(1.0))
    };
    let top = set
        .rows
        .iter()
        .map(|r| r.result.ops_per_s())
        .fold(10.0, f64::max)
        // Three decades of headroom: the legend sits there, above the bars.
        * 1000.0;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..configs.len() as f64, (1.0..top).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(configs.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                let centred = (x - x.floor() - 0.5).abs() < 1e-6;
                match configs.get(i) {
                    Some(c) if centred => c.mix(),
                    _ => String::new(),
                }
            })
            .y_desc("ops/s (log)")
            .y_label_formatter(&|y| crate::report::count(*y))
            .draw()?;
        for (b, contender) in set.contenders.iter().enumerate() {
            let color = Palette99::pick(b).to_rgba();
            let bars_of = configs.iter().enumerate().filter_map(|(i, config)| {
                let x0 = i as f64 + 0.1 + 0.8 * b as f64 / bars;
                let x1 = x0 + 0.8 / bars * 0.9;
                value(config, contender)
                    .map(|v| Rectangle::new([(x0, 1.0), (x1, v)], color.filled()))
            });
            chart
                .draw_series(bars_of)?
                .label(*contender)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("chart {}: {e}", path.display()))
}
