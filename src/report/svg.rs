//! Inline SVG charts for the HTML reports. Generated here rather than drawn by a JavaScript
//! library so a report is one file that renders offline, in any browser, with scripts disabled,
//! and so tests can check the charts from the DOM alone.

use std::fmt::Write;

/// Plot area geometry, in SVG user units (the SVG scales to its container's width).
const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 54.0;
const BOTTOM: f64 = 44.0;

/// Distinguishable colours (Tableau 10), assigned to series in order unless a series sets one.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// One line. A `NaN` y breaks the line (a second with nothing measured is a gap, not a zero).
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: Option<String>,
    pub dashed: bool,
    /// Draw as steps (a count that holds until the next sample, like replicas).
    pub step: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            ..Default::default()
        }
    }
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
    pub fn step(mut self) -> Self {
        self.step = true;
        self
    }
    pub fn color(mut self, c: &str) -> Self {
        self.color = Some(c.to_string());
        self
    }
}

/// A vertical line at a time, e.g. the end of warm-up or a scale event.
#[derive(Debug, Clone)]
pub struct Marker {
    pub t: f64,
    pub label: String,
    pub color: String,
    pub kind: MarkerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// Something that happened or was noted (dashed).
    Note,
    /// Something the run did to the servers (a `[[fault]]`): solid and heavier, so the eye finds
    /// the cause before the effects around it.
    Fault,
}

#[derive(Debug, Clone, Default)]
pub struct LineChart {
    pub title: String,
    pub y_label: String,
    pub x_label: String,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    /// Fixed x range (so several charts share one time axis); `None` fits the data.
    pub x_range: Option<(f64, f64)>,
}

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "Nice" tick values (1, 2, 5 × 10^k steps) covering `[lo, hi]` with about `n` ticks: round
/// numbers are what a reader can compare at a glance.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut v = first;
    while v <= hi + step * 1e-9 {
        // Avoid "-0" and float noise like 0.30000000000000004.
        ticks.push(((v / step).round() * step * 1e9).round() / 1e9 + 0.0);
        v += step;
    }
    ticks
}

/// Time ticks on clock-friendly steps (5 s, 15 s, 1 min, 5 min, ...), so labels read as times
/// rather than as "3:20".
pub fn time_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    const STEPS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 43200.0,
    ];
    if !lo.is_finite() || !hi.is_finite() || hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    match STEPS.iter().find(|s| **s >= raw) {
        Some(step) => {
            let mut v = (lo / step).ceil() * step;
            let mut out = Vec::new();
            while v <= hi + 1e-9 {
                out.push(v);
                v += step;
            }
            out
        }
        None => nice_ticks(lo, hi, n),
    }
}

/// Short labels: 1500 → "1.5k", 0.25 → "0.25".
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", trim(v / 1e9))
    } else if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Time labels: seconds below 2 minutes, else m:ss.
fn fmt_time(t: f64) -> String {
    if t.abs() < 120.0 {
        format!("{}s", trim(t))
    } else {
        let s = t.round() as i64;
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn color_of(s: &Series, i: usize) -> String {
    s.color
        .clone()
        .unwrap_or_else(|| PALETTE[i % PALETTE.len()].to_string())
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0).max(1e-12) * (WIDTH - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y0) / (self.y1 - self.y0).max(1e-12) * (HEIGHT - TOP - BOTTOM)
    }
}

/// Opens the `<svg>` with the data attributes tests and readers use, and draws the title.
fn open(out: &mut String, title: &str, kind: &str) {
    let t = escape(title);
    let _ = write!(
        out,
        r#"<svg class="chart" data-chart="{kind}" data-title="{t}" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r##"<title>{t}</title><rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="{LEFT}" y="20" font-size="15" font-weight="600" fill="#222">{t}</text>"##
    );
}

/// The legend, on one row under the title.
fn legend(out: &mut String, series: &[Series]) {
    let mut x = LEFT;
    for (i, s) in series.iter().enumerate() {
        let c = color_of(s, i);
        let dash = if s.dashed {
            r#" stroke-dasharray="6 3""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r##"<line x1="{x}" y1="38" x2="{}" y2="38" stroke="{c}" stroke-width="3"{dash}/><text x="{}" y="42" fill="#333">{}</text>"##,
            x + 22.0,
            x + 27.0,
            escape(&s.name)
        );
        // Approximate text width: enough for a legend, no font metrics needed.
        x += 27.0 + 7.0 * s.name.chars().count() as f64 + 18.0;
    }
}

fn no_data(out: &mut String) {
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#888" font-size="14">no data</text></svg>"##,
        WIDTH / 2.0,
        HEIGHT / 2.0
    );
}

/// Draws gridlines and tick labels; `xl` formats x ticks.
fn axes(
    out: &mut String,
    f: &Frame,
    xticks: &[(f64, String)],
    yticks: &[f64],
    x_label: &str,
    y_label: &str,
) {
    for y in yticks {
        let py = f.py(*y);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            fmt_num(*y)
        );
    }
    for (x, label) in xticks {
        let px = f.px(*x);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#f0f0f0"/><text x="{px:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 16.0,
            escape(label)
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#999"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#999"/>"##,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM
    );
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle" fill="#555">{}</text>"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        (TOP + HEIGHT - BOTTOM) / 2.0,
        escape(y_label)
    );
}

