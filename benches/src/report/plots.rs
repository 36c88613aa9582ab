//! The report's PNG plots (plotters' bitmap backend; text by ab_glyph from a TrueType font read
//! at run time):
//!
//! * `strong_scaling.png`: compute time (s, log scale) versus ranks P, one line per operation;
//! * `weak_scaling.png`: weak-scaling efficiency T(1)/T(P) versus P, ideal = 1;
//! * `memory_per_rank.png`: the largest rank's peak RSS (GB) versus P (same data);
//! * `baselines.png`: end-to-end time (s, log scale) of each baseline and of heatsql at each
//!   P, grouped by operation.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::{Report, Scaling};

/// Where the font may be (Debian's fonts-dejavu-core first); `HEATSQL_PLOT_FONT` overrides.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers the font once as `sans-serif`; an error names the paths tried.
fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut tried: Vec<String> = std::env::var("HEATSQL_PLOT_FONT").into_iter().collect();
        tried.extend(FONTS.iter().map(|s| s.to_string()));
        let bytes = tried
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!(
                    "no TrueType font for the plots (tried {}; install Debian's fonts-dejavu-core or set HEATSQL_PLOT_FONT)",
                    tried.join(", ")
                )
            })?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| "the font file is not a valid TrueType font".to_string())
    })
    .clone()
}

const SIZE: (u32, u32) = (960, 600);

/// A colour per operation, the same in every plot.
fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

/// A tick value with at most 3 significant digits, without float noise.
fn tick(y: &f64) -> String {
    if *y == 0.0 || !y.is_finite() {
        return "0".into();
    }
    let decimals = (2 - y.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{y:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The legend beside a chart: a coloured mark and the name per entry (bars as boxes).
fn legend(area: &Area, entries: &[(String, RGBColor, Mark)]) -> Result<(), String> {
    let style = ("sans-serif", 16).into_font();
    for (i, (name, c, mark)) in entries.iter().enumerate() {
        let y = 70 + 26 * i as i32;
        match mark {
            Mark::Line => area
                .draw(&PathElement::new(vec![(8, y), (36, y)], c.stroke_width(3)))
                .map_err(err)?,
            Mark::Thin => area
                .draw(&PathElement::new(vec![(8, y), (36, y)], c.stroke_width(1)))
                .map_err(err)?,
            Mark::Box => area
                .draw(&Rectangle::new([(12, y - 7), (32, y + 7)], c.filled()))
                .map_err(err)?,
        }
        area.draw(&Text::new(name.clone(), (44, y - 9), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Mark {
    /// A thick line (a series).
    Line,
    /// A thin line (a reference level).
    Thin,
    /// A filled box (bars).
    Box,
}

/// Width of the legend strip right of each chart.
const LEGEND_WIDTH: u32 = 230;

/// Integer tick labels on a continuous rank axis.
fn rank_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 && *x >= 1.0 {
        format!("{}", x.round())
    } else {
        String::new()
    }
}

/// Lines of `(P, y)` per operation; `log_y` for times.
fn lines(
    root: &Area,
    title: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
    ideal: Option<f64>,
) -> Result<(), String> {
    let max_p = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .collect();
    let (lo, hi) = ys
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &y| (a.min(y), b.max(y)));
    let (lo, hi) = if ys.is_empty() { (0.1, 1.0) } else { (lo, hi) };
    let root = root.titled(title, ("sans-serif", 24)).map_err(err)?;
    let (plot, side) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let x = 0.8..max_p + 0.2;
    let mut chart = ChartBuilder::on(&plot);
    chart.margin(20).x_label_area_size(50).y_label_area_size(80);
    let ticks = max_p as usize + 1;
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("ranks P")
                .y_desc(y_desc)
                .x_labels(ticks * 5)
                .x_label_formatter(&rank_label)
                .y_labels(12)
                .y_label_formatter(&tick)
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .draw()
                .map_err(err)?;
            if let Some(level) = ideal {
                chart
                    .draw_series(LineSeries::new(
                        vec![(0.8, level), (max_p + 0.2, level)],
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            for (i, (_, pts)) in series.iter().enumerate() {
                let c = colour(i);
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(3)))
                    .map_err(err)?;
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.filled())))
                    .map_err(err)?;
            }
        }};
    }
    if log_y {
        body!(
            chart
                .build_cartesian_2d(x, (lo / 1.5..hi * 1.5).log_scale())
                .map_err(err)?
        );
    } else {
        let top = hi.max(ideal.unwrap_or(0.0)) * 1.25;
        body!(chart.build_cartesian_2d(x, 0.0..top).map_err(err)?);
    }
    let mut entries: Vec<(String, RGBColor, Mark)> =
        ideal.iter().map(|_| ("ideal".to_string(), BLACK, Mark::Thin)).collect();
    entries.extend(
        series
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), colour(i), Mark::Line)),
    );
    legend(&side, &entries)
}

