//! SVG charts of training curves: one panel per quantity, each with its own labelled axis,
//! ticks and grid, and a marker at every epoch (so a one-epoch run shows its points).

/// Colours that stay apart for up to ten runs (then repeat).
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// One curve: its name, colour and one value per epoch (NaN where there is none).
pub struct Curve {
    /// Legend text.
    pub name: String,
    /// Stroke colour.
    pub colour: &'static str,
    /// Values, epoch 1 first.
    pub values: Vec<f64>,
}

/// One panel: the quantity on its y axis, whether that axis is [0, 1], and its curves.
pub struct Panel {
    /// The y axis' label.
    pub label: &'static str,
    /// Fix the axis to [0, 1] (accuracies).
    pub unit: bool,
    /// The curves drawn in it.
    pub curves: Vec<Curve>,
}

/// About five round tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label: short, without trailing noise.
fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A tick label with an SI prefix for large values (12.5M, not 1e7).
fn si(v: f64) -> String {
    let a = v.abs();
    let (div, unit) = match a {
        a if a >= 1e9 => (1e9, "G"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e4 => (1e3, "k"),
        _ => return label(v),
    };
    let s = format!("{:.2}", v / div);
    format!("{}{unit}", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Text made safe inside SVG.
fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart: `title` above panels stacked vertically, epochs 1..=n along every x axis.
pub fn svg(title: &str, panels: &[Panel]) -> String {
    let (w, ph, left, right, top) = (720.0, 220.0, 70.0, 170.0, 40.0);
    let h = top + ph * panels.len() as f64 + 10.0;
    let n = panels
        .iter()
        .flat_map(|p| p.curves.iter().map(|c| c.values.len()))
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |i: usize| {
        let span = w - left - right;
        if n == 1 {
            left + span / 2.0
        } else {
            left + span * i as f64 / (n - 1) as f64
        }
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"24\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    for (p, panel) in panels.iter().enumerate() {
        let (y0, y1) = (top + ph * p as f64 + 10.0, top + ph * (p + 1) as f64 - 40.0);
        let finite: Vec<f64> = panel
            .curves
            .iter()
            .flat_map(|c| c.values.iter().copied())
            .filter(|v| v.is_finite())
            .collect();
        let (lo, hi) = if panel.unit {
            (0.0, 1.0)
        } else {
            let hi = finite.iter().copied().fold(f64::MIN, f64::max);
            let lo = finite.iter().copied().fold(f64::MAX, f64::min).min(0.0);
            if finite.is_empty() {
                (0.0, 1.0)
            } else if hi > lo {
                (lo, hi)
            } else {
                (lo, lo + hi.abs().max(1.0))
            }
        };
        let marks = ticks(lo, hi);
        let (lo, hi) = (marks[0].min(lo), marks[marks.len() - 1].max(hi));
        let y = |v: f64| y1 - (y1 - y0) * ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        let x_end = w - right;
        // Grid and y ticks.
        for &t in &marks {
            out += &format!(
                "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{x_end}\" y2=\"{0:.1}\" stroke=\"#dddddd\"/>\n\
                 <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{3}</text>\n",
                y(t),
                left - 6.0,
                y(t) + 4.0,
                label(t)
            );
        }
        // x ticks: every epoch while they fit, else about ten.
        let every = n.div_ceil(10).max(1);
        for i in (0..n).step_by(every) {
            out += &format!(
                "<line x1=\"{0:.1}\" y1=\"{y1}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"black\"/>\n\
                 <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>\n",
                x(i),
                y1 + 4.0,
                y1 + 16.0,
                i + 1
            );
        }
        out += &format!(
            "<line x1=\"{left}\" y1=\"{y1}\" x2=\"{x_end}\" y2=\"{y1}\" stroke=\"black\"/>\n\
             <line x1=\"{left}\" y1=\"{y0}\" x2=\"{left}\" y2=\"{y1}\" stroke=\"black\"/>\n\
             <text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">epoch</text>\n\
             <text transform=\"translate(16,{2:.1}) rotate(-90)\" text-anchor=\"middle\">{3}</text>\n",
            (left + x_end) / 2.0,
            y1 + 30.0,
            (y0 + y1) / 2.0,
            escape(panel.label)
        );
        for (k, c) in panel.curves.iter().enumerate() {
            let pts: Vec<(f64, f64)> = c
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (x(i), y(v)))
                .collect();
            let line: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
            out += &format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                c.colour,
                line.join(" ")
            );
            for (a, b) in &pts {
                out += &format!(
                    "<circle cx=\"{a:.1}\" cy=\"{b:.1}\" r=\"3\" fill=\"{}\"/>\n",
                    c.colour
                );
            }
            out += &format!(
                "<line x1=\"{0}\" y1=\"{1:.1}\" x2=\"{2}\" y2=\"{1:.1}\" stroke=\"{3}\" stroke-width=\"2\"/>\n\
                 <text x=\"{4}\" y=\"{5:.1}\">{6}</text>\n",
                x_end + 14.0,
                y0 + 10.0 + 16.0 * k as f64,
                x_end + 34.0,
                c.colour,
                x_end + 40.0,
                y0 + 14.0 + 16.0 * k as f64,
                escape(&c.name)
            );
        }
    }
    out + "</svg>\n"
}

/// One point of a scatter: its coordinates, its label, and whether it is marked (drawn
/// filled and labelled; the others hollow).
pub struct Point {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// Its label.
    pub label: String,
    /// Marked (on the Pareto frontier).
    pub marked: bool,
}

/// A scatter chart: `title`, axes labelled `(x, y)` with ticks and grids, every point, the
/// marked ones filled, joined in order of x and labelled.
pub fn scatter(title: &str, (xl, yl): (&str, &str), points: &[Point]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 480.0, 80.0, 40.0, 50.0, 60.0);
    let span = |vs: Vec<f64>| {
        let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-12);
        (lo - pad, hi + pad)
    };
    let (x0, x1) = span(points.iter().map(|p| p.x).collect());
    let (y0, y1) = span(points.iter().map(|p| p.y).collect());
    let px = |x: f64| left + (w - left - right) * (x - x0) / (x1 - x0);
    let py = |y: f64| h - bottom - (h - top - bottom) * (y - y0) / (y1 - y0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"28\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    for t in ticks(x0, x1).into_iter().filter(|t| (x0..=x1).contains(t)) {
        let x = px(t);
        out.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e4e4e4\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            h - bottom,
            h - bottom + 16.0,
            si(t)
        ));
    }
    for t in ticks(y0, y1).into_iter().filter(|t| (y0..=y1).contains(t)) {
        let y = py(t);
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            w - right,
            left - 6.0,
            y + 4.0,
            si(t)
        ));
    }
    out.push_str(&format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#888\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">{}</text>\n",
        w - left - right,
        h - top - bottom,
        (left + w - right) / 2.0,
        h - 18.0,
        escape(xl),
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        escape(yl)
    ));
    let mut front: Vec<&Point> = points.iter().filter(|p| p.marked).collect();
    front.sort_by(|a, b| a.x.total_cmp(&b.x));
    if front.len() > 1 {
        let path: Vec<String> = front
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.x), py(p.y)))
            .collect();
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>\n",
            path.join(" ")
        ));
    }
    for p in points {
        let (x, y) = (px(p.x), py(p.y));
        if p.marked {
            // Labels alternate right-above and left of the point along the frontier, so
            // that neighbours part.
            let k = front.iter().position(|q| std::ptr::eq(*q, p)).unwrap_or(0);
            let fits = x + 7.0 + 7.0 * p.label.len() as f64 <= w;
            let (dx, dy, anchor) = match (k % 2, fits) {
                (0, true) => (7.0, -8.0, "start"),
                (0, false) => (-7.0, -8.0, "end"),
                _ => (-8.0, 4.0, "end"),
            };
            out.push_str(&format!(
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"#d62728\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#d62728\" text-anchor=\"{anchor}\">{}</text>\n",
                x + dx,
                y + dy,
                escape(&p.label)
            ));
        } else {
            let fits = x + 6.0 + 6.0 * p.label.len() as f64 <= w;
            out.push_str(&format!(
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"none\" stroke=\"#1f77b4\"><title>{t}</title></circle>\n\
                 <text x=\"{tx:.1}\" y=\"{ty:.1}\" fill=\"#1f77b4\" font-size=\"10\" text-anchor=\"{anchor}\">{t}</text>\n",
                t = escape(&p.label),
                tx = if fits { x + 6.0 } else { x - 6.0 },
                ty = y + 14.0,
                anchor = if fits { "start" } else { "end" },
            ));
        }
    }
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">filled: on the frontier (no run is better on both); hollow: dominated</text>\n</svg>\n",
        w - right,
        top - 6.0
    ));
    out
}

/// Writes the chart of `panels` under `title` to DIR/curves.svg (atomically) and says where
/// it and DIR/metrics.jsonl are.
pub fn write_curves(dir: &std::path::Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let p = dir.join("curves.svg");
    lowp::atomic_file::write_atomic(&p, svg(title, panels).as_bytes())
        .map_err(|e| format!("{}: {e}", p.display()))?;
    println!(
        "wrote {} and {}",
        dir.join("metrics.jsonl").display(),
        p.display()
    );
    Ok(())
}
