//! `jielong attention --checkpoint DIR --input TEXT --out map.svg`: decode TEXT with a seq2seq
//! checkpoint and draw its cross-attention as a heat map: one row per output token (the
//! weights it read the source with when it was written; the last row writes the end token),
//! one column per source token, darker = more weight. A well-trained reversal model draws the
//! anti-diagonal; a date or number model shows which source digits each word came from.
//!
//! The SVG is written atomically; labels are XML-escaped, and the fonts asked for cover
//! Chinese (Noto Sans CJK / Source Han Sans / PingFang / Microsoft YaHei).

use anyhow::Result;
use candle_core::Device;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_generate::seq2seq::{decode_batch, Seq2seqDecode};
use jielong_tokenizer::Tokenizer;
use jielong_train::Checkpoint;
use std::path::PathBuf;

#[derive(ClapArgs)]
pub struct Args {
    /// A seq2seq run folder or ckpt-NNNNNN folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The source text to decode.
    #[arg(long)]
    pub input: String,
    /// The SVG file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Draw the attention of this output instead of the model's own (teacher forcing).
    #[arg(long)]
    pub target: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    if a.input.trim().is_empty() {
        return Err(Error::input("--input is empty: give the source text to decode").into());
    }
    if a.out.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(Error::input(format!("--out {}: the heat map is an SVG file; name it *.svg", a.out.display())).into());
    }
    let ckpt = Checkpoint::open(&a.checkpoint)?;
    let model = ckpt.load_model(&Device::Cpu)?;
    let Some(s2s) = model.as_seq2seq() else {
        return Err(Error::input(format!(
            "{} holds a {} model: `jielong attention` draws the cross-attention of a seq2seq model (self-attention maps of gpt/llama are not drawn yet)",
            ckpt.dir.display(),
            ckpt.meta.family
        ))
        .into());
    };
    let tk = ckpt.load_tokenizer(None)?;
    let eos = tk.eot_id().ok_or_else(|| Error::input("the run's tokenizer has no <|endoftext|> token"))?;
    let src = tk.encode(&a.input)?;
    let max = ckpt.meta.model.max_seq_len();
    if src.is_empty() || src.len() > max {
        return Err(Error::input(format!("--input is {} tokens; the model reads 1 to {max}", src.len())).into());
    }
    let out = match &a.target {
        Some(t) => tk.encode(t)?,
        None => decode_batch(s2s, std::slice::from_ref(&src), &Seq2seqDecode { bos: eos, eos, max_tokens: max, beams: 1 })?.remove(0),
    };
    let tgt_in: Vec<u32> = std::iter::once(eos).chain(out.iter().copied()).collect();
    let Some(w) = s2s.attention_weights(&src, &tgt_in)? else {
        return Err(Error::input(format!(
            "{} was trained with attention = \"none\": every output step reads the same fixed context vector, there are no weights to draw",
            ckpt.dir.display()
        ))
        .into());
    };
    let weights = w.to_vec2::<f32>()?;
    let cols: Vec<String> = src.iter().map(|&id| label(&tk, id, eos)).collect();
    let rows: Vec<String> = out.iter().chain(std::iter::once(&eos)).map(|&id| label(&tk, id, eos)).collect();
    let text = tk.decode(&out)?;
    let title = format!("{} → {}  ({} attention)", a.input, text, attention_name(&ckpt.meta.model.to_json()));
    let svg = heatmap_svg(&title, &rows, &cols, &weights);
    jielong_core::fs::write_atomic(&a.out, svg.as_bytes())?;
    println!("{} → {}", a.input, text);
    println!("wrote {} ({} output × {} source tokens)", a.out.display(), rows.len(), cols.len());
    Ok(())
}

fn attention_name(model: &serde_json::Value) -> String {
    model.get("attention").and_then(|v| v.as_str()).unwrap_or("?").to_string()
}

/// A token as people read it: spaces as ␣, the end token as </s>.
fn label(tk: &Tokenizer, id: u32, eos: u32) -> String {
    if id == eos {
        return "</s>".into();
    }
    let piece = tk.id_to_piece(id).unwrap_or_default();
    let text = tk.piece_text(&piece);
    if text.is_empty() { format!("#{id}") } else { text.replace(' ', "␣") }
}

