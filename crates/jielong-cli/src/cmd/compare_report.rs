//! What `jielong compare` writes: the table as Markdown (compare.md) and JSON (compare.json),
//! and the plot of validation loss against wall time (val_loss.svg: one line per trained
//! family, the n-gram model a dashed horizontal line, as it has no training curve). All three
//! are written atomically.

use jielong_core::Result;
use std::path::Path;

/// One family's row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub family: String,
    /// Parameters (the n-gram model: stored n-grams).
    pub params: usize,
    /// Seconds of training (the n-gram model: counting and estimating).
    pub train_s: f64,
    /// Training tokens per second.
    pub tokens_per_s: f64,
    /// Optimizer steps (0 for the n-gram model).
    pub steps: u64,
    /// Validation cross-entropy, nats per token.
    pub val_loss: f64,
    pub perplexity: f64,
    pub bits_per_byte: f64,
    /// The run folder (or model file) it left.
    pub run: String,
}

/// One line of the plot: (seconds, validation loss) points, or a flat line for a model
/// that has no training curve.
pub struct Series {
    pub family: String,
    pub points: Vec<(f64, f64)>,
    pub flat: Option<f64>,
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("| family | parameters | training time | tokens/s | validation perplexity | bits per byte |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.1} s | {:.0} | {:.2} | {:.4} |\n",
            r.family, r.params, r.train_s, r.tokens_per_s, r.perplexity, r.bits_per_byte
        ));
    }
    s
}

/// Write compare.md, compare.json and val_loss.svg into `dir`; returns the Markdown table.
pub fn write_report(dir: &Path, rows: &[Row], series: &[Series], target_params: usize, context: &str, command: &str) -> Result<String> {
    let table = markdown(rows);
    let md = format!(
        "# jielong compare\n\n{table}\n{context}. Neural families sized to about {target_params} parameters; \
the n-gram row counts stored n-grams. Perplexity is per token of the shared tokenizer; bits per byte divide by the \
validation text's UTF-8 bytes.\n\n```\n{command}\n```\n\n![validation loss against wall time](val_loss.svg)\n"
    );
    jielong_core::fs::write_atomic(&dir.join("compare.md"), md.as_bytes())?;
    let json = serde_json::json!({ "target_params": target_params, "setup": context, "command": command, "rows": rows });
    jielong_core::fs::write_json_atomic(&dir.join("compare.json"), &json)?;
    jielong_core::fs::write_atomic(&dir.join("val_loss.svg"), plot_svg(series, &LOSS_AXES).as_bytes())?;
    Ok(table)
}

/// What a plot's axes say.
pub struct Axes<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
    /// A fixed y range (None: fitted to the values).
    pub y_range: Option<(f64, f64)>,
}

/// The axes of `jielong compare`'s language-model plot.
pub const LOSS_AXES: Axes<'static> = Axes { title: "validation loss against wall time", x: "wall time (s)", y: "nats/token", y_range: None };

const COLORS: [&str; 6] = ["#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];

/// One coloured line per series (validation loss against wall time, or exact match against
/// source length), flat series as dashed horizontal lines.
pub fn plot_svg(series: &[Series], axes: &Axes) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 64.0, 130.0, 36.0, 48.0);
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1).chain(s.flat)).filter(|v| v.is_finite());
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = axes.y_range.unwrap_or((lo - pad, hi + pad));
    // The x axis starts at 0.
    let t_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.0f64, f64::max).max(1e-9);
    let x = |t: f64| left + t / t_max * (w - left - right);
    let y = |v: f64| top + (hi - v) / (hi - lo) * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"'Noto Sans CJK SC','Noto Sans',sans-serif\" font-size=\"12\">\n\
<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
<text x=\"{left}\" y=\"22\" font-size=\"15\">{}</text>\n",
        super::attention::xml_escape(axes.title)
    );
    // Axes with five ticks each.
    s.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    ));
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let (t, v) = (f * t_max, lo + f * (hi - lo));
        s.push_str(&format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.0}</text>\n", x(t), h - bottom + 16.0));
        s.push_str(&format!("<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>\n", left - 6.0, y(v) + 4.0));
    }
    s.push_str(&format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (left + w - right) / 2.0, h - 10.0, super::attention::xml_escape(axes.x)));
    s.push_str(&format!("<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">{}</text>\n", (top + h - bottom) / 2.0, (top + h - bottom) / 2.0, super::attention::xml_escape(axes.y)));
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        match ser.flat {
            Some(v) => s.push_str(&format!(
                "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n",
                y(v),
                w - right,
                y(v)
            )),
            None => {
                let pts: Vec<String> = ser.points.iter().filter(|p| p.1.is_finite()).map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect();
                s.push_str(&format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n", pts.join(" ")));
                for p in &pts {
                    let (px, py) = p.split_once(',').expect("x,y");
                    s.push_str(&format!("<circle cx=\"{px}\" cy=\"{py}\" r=\"2.5\" fill=\"{color}\"/>\n"));
                }
            }
        }
        let ly = top + 16.0 + 18.0 * i as f64;
        s.push_str(&format!("<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\n", w - right + 12.0, w - right + 34.0));
        s.push_str(&format!("<text x=\"{}\" y=\"{}\">{}</text>\n", w - right + 40.0, ly + 4.0, super::attention::xml_escape(&ser.family)));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_svg_draws_one_line_per_family_and_the_flat_baseline() {
        let series = vec![
            Series { family: "ngram".into(), points: vec![], flat: Some(5.0) },
            Series { family: "lstm".into(), points: vec![(1.0, 7.0), (2.0, 6.0), (3.0, 5.5)], flat: None },
            Series { family: "gpt".into(), points: vec![(1.5, 6.5), (3.0, 4.5)], flat: None },
        ];
        let svg = plot_svg(&series, &LOSS_AXES);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains(">lstm<") && svg.contains(">ngram<"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn markdown_has_one_row_per_family() {
        let row = |f: &str| Row { family: f.into(), params: 1000, train_s: 2.0, tokens_per_s: 500.0, steps: 4, val_loss: 5.0, perplexity: 148.41, bits_per_byte: 2.5, run: String::new() };
        let md = markdown(&[row("gru"), row("llama")]);
        assert_eq!(md.lines().count(), 4);
        assert!(md.contains("| gru | 1000 | 2.0 s | 500 | 148.41 | 2.5000 |"));
    }
}
