//! `metrics.jsonl` (one JSON object per logged step or evaluation) and `loss.svg`, a plot of
//! training and validation loss a person can open in any browser.

use jielong_core::error::IoContext;
use jielong_core::Result;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MetricRow {
    pub step: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
}

/// Read the rows of a metrics file (missing file: none).
pub fn read(path: &Path) -> Vec<MetricRow> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Keep only rows up to `step` (used when a run resumes from an earlier checkpoint).
pub fn truncate_after(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: String = read(path)
        .into_iter()
        .filter(|r| r.step <= step)
        .map(|r| serde_json::to_string(&r).expect("row serializes") + "\n")
        .collect();
    jielong_core::fs::write_atomic(path, kept.as_bytes())
}

pub fn append(path: &Path, row: &MetricRow) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).at(path)?;
    writeln!(f, "{}", serde_json::to_string(row).expect("row serializes")).at(path)
}

/// Draw train loss (line) and validation loss (dots and line) against step as SVG.
pub fn plot_svg(rows: &[MetricRow], baseline: Option<f64>) -> String {
    let (w, h, pad) = (720.0, 420.0, 56.0);
    let train: Vec<(f64, f64)> = rows.iter().filter_map(|r| r.loss.map(|l| (r.step as f64, l))).collect();
    let val: Vec<(f64, f64)> = rows.iter().filter_map(|r| r.val_loss.map(|l| (r.step as f64, l))).collect();
    let all: Vec<f64> = train.iter().chain(&val).map(|p| p.1).chain(baseline).filter(|v| v.is_finite()).collect();
    let max_step = train.iter().chain(&val).map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if all.is_empty() { (0.0, 1.0) } else { (lo.min(hi - 1e-6) * 0.95, hi * 1.02) };
    let x = |s: f64| pad + (s / max_step) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad);
    let path = |pts: &[(f64, f64)]| -> String {
        pts.iter().enumerate().map(|(i, &(s, v))| format!("{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, x(s), y(v))).collect()
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">loss (nats per token) by step</text>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#333\"/>\n",
        w / 2.0, h - pad, w - pad, h - pad, h - pad
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        svg += &format!("<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>\n", pad - 6.0, y(v) + 4.0);
        let s = max_step * i as f64 / 4.0;
        svg += &format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{s:.0}</text>\n", x(s), h - pad + 18.0);
    }
    if let Some(b) = baseline.filter(|b| b.is_finite()) {
        svg += &format!(
            "<line x1=\"{pad}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#999\" stroke-dasharray=\"6 4\"/>\n<text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\" fill=\"#666\">unigram baseline {b:.2}</text>\n",
            y(b), w - pad, y(b) - 6.0
        );
    }
    if !train.is_empty() {
        svg += &format!("<path d=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n", path(&train));
    }
    if !val.is_empty() {
        svg += &format!("<path d=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n", path(&val));
        for &(s, v) in &val {
            svg += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#d62728\"/>\n", x(s), y(v));
        }
    }
    svg += &format!(
        "<text x=\"{0}\" y=\"44\" fill=\"#1f77b4\">— train</text><text x=\"{0}\" y=\"60\" fill=\"#d62728\">● validation</text>\n</svg>\n",
        w - pad - 90.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_truncate_and_plot() {
        let dir = std::env::temp_dir().join(format!("jl-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("metrics.jsonl");
        for step in 1..=5 {
            let row = MetricRow { step, loss: Some(5.0 - step as f64 * 0.5), val_loss: (step % 2 == 0).then_some(4.0), lr: None, grad_norm: None, tokens_per_s: None, tokens_seen: step * 10, elapsed_s: 0.0 };
            append(&p, &row).unwrap();
        }
        truncate_after(&p, 3).unwrap();
        let rows = read(&p);
        assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2, 3]);
        let svg = plot_svg(&rows, Some(4.5));
        assert!(svg.starts_with("<svg") && svg.contains("<path") && svg.contains("circle") && svg.contains("unigram"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