/// Escape text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Approximate width in pixels of `s` at 13 px (CJK and other wide characters count double).
fn text_width(s: &str) -> usize {
    s.chars().map(|c| if (c as u32) >= 0x2e80 { 14 } else { 8 }).sum()
}

/// A heat map: `weights[r][c]` in [0, 1], rows labelled on the left, columns on top.
pub fn heatmap_svg(title: &str, rows: &[String], cols: &[String], weights: &[Vec<f32>]) -> String {
    const CELL: usize = 28;
    let left = rows.iter().map(|r| text_width(r)).max().unwrap_or(0) + 16;
    let top = cols.iter().map(|c| text_width(c)).max().unwrap_or(0) * 3 / 4 + 56;
    let width = (left + cols.len() * CELL + 90).max(text_width(title) + 24);
    let height = top + rows.len() * CELL + 40;
    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
font-family=\"'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei','Noto Sans',sans-serif\" font-size=\"13\">\n"
    ));
    s.push_str(&format!("<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"));
    s.push_str(&format!("<text x=\"12\" y=\"22\" font-size=\"15\">{}</text>\n", xml_escape(title)));
    let color = |w: f32| {
        let w = w.clamp(0.0, 1.0);
        let mix = |a: f32, b: f32| (a + (b - a) * w).round() as u8;
        format!("#{:02x}{:02x}{:02x}", mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
    };
    for (c, label) in cols.iter().enumerate() {
        let x = left + c * CELL + CELL / 2;
        s.push_str(&format!(
            "<text x=\"{x}\" y=\"{}\" transform=\"rotate(-45 {x} {})\">{}</text>\n",
            top - 6,
            top - 6,
            xml_escape(label)
        ));
    }
    for (r, label) in rows.iter().enumerate() {
        let y = top + r * CELL;
        s.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 8, y + CELL / 2 + 5, xml_escape(label)));
        for (c, col) in cols.iter().enumerate() {
            let w = weights.get(r).and_then(|row| row.get(c)).copied().unwrap_or(0.0);
            s.push_str(&format!(
                "<rect x=\"{}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" fill=\"{}\" stroke=\"#eeeeee\"><title>{} → {}: {w:.3}</title></rect>\n",
                left + c * CELL,
                color(w),
                xml_escape(label),
                xml_escape(col)
            ));
        }
    }
    // The colour scale.
    let sx = left + cols.len() * CELL + 24;
    for i in 0..10 {
        let w = 1.0 - i as f32 / 9.0;
        s.push_str(&format!("<rect x=\"{sx}\" y=\"{}\" width=\"14\" height=\"12\" fill=\"{}\"/>\n", top + i * 12, color(w)));
    }
    s.push_str(&format!("<text x=\"{}\" y=\"{}\">1</text>\n", sx + 20, top + 10));
    s.push_str(&format!("<text x=\"{}\" y=\"{}\">0</text>\n", sx + 20, top + 118));
    s.push_str(&format!("<text x=\"{left}\" y=\"{}\" fill=\"#555555\">rows: output tokens · columns: source tokens</text>\n", top + rows.len() * CELL + 24));
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_svg_escapes_labels_and_draws_every_cell() {
        let rows = vec!["<b>".to_string(), "两".to_string()];
        let cols = vec!["a&b".to_string(), "\"q\"".to_string(), "千".to_string()];
        let w = vec![vec![0.9, 0.1, 0.0], vec![0.0, 0.2, 0.8]];
        let svg = heatmap_svg("x < y & 两千", &rows, &cols, &w);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("&lt;b&gt;") && svg.contains("a&amp;b") && svg.contains("&quot;q&quot;") && svg.contains("x &lt; y &amp; 两千"));
        assert!(!svg.contains("<b>") && !svg.contains("a&b"), "raw labels leak into the markup");
        assert!(svg.contains("Noto Sans CJK SC"), "a font that covers Chinese is asked for");
        assert_eq!(svg.matches("<title>").count(), 6, "one cell per (row, column)");
        assert!(svg.contains("fill=\"#08306b\"") || svg.contains("0.900"), "strong weights are dark");
        // Every element opened is closed (a cheap well-formedness check).
        assert_eq!(svg.matches("<rect").count(), svg.matches("/>").count() + svg.matches("</rect>").count());
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }
}
