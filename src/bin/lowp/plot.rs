//! A small SVG line chart of training curves (no plotting dependency needed for two lines).

/// Writes curves (name, colour, values in [0, max]) over epochs 1..=n as an SVG document.
pub fn svg(title: &str, series: &[(&str, &str, Vec<f64>)]) -> String {
    let (w, h, pad) = (640.0, 360.0, 50.0);
    let n = series.iter().map(|s| s.2.len()).max().unwrap_or(1).max(2);
    let top = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1e-9f64, f64::max);
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v / top).clamp(0.0, 1.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{pad}\" y=\"24\" font-size=\"15\">{title}</text>\n"
    );
    out += &format!(
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - pad,
        w - pad,
        h - pad
    );
    out += &format!(
        "<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - pad
    );
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\n",
        w / 2.0,
        h - 12.0
    );
    out += &format!(
        "<text x=\"8\" y=\"{}\">{top:.3}</text>\n<text x=\"8\" y=\"{}\">0</text>\n",
        pad + 4.0,
        h - pad
    );
    for (k, (name, colour, values)) in series.iter().enumerate() {
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        out += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            pts.join(" ")
        );
        out += &format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>\n",
            w - pad - 140.0,
            pad + 16.0 * k as f64
        );
    }
    out + "</svg>\n"
}
