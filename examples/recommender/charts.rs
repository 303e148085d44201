//! The pictures of a run, as SVG files in the model folder (plotters' SVG backend, which
//! writes text as SVG text, so no system fonts are needed): the training curve against
//! the baselines, the star histogram, the long tail of ratings per user and item, and
//! predicted against actual ratings on the test split.

use crate::model::Task;
use crate::train::History;
use boson::ratings::Summary;
use boson::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

const SIZE: (u32, u32) = (720, 420);
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(127, 127, 127);
/// The baselines' lines.
const BASELINES: [RGBColor; 2] = [RGBColor(255, 127, 14), RGBColor(44, 160, 44)];

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("drawing a chart: {e}"))
}

/// Draws on a fresh SVG canvas and returns the document.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

/// An axis label for whole numbers only (epochs, bars): fractional ticks stay blank.
fn whole(x: &f64) -> String {
    let i = x.round();
    match (x - i).abs() < 1e-6 && i >= 0.0 {
        true => format!("{i:.0}"),
        false => String::new(),
    }
}

/// `lo..hi` padded by 5% (1 when flat), over the finite values.
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi - lo < 1e-9 {
        0.5
    } else {
        (hi - lo) * 0.05
    };
    (lo - pad)..(hi + pad)
}

/// The training curve: per epoch, training and validation RMSE (rating task) or
/// validation NDCG@10 and HitRate@10 (ranking task), with the baselines' test values as
/// horizontal lines and the kept epoch's test value as a point.
pub fn training_curve(
    history: &History,
    task: Task,
    baselines: &[(&str, f64)],
    test: f64,
) -> Result<String> {
    type Get = fn(&crate::train::EpochMetrics) -> f64;
    let (caption, y_desc, series, best_by): (&str, &str, [(&str, RGBColor, Get); 2], Get) =
        match task {
            Task::Rating => (
                "RMSE per epoch",
                "RMSE",
                [
                    ("training (running, dropout on)", TRAIN, |e| e.train_rmse),
                    ("validation", VALIDATION, |e| e.validation_rmse),
                ],
                |e| e.validation_rmse,
            ),
            Task::Ranking => (
                "Validation ranking per epoch",
                "NDCG@10 / HitRate@10",
                [
                    ("validation HitRate@10", TRAIN, |e| {
                        e.validation_hit_rate_at_10
                    }),
                    ("validation NDCG@10", VALIDATION, |e| {
                        e.validation_ndcg_at_10
                    }),
                ],
                // Larger is better: choose by the negated value.
                |e| -e.validation_ndcg_at_10,
            ),
        };
    let epochs = &history.epochs;
    let y = padded_range(
        epochs
            .iter()
            .flat_map(|e| series.map(|s| s.2(e)))
            .chain(baselines.iter().map(|b| b.1))
            .chain([test]),
    );
    let n = epochs.len().max(1) as f64;
    let best = epochs
        .iter()
        .min_by(|a, b| best_by(a).total_cmp(&best_by(b)))
        .map_or(0, |e| e.epoch);
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..n - 0.5, y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_label_formatter(&whole)
            .draw()
            .map_err(plot_error)?;
        for (name, color, get) in series {
            let points = epochs
                .iter()
                .filter(|e| get(e).is_finite())
                .map(|e| (e.epoch as f64, get(e)));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        for ((name, value), color) in baselines.iter().zip(BASELINES.iter().cycle()) {
            let style = color.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.5, *value), (n - 0.5, *value)],
                    8,
                    5,
                    style,
                ))
                .map_err(plot_error)?
                .label(format!("{name} (test)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .draw_series([Circle::new((best as f64, test), 5, VALIDATION.filled())])
            .map_err(plot_error)?
            .label(format!("kept epoch {best}: test {test:.4}"))
            .legend(|(x, y)| Circle::new((x + 10, y), 4, VALIDATION.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(plot_error)
    })
}

/// How many ratings each star value (or bin) has.
pub fn rating_histogram(summary: &Summary) -> Result<String> {
    let bins = &summary.histogram;
    let top = bins.iter().map(|b| b.count).max().unwrap_or(1) as f64 * 1.1;
    svg(|root| {
        let n = bins.len().max(1) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption("Ratings by value", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
            .map_err(plot_error)?;
        let labels: Vec<String> = bins
            .iter()
            .map(|b| match b.low == b.high {
                true => format!("{}", b.low),
                false => format!("{:.1}-{:.1}", b.low, b.high),
            })
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("rating")
            .y_desc("ratings")
            .x_labels(bins.len() + 1)
            // Only the bars' centres get a label.
            .x_label_formatter(&|x| match whole(x).parse::<usize>() {
                Ok(i) => labels.get(i).cloned().unwrap_or_default(),
                Err(_) => String::new(),
            })
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(bins.iter().enumerate().map(|(i, b)| {
                let x = i as f64;
                Rectangle::new([(x - 0.4, 0.0), (x + 0.4, b.count as f64)], TRAIN.filled())
            }))
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Ratings per user and per item, most active first, on log-log axes: the long tail the
/// prepare step cuts.
pub fn long_tail(per_user: &[usize], per_item: &[usize]) -> Result<String> {
    let descending = |counts: &[usize]| {
        let mut c: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        c
    };
    let (users, items) = (descending(per_user), descending(per_item));
    let x_max = users.len().max(items.len()).max(2) as f64;
    let y_max = users
        .first()
        .max(items.first())
        .copied()
        .unwrap_or(1)
        .max(2) as f64;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Ratings per user and per item (long tail)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((1.0..x_max).log_scale(), (1.0..y_max * 1.2).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("rank (most active first)")
            .y_desc("ratings")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot_error)?;
        for (name, color, counts) in [("users", TRAIN, &users), ("items", VALIDATION, &items)] {
            let points = counts
                .iter()
                .enumerate()
                .map(|(rank, &c)| (rank as f64 + 1.0, c as f64));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)
    })
}

/// Predicted against actual rating on the test split (at most 3,000 points, spread over
/// the split), with the diagonal a perfect model would follow.
pub fn predicted_vs_actual(actual: &[f32], predicted: &[f32]) -> Result<String> {
    let step = actual.len().div_ceil(3000).max(1);
    let points: Vec<(f64, f64)> = actual
        .iter()
        .zip(predicted)
        .step_by(step)
        .enumerate()
        // A small deterministic horizontal spread so equal stars do not overprint.
        .map(|(k, (&a, &p))| {
            let jitter = (boson::rng::uniform_hash(7, k as u64) as f64 - 0.5) * 0.3;
            (f64::from(a) + jitter, f64::from(p))
        })
        .collect();
    let range = padded_range(actual.iter().chain(predicted).map(|&v| f64::from(v)));
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Predicted vs actual (test)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(range.clone(), range.clone())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("actual rating")
            .y_desc("predicted")
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 2, TRAIN.mix(0.35).filled())),
            )
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                [(range.start, range.start), (range.end, range.end)],
                GREY.stroke_width(1),
            ))
            .map_err(plot_error)?;
        Ok(())
    })
}