/// Polylines of each series; NaN breaks a line into segments.
fn lines(out: &mut String, f: &Frame, series: &[Series], map_x: impl Fn(f64) -> f64) {
    for (i, s) in series.iter().enumerate() {
        let c = color_of(s, i);
        let dash = if s.dashed {
            r#" stroke-dasharray="6 3""#
        } else {
            ""
        };
        let mut d = String::new();
        let mut pen_down = false;
        let mut last_y = None;
        for &(x, y) in &s.points {
            if !y.is_finite() || !x.is_finite() {
                pen_down = false;
                last_y = None;
                continue;
            }
            let (px, py) = (f.px(map_x(x)), f.py(y));
            if pen_down {
                if s.step
                    && let Some(ly) = last_y
                {
                    let _ = write!(d, "L{px:.1},{ly:.1}");
                }
                let _ = write!(d, "L{px:.1},{py:.1}");
            } else {
                let _ = write!(d, "M{px:.1},{py:.1}");
                pen_down = true;
            }
            last_y = Some(py);
        }
        let _ = write!(
            out,
            r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round"{dash}><title>{}</title></path>"#,
            escape(&s.name)
        );
        // A lone point has no line to show it: draw a dot.
        if s.points.iter().filter(|p| p.1.is_finite()).count() == 1 {
            let (x, y) = *s
                .points
                .iter()
                .find(|p| p.1.is_finite())
                .expect("one point");
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                f.px(map_x(x)),
                f.py(y)
            );
        }
    }
}

fn finite_ys(series: &[Series]) -> impl Iterator<Item = f64> + '_ {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
}

/// Y range from zero (rates and counts read best against zero) to a nice top.
fn y_range(series: &[Series]) -> (f64, f64, Vec<f64>) {
    let max = finite_ys(series).fold(0.0f64, f64::max);
    let min = finite_ys(series).fold(0.0f64, f64::min);
    let hi = if max <= min { min + 1.0 } else { max };
    let ticks = nice_ticks(min, hi, 5);
    let top = ticks.last().copied().unwrap_or(hi).max(hi);
    (min, top, ticks)
}

/// A time-series chart: several series on one time axis, with optional vertical markers.
pub fn line_chart(c: &LineChart) -> String {
    let mut out = String::new();
    open(&mut out, &c.title, "line");
    legend(&mut out, &c.series);
    let xs: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| p.1.is_finite()).map(|p| p.0))
        .collect();
    if xs.is_empty() {
        no_data(&mut out);
        return out;
    }
    let (x0, x1) = c.x_range.unwrap_or_else(|| {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, if hi > lo { hi } else { lo + 1.0 })
    });
    let (y0, y1, yticks) = y_range(&c.series);
    let f = Frame { x0, x1, y0, y1 };
    let xticks: Vec<(f64, String)> = time_ticks(x0, x1, 10)
        .into_iter()
        .map(|t| (t, fmt_time(t)))
        .collect();
    axes(&mut out, &f, &xticks, &yticks, &c.x_label, &c.y_label);
    // Markers under the data so lines stay readable; labels alternate rows to limit overlap.
    for (i, m) in c.markers.iter().enumerate() {
        if m.t < x0 || m.t > x1 {
            continue;
        }
        let px = f.px(m.t);
        let ly = TOP + 12.0 + (i % 3) as f64 * 13.0;
        let (lx, anchor) = if px > WIDTH - RIGHT - 150.0 {
            (px - 3.0, "end")
        } else {
            (px + 3.0, "start")
        };
        let (class, stroke) = match m.kind {
            MarkerKind::Note => ("marker", r#"stroke-width="1.5" stroke-dasharray="3 3""#),
            MarkerKind::Fault => ("marker fault", r#"stroke-width="2.5""#),
        };
        let _ = write!(
            out,
            r#"<g class="{class}"><line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="{}" {stroke}/><text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" fill="{}" font-size="11">{}</text><title>{} at {}</title></g>"#,
            HEIGHT - BOTTOM,
            m.color,
            m.color,
            escape(&m.label),
            escape(&m.label),
            fmt_time(m.t)
        );
    }
    lines(&mut out, &f, &c.series, |x| x);
    out.push_str("</svg>");
    out
}

/// The x position of a percentile on HdrHistogram's plot scale: log10(1 / (1 - p)), so 90 %,
/// 99 %, 99.9 % are evenly spaced and the tail (where latency problems live) gets the room.
pub fn percentile_x(percentile: f64) -> f64 {
    let q = (percentile / 100.0).clamp(0.0, 1.0);
    // 100 % would be infinitely far right: cap at 99.9999 %.
    (1.0 / (1.0 - q).max(1e-6)).log10()
}

/// A percentile distribution plot (x: percentile, log scale; y: milliseconds).
pub fn percentile_chart(title: &str, y_label: &str, series: &[Series]) -> String {
    let mut out = String::new();
    open(&mut out, title, "percentile");
    legend(&mut out, series);
    // HdrHistogram's curve ends at 100 %, infinitely far right on this scale: the axis ends one
    // decade after the last finite percentile instead, and the 100 % point is drawn there.
    let max_x = series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .filter(|p| p.0 < 100.0)
                .map(|p| percentile_x(p.0))
        })
        .fold(0.0f64, f64::max);
    if finite_ys(series).next().is_none() {
        no_data(&mut out);
        return out;
    }
    // Show at least up to 99.9 %, and whole decades ("nines") after that.
    let x1 = (max_x.floor() + 1.0).clamp(3.0, 6.0);
    let (y0, y1, yticks) = y_range(series);
    let f = Frame {
        x0: 0.0,
        x1,
        y0,
        y1,
    };
    let mut xticks = vec![(0.0, "0%".to_string()), (percentile_x(50.0), "50%".into())];
    for nines in 1..=(x1 as i32) {
        let p = 100.0 * (1.0 - 10f64.powi(-nines));
        xticks.push((nines as f64, format!("{}%", trim_pct(p))));
    }
    axes(&mut out, &f, &xticks, &yticks, "percentile", y_label);
    lines(&mut out, &f, series, |p| percentile_x(p).min(x1));
    out.push_str("</svg>");
    out
}