/// Grouped bars: per operation, one bar per system (log scale).
fn bars(root: &Area, title: &str, y_desc: &str, groups: &[(String, Vec<(String, f64)>)]) -> Result<(), String> {
    let mut systems: Vec<String> = Vec::new();
    for (_, bars) in groups {
        for (s, _) in bars {
            if !systems.contains(s) {
                systems.push(s.clone());
            }
        }
    }
    let ys: Vec<f64> = groups
        .iter()
        .flat_map(|(_, b)| b.iter().map(|x| x.1))
        .filter(|y| *y > 0.0)
        .collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min).min(1.0) / 2.0;
    let hi = ys.iter().copied().fold(0.0, f64::max).max(lo * 4.0) * 3.0;
    let titled = root.titled(title, ("sans-serif", 24)).map_err(err)?;
    let (plot, side) = titled.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..groups.len() as f64, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(err)?;
    let width = 0.8 / systems.len().max(1) as f64;
    for (si, system) in systems.iter().enumerate() {
        let c = colour(si);
        let rects: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .filter_map(|(gi, (_, b))| {
                let y = b.iter().find(|(s, _)| s == system)?.1;
                let x0 = gi as f64 + 0.1 + si as f64 * width;
                Some(Rectangle::new([(x0, lo), (x0 + width * 0.9, y)], c.filled()))
            })
            .collect();
        chart.draw_series(rects).map_err(err)?;
    }
    // Operation names under their groups (backend pixels, so drawn on the whole image).
    for (gi, (name, _)) in groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, lo));
        root.draw(&Text::new(
            name.clone(),
            (px - 6 * name.len() as i32 / 2, py + 10),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(err)?;
    }
    let entries: Vec<(String, RGBColor, Mark)> = systems
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), colour(i), Mark::Box))
        .collect();
    legend(&side, &entries)
}

fn png(dir: &Path, name: &str, draw: impl FnOnce(&Area) -> Result<(), String>) -> Result<String, String> {
    let path = dir.join(name);
    {
        let root = BitMapBackend::new(&path, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(|e| format!("{}: {e:?}", path.display()))?;
    }
    Ok(name.to_string())
}

/// Draws every plot the report's data allows into `dir`; returns the file names.
pub fn draw_all(r: &Report, dir: &Path) -> Result<Vec<String>, String> {
    font()?;
    let o = &r.options;
    let mut out = Vec::new();
    let per_op = |f: &dyn Fn(&str, usize) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        o.ops
            .iter()
            .map(|op| {
                let pts = o.ranks.iter().filter_map(|&p| Some((p as f64, f(op, p)?))).collect();
                (op.clone(), pts)
            })
            .filter(|(_, pts): &(String, Vec<(f64, f64)>)| !pts.is_empty())
            .collect()
    };
    let strong = per_op(&|op, p| Some(r.run(op, Scaling::Strong, p)?.measured()));
    if !strong.is_empty() {
        out.push(png(dir, "strong_scaling.png", |a| {
            lines(
                a,
                "Strong scaling: time vs ranks (same data; load: load time)",
                "compute time (s, log scale)",
                &strong,
                true,
                None,
            )
        })?);
    }
    let weak = per_op(&|op, p| r.weak_efficiency(op, p));
    if o.weak && o.ranks.len() > 1 && weak.iter().any(|(_, v)| v.len() > 1) {
        out.push(png(dir, "weak_scaling.png", |a| {
            lines(
                a,
                "Weak scaling: efficiency T(1)/T(P) with P times the rows",
                "efficiency (1 = ideal)",
                &weak,
                false,
                Some(1.0),
            )
        })?);
    }
    let memory = per_op(&|op, p| Some(r.run(op, Scaling::Strong, p)?.peak_rss_max() / 1e9));
    if !memory.is_empty() {
        out.push(png(dir, "memory_per_rank.png", |a| {
            lines(
                a,
                "Peak memory per rank vs ranks (same data; largest rank)",
                "peak RSS per rank (GB)",
                &memory,
                false,
                None,
            )
        })?);
    }
    if !r.baselines.is_empty() {
        let groups: Vec<(String, Vec<(String, f64)>)> =
            o.ops
                .iter()
                .map(|op| {
                    let mut b: Vec<(String, f64)> = r
                        .baselines_of(op)
                        .iter()
                        .map(|run| {
                            let name = if run.system.starts_with("Heat") {
                                format!("Heat P={}", run.ranks)
                            } else {
                                "Python baseline (all cores)".to_string()
                            };
                            (name, run.end_to_end())
                        })
                        .collect();
                    b.extend(o.ranks.iter().filter_map(|&p| {
                        Some((format!("heatsql P={p}"), r.run(op, Scaling::Strong, p)?.end_to_end()))
                    }));
                    (op.clone(), b)
                })
                .collect();
        out.push(png(dir, "baselines.png", |a| {
            bars(
                a,
                "heatsql vs baselines: load + compute (lower is better)",
                "end-to-end time (s, log scale)",
                &groups,
            )
        })?);
    }
    Ok(out)
}
