//! The depth sweep's picture: perplexity and BLEU against depth (the converged view), and
//! validation perplexity per epoch for each depth (the equal-epochs view).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::results::Results;
use crate::error::{Error, Result};

pub(super) const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// (min, max) of `values` with room below and more above (at least `min_pad`), or (0, 1)
/// when there are none.
fn range(values: impl Iterator<Item = f64>, min_pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    // Room above the curves for the legend.
    let pad = ((hi - lo) * 0.05).max(min_pad);
    (lo - pad, hi + 5.0 * pad)
}

/// The y axis of a panel: linear, or logarithmic (perplexities falling over epochs span a
/// factor of ten; on a log axis equal ratios look equal).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Scale {
    Linear,
    Log,
}

pub(super) type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// One panel: lines with points and a legend.
pub(super) fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    x: (f64, f64),
    series: &[Series],
    scale: Scale,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| {
        Error::Config(format!("drawing the plot failed: {e}"))
    };
    // A log axis draws ln(y) on a linear one and labels the ticks with y.
    let to_axis = |v: f64| {
        if scale == Scale::Log {
            v.max(1e-9).ln()
        } else {
            v
        }
    };
    let series: Vec<Series> = series
        .iter()
        .map(|(n, pts, c)| (*n, pts.iter().map(|&(x, y)| (x, to_axis(y))).collect(), *c))
        .collect();
    let min_pad = if scale == Scale::Log { 0.02 } else { 0.5 };
    let y = range(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)), min_pad);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(50)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        // Depths and epochs are whole numbers: label only those ticks.
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| match scale {
            Scale::Log => format!("{:.1}", v.exp()),
            Scale::Linear => format!("{v:.1}"),
        })
        .light_line_style(WHITE)
        .draw()
        .map_err(err)?;
    for (name, points, color) in &series {
        if points.is_empty() {
            continue;
        }
        let c = *color;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(px, py)| {
                PathElement::new(vec![(px, py), (px + 16, py)], c.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, r: &Results) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| {
        Error::Config(format!("drawing the plot failed: {e}"))
    };
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!("LSTM depth sweep ({} preset)", r.settings.preset),
            ("sans-serif", 22),
        )
        .map_err(err)?;
    let areas = root.split_evenly((1, 3));
    let depths = || r.depths.iter();
    let lo = depths().map(|d| d.layers).min().unwrap_or(1) as f64 - 0.3;
    let hi = depths().map(|d| d.layers).max().unwrap_or(1) as f64 + 0.3;
    let per_depth = |f: &dyn Fn(&super::results::DepthResult) -> Option<f64>| -> Vec<(f64, f64)> {
        depths()
            .filter_map(|d| f(d).map(|v| (d.layers as f64, v)))
            .collect()
    };
    panel(
        &areas[0],
        "perplexity at the best checkpoint",
        "LSTM layers",
        (lo, hi),
        &[
            ("validation", per_depth(&|d| d.best_valid_ppl), COLORS[0]),
            (
                "test",
                per_depth(&|d| d.test.as_ref().map(|t| t.test_ppl)),
                COLORS[3],
            ),
            (
                "train (sample)",
                per_depth(&|d| d.test.as_ref().and_then(|t| t.train_ppl)),
                COLORS[1],
            ),
        ],
        Scale::Linear,
    )?;
    panel(
        &areas[1],
        &format!("test BLEU (beam {})", r.settings.beam),
        "LSTM layers",
        (lo, hi),
        &[(
            "BLEU",
            per_depth(&|d| d.test.as_ref().map(|t| t.test_bleu)),
            COLORS[2],
        )],
        Scale::Linear,
    )?;
    let names: Vec<String> = depths()
        .map(|d| format!("{} layer{}", d.layers, if d.layers == 1 { "" } else { "s" }))
        .collect();
    let curves: Vec<Series> = depths()
        .zip(&names)
        .enumerate()
        .map(|(i, (d, n))| (n.as_str(), d.valid_curve.clone(), COLORS[i % COLORS.len()]))
        .collect();
    let last = depths()
        .flat_map(|d| d.valid_curve.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    panel(
        &areas[2],
        "validation perplexity per epoch (log axis)",
        "epoch",
        (0.5, last + 0.5),
        &curves,
        Scale::Log,
    )?;
    root.present().map_err(err)
}

/// Draws `r` into `out`, an .svg or .png file.
pub fn draw(r: &Results, out: &Path) -> Result<()> {
    crate::plot::register_font()?;
    let size = (1500, 480);
    match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => draw_on(SVGBackend::new(out, size).into_drawing_area(), r),
        Some("png") => draw_on(BitMapBackend::new(out, size).into_drawing_area(), r),
        _ => Err(Error::Config(format!(
            "{}: the plot file must end in .svg or .png",
            out.display()
        ))),
    }
}

/// Draws `depth.svg` and `depth.png` into `out` once any depth has a validation.
pub fn write_plots(r: &Results, out: &Path) -> Result<()> {
    if r.depths.iter().any(|d| !d.valid_curve.is_empty()) {
        for ext in ["svg", "png"] {
            // Drawn beside the final name (plotters picks the format by extension), then
            // renamed over it, so a reader never sees half a picture.
            let tmp = out.join(format!(".depth-tmp.{ext}"));
            let path = out.join(format!("depth.{ext}"));
            draw(r, &tmp)?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::write(&path, e))?;
        }
    }
    Ok(())
}
