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
///
/// The kept lines are copied as they are, byte for byte: each is parsed only to read its step,
/// never written back from the parsed values, so no digit of a loss before the checkpoint can
/// change (and fields another version wrote survive). Lines that are not a JSON object with a
/// step (one cut short by a crash) are dropped.
pub fn truncate_after(path: &Path, step: u64) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Step {
        step: u64,
    }
    if !path.exists() {
        return Ok(());
    }
    let bytes = std::fs::read(path).at(path)?;
    let mut kept = Vec::with_capacity(bytes.len());
    for line in bytes.split(|&b| b == b'\n') {
        if serde_json::from_slice::<Step>(line).is_ok_and(|r| r.step <= step) {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
    }
    jielong_core::fs::write_atomic(path, &kept)
}

pub fn append(path: &Path, row: &MetricRow) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).at(path)?;
    writeln!(f, "{}", serde_json::to_string(row).expect("row serializes")).at(path)
}

/// `append`, with a sentence task's figures as further fields: `{prefix}mlm_loss`,
/// `{prefix}nsp_loss` / `sop_loss` and `{prefix}nsp_acc` / `sop_acc` (prefix "" for a training
/// step, "val_" for an evaluation).
pub fn append_with_pairs(path: &Path, row: &MetricRow, task: Option<jielong_models::SentenceTask>, pair: Option<&crate::sentence::PairStats>, prefix: &str) -> Result<()> {
    let (Some(task), Some(p)) = (task, pair) else { return append(path, row) };
    let mut v = serde_json::to_value(row).expect("row serializes");
    let name = task.name();
    v[format!("{prefix}mlm_loss")] = p.mlm_loss.into();
    v[format!("{prefix}{name}_loss")] = p.pair_loss.into();
    v[format!("{prefix}{name}_acc")] = p.accuracy().into();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).at(path)?;
    writeln!(f, "{v}").at(path)
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

    /// Resuming must not touch the rows it keeps: not one digit of a loss may change.
    #[test]
    fn metrics_truncate_keeps_lines_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        // Full-precision f64s of every size (as real losses, rates and timings are): 17
        // significant digits, which a parser that is not correctly rounded gets wrong by an ulp
        // for some of them.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state
        };
        let mut value = || {
            let x = next();
            let exponent = 1023 - 30 + (x >> 58); // 2^-30 ..= 2^33
            f64::from_bits((exponent << 52) | (next() >> 12))
        };
        for step in 1..=400u64 {
            let row = MetricRow {
                step,
                loss: Some(value()),
                val_loss: (step % 5 == 0).then(&mut value),
                lr: Some(value()),
                grad_norm: Some(value()),
                tokens_per_s: Some(value()),
                tokens_seen: step * 4096,
                elapsed_s: value(),
            };
            append(&p, &row).unwrap();
        }
        // A row written by another version, with a field this one does not know and the
        // fields in another order: it too is kept exactly as it was.
        let foreign = r#"{"tokens_seen":1,"step":250,"elapsed_s":1.5,"note":"kept as is","loss":2.5}"#;
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str(foreign);
        text.push('\n');
        // A line cut short by a crash: not a row, dropped.
        text.push_str("{\"step\":401,\"loss\":1.2");
        std::fs::write(&p, &text).unwrap();

        truncate_after(&p, 300).unwrap();
        let expected: String = text.lines().take(300).chain([foreign]).map(|l| format!("{l}\n")).collect();
        let kept = std::fs::read_to_string(&p).unwrap();
        let differ = kept.lines().zip(expected.lines()).filter(|(a, b)| a != b).count();
        assert!(kept == expected, "{differ} kept lines changed, e.g. {:?}", kept.lines().zip(expected.lines()).find(|(a, b)| a != b));
        assert_eq!(read(&p).len(), 301);
        // Truncating again at the same step changes nothing.
        truncate_after(&p, 300).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), expected);
    }
}
