//! SVG charts drawn with plotters (no fonts needed: plotters' SVG backend writes text elements): horizontal bars
//! with confidence whiskers, box plots of a distribution, and a speed-versus-drift scatter with its Pareto front.

use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf32, RangedCoordusize};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One bar: a label, a median and its 95% interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Row label.
    pub label: String,
    /// Series (one colour each), e.g. `prefill` / `decode`.
    pub series: usize,
    /// Median.
    pub value: f64,
    /// 95% interval of the median, drawn as a whisker.
    pub ci: Option<[f64; 2]>,
}

/// One box: a label and the samples it summarises.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxRow {
    /// Row label.
    pub label: String,
    /// Samples (e.g. every inter-token latency of a cell).
    pub samples: Vec<f32>,
}

/// One scatter point for speed against drift.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Label.
    pub label: String,
    /// Drift (lower is better).
    pub x: f64,
    /// Speed (higher is better).
    pub y: f64,
}

const ROW_PX: u32 = 26;
const WIDTH: u32 = 860;

/// Room for the row labels: about 7 px per character of the longest, within [120, 480].
fn label_area(labels: &[String]) -> u32 {
    (labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32 * 7 + 16).clamp(120, 480)
}

fn height(rows: usize) -> u32 {
    (90 + ROW_PX * rows.max(1) as u32).max(220)
}

fn series_color(i: usize) -> RGBColor {
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)][i % 4]
}

type RowChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf32, SegmentedCoord<RangedCoordusize>>>;

/// A white chart with one labelled row per entry of `labels` and an x axis from 0 to `xmax`, mesh drawn.
fn row_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    x_label: &str,
    labels: &[String],
    xmax: f32,
) -> Result<RowChart<'a, 'b>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(label_area(labels))
        .build_cartesian_2d(0f32..xmax.max(1e-6), (0..labels.len()).into_segmented())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(x_label)
        .y_labels(labels.len().max(1))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Horizontal bars with whiskers; `series_names` label the colours.
pub fn bars(title: &str, x_label: &str, series_names: &[&str], rows: &[Bar]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH + label_area(&labels), height(rows.len()))).into_drawing_area();
        let max = rows.iter().map(|r| r.ci.map_or(r.value, |c| c[1].max(r.value))).fold(0.0, f64::max) as f32;
        let mut chart = row_chart(&root, title, x_label, &labels, max * 1.12)?;
        for (i, r) in rows.iter().enumerate() {
            let color = series_color(r.series);
            let bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (r.value as f32, SegmentValue::Exact(i + 1))],
                color.filled(),
            );
            chart.draw_series(std::iter::once(bar)).map_err(|e| e.to_string())?;
            if let Some([lo, hi]) = r.ci {
                let whisker = PathElement::new(
                    vec![(lo as f32, SegmentValue::CenterOf(i)), (hi as f32, SegmentValue::CenterOf(i))],
                    BLACK.stroke_width(2),
                );
                chart.draw_series(std::iter::once(whisker)).map_err(|e| e.to_string())?;
            }
        }
        for (s, name) in series_names.iter().enumerate() {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f32, SegmentValue<usize>)>>())
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], series_color(s).filled()));
        }
        if series_names.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Horizontal box plots (quartiles, whiskers at 1.5 IQR) of each row's samples.
pub fn boxes(title: &str, x_label: &str, rows: &[BoxRow]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH + label_area(&labels), height(rows.len()))).into_drawing_area();
        let max = rows.iter().flat_map(|r| r.samples.iter().copied()).fold(0f32, f32::max);
        let mut chart = row_chart(&root, title, x_label, &labels, max * 1.08)?;
        for (i, r) in rows.iter().enumerate().filter(|(_, r)| !r.samples.is_empty()) {
            let q = Quartiles::new(&r.samples);
            let b = Boxplot::new_horizontal(SegmentValue::CenterOf(i), &q).width(14).style(series_color(0));
            chart.draw_series(std::iter::once(b)).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Indices of the points no other point beats on both axes (lower x and higher y), sorted by x.
pub fn pareto_front(points: &[Point]) -> Vec<usize> {
    let dominated = |i: usize| {
        points.iter().enumerate().any(|(j, q)| {
            j != i && q.x <= points[i].x && q.y >= points[i].y && (q.x < points[i].x || q.y > points[i].y)
        })
    };
    let mut front: Vec<usize> = (0..points.len()).filter(|&i| !dominated(i)).collect();
    front.sort_by(|&a, &b| points[a].x.total_cmp(&points[b].x));
    front
}

/// Speed against drift, each point labelled, the Pareto front joined by a line and its points ringed.
pub fn pareto(title: &str, x_label: &str, y_label: &str, points: &[Point]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        // Labels are drawn to the right of their points: leave room for them past the largest drift.
        let xmax = points.iter().map(|p| p.x).fold(0.0, f64::max).max(1e-9) * 1.6;
        let ymax = points.iter().map(|p| p.y).fold(0.0, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|e| e.to_string())?;
        let front = pareto_front(points);
        chart
            .draw_series(LineSeries::new(
                front.iter().map(|&i| (points[i].x, points[i].y)),
                series_color(3).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("Pareto front")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], series_color(3).stroke_width(2)));
        for (i, p) in points.iter().enumerate() {
            let on_front = front.contains(&i);
            let dot = Circle::new((p.x, p.y), 5, series_color(0).filled());
            chart.draw_series(std::iter::once(dot)).map_err(|e| e.to_string())?;
            if on_front {
                let ring = Circle::new((p.x, p.y), 9, series_color(3).stroke_width(2));
                chart.draw_series(std::iter::once(ring)).map_err(|e| e.to_string())?;
            }
            let text = Text::new(p.label.clone(), (p.x, p.y), ("sans-serif", 13).into_font());
            chart.draw_series(std::iter::once(text)).map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f64, y: f64) -> Point {
        Point { label: format!("{x},{y}"), x, y }
    }

    #[test]
    fn pareto_front_keeps_only_undominated_points() {
        let pts = [pt(0.01, 50.0), pt(0.02, 100.0), pt(0.03, 90.0), pt(0.005, 20.0), pt(0.02, 80.0)];
        assert_eq!(pareto_front(&pts), vec![3, 0, 1]);
    }

    #[test]
    fn charts_are_svg_with_their_labels() {
        let rows = [
            Bar { label: "candle 2t".into(), series: 0, value: 25.0, ci: Some([24.0, 26.0]) },
            Bar { label: "llamacpp 2t".into(), series: 1, value: 290.0, ci: None },
        ];
        let svg = bars("throughput", "tokens/s", &["prefill", "decode"], &rows).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("candle 2t") && svg.contains("llamacpp 2t"), "{svg}");
        assert!(svg.contains("throughput") && svg.contains("decode"));
        let b = boxes("ITL", "ms", &[BoxRow { label: "x".into(), samples: vec![1.0, 2.0, 3.0, 9.0] }]).unwrap();
        assert!(b.contains("<svg") && b.contains("ITL"));
        let p = pareto("speed vs drift", "KLD", "t/s", &[pt(0.01, 50.0), pt(0.02, 100.0)]).unwrap();
        assert!(p.contains("Pareto front") && p.contains("0.01,50"));
    }
}
