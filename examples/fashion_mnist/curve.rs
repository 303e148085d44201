//! The training curve of a run (training and validation accuracy per epoch) as an SVG
//! document (plotters' SVG backend writes text as SVG text: no system fonts needed).

use boson::{Error, Result};
use plotters::prelude::*;

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(214, 39, 40);

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("drawing the training curve: {e}"))
}

/// Accuracy against epoch (1-based) for the training batches and, where measured, the
/// validation images.
pub fn training_curve(train: &[f64], validation: &[f64]) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let values = train
            .iter()
            .chain(validation)
            .copied()
            .filter(|v| v.is_finite());
        let lo = values.fold(1.0f64, f64::min);
        let lo = ((lo - 0.02) * 50.0).floor() / 50.0;
        let epochs = train.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption("Fashion-MNIST: accuracy per epoch", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5f64..epochs + 0.5, lo.max(0.0)..1.0f64)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy")
            .x_label_formatter(&|x| match (x - x.round()).abs() < 1e-6 {
                true => format!("{x:.0}"),
                false => String::new(),
            })
            .draw()
            .map_err(plot_error)?;
        for (label, color, series) in [
            ("training", TRAIN, train),
            ("validation", VALIDATION, validation),
        ] {
            let points: Vec<(f64, f64)> = series
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as f64 + 1.0, v))
                .collect();
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}
