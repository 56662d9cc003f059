//! PNG of scenario C: high-job start latency percentiles per peer.

use std::error::Error;
use std::fs;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// One peer's bars, in microseconds.
pub struct Bars {
    /// Peer name (x axis label).
    pub name: &'static str,
    /// Median start latency.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Where text is drawn from: `plotters` renders with `ab_glyph` from a TTF
/// file, so nothing is fetched and no font library is linked. The first
/// one present is used.
const FONT_FILES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn load_font() -> Result<(), Box<dyn Error>> {
    let bytes = FONT_FILES
        .iter()
        .find_map(|p| fs::read(p).ok())
        .ok_or("no TTF font found (looked for DejaVu Sans / Liberation Sans)")?;
    // plotters keeps fonts for the life of the process; the bench registers
    // one, once, so handing it a leaked buffer is what it asks for.
    register_font("sans-serif", FontStyle::Normal, bytes.leak()).map_err(|_| "font file could not be parsed")?;
    Ok(())
}

const COLORS: [RGBColor; 3] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xff, 0x7f, 0x0e), RGBColor(0xd6, 0x27, 0x28)];

/// Draws grouped bars (p50, p99, max) per peer on a log scale, with the
/// residual-time floor as a horizontal line, into `path`.
pub fn latency_png(path: &Path, bars: &[Bars], floor: f64, title: &str) -> Result<(), Box<dyn Error>> {
    load_font()?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let top = bars.iter().map(|b| b.max).fold(floor, f64::max).max(10.0) * 40.0; // headroom for the legend
    let bottom = 1.0;
    let n = bars.len();

    let root = BitMapBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                bars[i as usize].name.to_string()
            } else {
                String::new()
            }
        })
        .y_desc("high-job start latency (log scale)")
        .y_label_formatter(&|y| {
            if *y >= 1000.0 { format!("{} ms", y / 1000.0) } else { format!("{y} µs") }
        })
        .label_style(("sans-serif", 14))
        .draw()?;

    let width = 0.26;
    for (k, (label, pick)) in
        [("p50", (|b: &Bars| b.p50) as fn(&Bars) -> f64), ("p99", |b: &Bars| b.p99), ("max", |b: &Bars| b.max)]
            .into_iter()
            .enumerate()
    {
        let color = COLORS[k];
        let offset = (k as f64 - 1.0) * width;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let x = i as f64 + offset;
                let y = pick(b).max(bottom);
                Rectangle::new([(x - width / 2.0 + 0.01, bottom), (x + width / 2.0 - 0.01, y)], color.filled())
            }))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, floor), (n as f64 - 0.5, floor)],
            BLACK.stroke_width(2),
        )))?
        .label(format!("floor: residual L/2 of a running low job ({floor:.1} µs)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