fn trim_pct(p: f64) -> String {
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_covering_the_range() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(0.0, 7.0, 5), [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(nice_ticks(0.0, 0.3, 3), [0.0, 0.1, 0.2, 0.3]);
        assert_eq!(nice_ticks(5.0, 5.0, 5), [5.0]);
    }

    #[test]
    fn time_ticks_use_clock_steps() {
        assert_eq!(
            time_ticks(0.0, 40.0, 10),
            [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]
        );
        assert_eq!(
            time_ticks(0.0, 1080.0, 10),
            [
                0.0, 120.0, 240.0, 360.0, 480.0, 600.0, 720.0, 840.0, 960.0, 1080.0
            ]
        );
        assert_eq!(time_ticks(0.0, 3000.0, 10)[1], 300.0);
    }

    #[test]
    fn percentile_axis_spaces_nines_evenly() {
        assert_eq!(percentile_x(0.0), 0.0);
        assert!((percentile_x(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_x(99.0) - 2.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 3.0).abs() < 1e-9);
        assert!((percentile_x(100.0) - 6.0).abs() < 1e-9);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(fmt_num(1500.0), "1500");
        assert_eq!(fmt_num(15000.0), "15k");
        assert_eq!(fmt_num(2.5e6), "2.5M");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_time(150.0), "2:30");
        assert_eq!(fmt_time(15.0), "15s");
    }

    #[test]
    fn line_chart_breaks_at_gaps_and_escapes_names() {
        let svg = line_chart(&LineChart {
            title: "A <b> & c".into(),
            series: vec![Series::new(
                "s<1>",
                vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)],
            )],
            markers: vec![
                Marker {
                    t: 1.0,
                    label: "scale".into(),
                    color: "red".into(),
                    kind: MarkerKind::Note,
                },
                Marker {
                    t: 2.0,
                    label: "fault: kill origin 0".into(),
                    color: "red".into(),
                    kind: MarkerKind::Fault,
                },
            ],
            ..Default::default()
        });
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"data-title="A &lt;b&gt; &amp; c""#));
        assert!(svg.contains("s&lt;1&gt;"));
        // Two separate line segments: two move-tos in the one path.
        let path = svg.split("<path d=\"").nth(1).unwrap();
        let d = &path[..path.find('"').unwrap()];
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert!(svg.contains(r#"class="marker""#));
        let fault = svg
            .split(r#"<g class="marker fault">"#)
            .nth(1)
            .expect("a fault marker");
        assert!(
            fault.contains(r#"stroke-width="2.5"/>"#)
                && fault.contains("fault: kill origin 0 at 2s"),
            "{fault}"
        );
    }

    #[test]
    fn empty_chart_says_no_data() {
        let svg = line_chart(&LineChart {
            title: "t".into(),
            ..Default::default()
        });
        assert!(svg.contains("no data") && svg.ends_with("</svg>"));
        assert!(percentile_chart("p", "ms", &[]).contains("no data"));
    }

    #[test]
    fn step_series_hold_their_value_until_the_next_sample() {
        let svg = line_chart(&LineChart {
            title: "r".into(),
            series: vec![Series::new("replicas", vec![(0.0, 1.0), (10.0, 3.0)]).step()],
            ..Default::default()
        });
        let path = svg.split("<path d=\"").nth(1).unwrap();
        let d = &path[..path.find('"').unwrap()];
        // M start, horizontal L at the old y, then the vertical L.
        assert_eq!(d.matches('L').count(), 2, "{d}");
    }
}
