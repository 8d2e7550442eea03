//! The picture of `nmt experiment compare`: per sweep the test perplexity change of each
//! added layer beside the paper's -10 %, and the test perplexity against depth.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::compare::{per_layer_changes, Sweep, PAPER_CHANGE_PER_LAYER};
use super::depth_plot::{panel, Scale, Series, COLORS};
use crate::error::{Error, Result};

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, sweeps: &[Sweep]) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| {
        Error::Config(format!("drawing the plot failed: {e}"))
    };
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled("LSTM depth sweeps compared", ("sans-serif", 22))
        .map_err(err)?;
    let areas = root.split_evenly((1, 2));
    let layers = || {
        sweeps
            .iter()
            .flat_map(|s| s.results.depths.iter().map(|d| d.layers))
    };
    let lo = layers().min().unwrap_or(1) as f64 - 0.3;
    let hi = layers().max().unwrap_or(2) as f64 + 0.3;
    let color = |i: usize| COLORS[(i + 1) % COLORS.len()];
    // Width and corpus size in the legend: the two things depth's payoff should depend on.
    let names: Vec<String> = sweeps
        .iter()
        .map(|s| {
            let pairs = s.pairs_text().map_or(String::new(), |p| format!(", {p}"));
            format!("{} (hidden {}{pairs})", s.name, s.results.settings.hidden)
        })
        .collect();
    let paper_name = "paper: about -10 % a layer";
    let mut changes: Vec<Series> = vec![(
        paper_name,
        // From the first added layer (depth 2 in a sweep from 1) to the deepest.
        vec![
            (lo + 1.3, 100.0 * PAPER_CHANGE_PER_LAYER),
            (hi - 0.3, 100.0 * PAPER_CHANGE_PER_LAYER),
        ],
        COLORS[7],
    )];
    changes.extend(sweeps.iter().enumerate().map(|(i, s)| {
        let points = per_layer_changes(&s.results)
            .iter()
            .map(|&(_, to, c)| (to as f64, 100.0 * c))
            .collect();
        (names[i].as_str(), points, color(i))
    }));
    panel(
        &areas[0],
        "test perplexity change per added layer (%)",
        "layers (change from the depth before)",
        (lo, hi),
        &changes,
        Scale::Linear,
    )?;
    let ppl: Vec<Series> = sweeps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let points = s
                .results
                .depths
                .iter()
                .filter_map(|d| d.test.as_ref().map(|t| (d.layers as f64, t.test_ppl)))
                .filter(|&(_, p)| p.is_finite() && p > 0.0)
                .collect();
            (names[i].as_str(), points, color(i))
        })
        .collect();
    panel(
        &areas[1],
        "test perplexity at the best checkpoint (log axis)",
        "LSTM layers",
        (lo, hi),
        &ppl,
        Scale::Log,
    )?;
    root.present().map_err(err)
}

/// Draws the comparison of `sweeps` into `out`, an .svg or .png file.
pub fn draw(sweeps: &[Sweep], out: &Path) -> Result<()> {
    crate::plot::register_font()?;
    let size = (1100, 480);
    match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => draw_on(SVGBackend::new(out, size).into_drawing_area(), sweeps),
        Some("png") => draw_on(BitMapBackend::new(out, size).into_drawing_area(), sweeps),
        _ => Err(Error::Config(format!(
            "{}: the plot file must end in .svg or .png",
            out.display()
        ))),
    }
}
