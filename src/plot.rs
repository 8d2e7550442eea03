//! `nmt plot`: training loss, validation perplexity and validation BLEU against the update
//! step, read from a run's metrics.jsonl and drawn as SVG or PNG (plotters).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::run_log::METRICS_FILE;

/// One curve: (step, value) points.
type Curve = Vec<(f64, f64)>;

/// The curves of a run: training loss, validation perplexity, validation BLEU.
pub fn read_curves(dir: &Path) -> Result<[Curve; 3]> {
    let path = dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, e))?;
    let mut curves: [Curve; 3] = Default::default();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Line {
            path: path.clone(),
            line: i + 1,
            msg: format!("is not a JSON metrics record: {e}"),
        })?;
        let Some(step) = v["step"].as_f64() else {
            continue;
        };
        let mut push = |k: usize, key: &str| {
            if let Some(y) = v[key].as_f64() {
                curves[k].push((step, y));
            }
        };
        match v["kind"].as_str() {
            Some("train") => push(0, "loss"),
            Some("valid") => {
                push(1, "valid_ppl");
                push(2, "valid_bleu");
            }
            _ => {}
        }
    }
    if curves[0].is_empty() && curves[1].is_empty() {
        return Err(Error::Corpus(format!(
            "{} has no training or validation records yet: train longer than --log-every updates first",
            path.display()
        )));
    }
    Ok(curves)
}

/// Text in plotters needs a TrueType font; these are the usual places of DejaVu Sans.
pub(crate) fn register_font() -> Result<()> {
    static FONT: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let font = FONT.get_or_init(|| {
        [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/Library/Fonts/Arial.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
        ]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
    });
    let Some(bytes) = font else {
        return Err(Error::Config(
            "nmt plot needs a TrueType font for its labels: install DejaVu Sans (Debian/Ubuntu: apt-get install fonts-dejavu-core)".into(),
        ));
    };
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes.as_slice())
        .map_err(|_| Error::Config("the DejaVu Sans font could not be loaded".into()))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    curves: &[Curve; 3],
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| {
        Error::Config(format!("drawing the plot failed: {e}"))
    };
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
    let panels = [
        ("training loss (nats/token)", &curves[0]),
        ("validation perplexity", &curves[1]),
        ("validation BLEU", &curves[2]),
    ];
    let shown: Vec<_> = panels.iter().filter(|(_, c)| !c.is_empty()).collect();
    let areas = root.split_evenly((shown.len(), 1));
    for ((name, curve), area) in shown.iter().zip(areas) {
        let x_max = curve.iter().map(|p| p.0).fold(1.0, f64::max);
        let (y_min, y_max) = curve
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let pad = ((y_max - y_min) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(&area)
            .caption(*name, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("update step")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(curve.iter().copied(), BLUE.stroke_width(2)))
            .map_err(err)?;
        if curve.len() < 40 {
            chart
                .draw_series(curve.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
                .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// Draws the run in `dir` into `out` (.svg or .png).
pub fn plot_run(dir: &Path, out: &Path) -> Result<()> {
    let curves = read_curves(dir)?;
    register_font()?;
    let title = format!("nmt run {}", dir.display());
    let size = (
        900,
        300 * curves.iter().filter(|c| !c.is_empty()).count() as u32 + 40,
    );
    match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => draw(
            SVGBackend::new(out, size).into_drawing_area(),
            &title,
            &curves,
        ),
        Some("png") => draw(
            BitMapBackend::new(out, size).into_drawing_area(),
            &title,
            &curves,
        ),
        _ => Err(Error::Config(format!(
            "{}: the plot file must end in .svg or .png",
            out.display()
        ))),
    }
}
