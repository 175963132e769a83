//! `jielong attention --checkpoint DIR --input TEXT --out map.svg`: decode TEXT with a seq2seq
//! checkpoint and draw its cross-attention as a heat map: one row per output token (the
//! weights it read the source with when it was written; the last row writes the end token),
//! one column per source token, darker = more weight. A well-trained reversal model draws the
//! anti-diagonal; a date or number model shows which source digits each word came from.
//!
//! With a GPT or Llama checkpoint it draws causal self-attention instead: `--layer L --head H`
//! (default: the last layer, head 0; `--head all` draws every head of the layer side by side),
//! rows the prompt's tokens as queries, columns the same tokens as keys, nothing above the
//! diagonal. The weights come from the model's explicit decoding path (softmax(q·kᵀ/√d) with the
//! causal mask, kept per layer), not from the fused training kernels, which never store them.
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
    /// gpt/llama: the layer to draw, from 0 (default: the last).
    #[arg(long)]
    pub layer: Option<usize>,
    /// gpt/llama: the head to draw, from 0, or `all` for every head of the layer (default: 0).
    #[arg(long)]
    pub head: Option<String>,
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
        return self_attention(&a, &ckpt, &*model);
    };
    if a.layer.is_some() || a.head.is_some() {
        return Err(Error::input(format!("--layer and --head pick a self-attention map of a gpt or llama model; {} is a seq2seq model with one cross-attention: leave them out", ckpt.dir.display())).into());
    }
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
    let svg = heatmap_svg(&title, &rows, &cols, &weights, "rows: output tokens · columns: source tokens");
    jielong_core::fs::write_atomic(&a.out, svg.as_bytes())?;
    println!("{} → {}", a.input, text);
    println!("wrote {} ({} output × {} source tokens)", a.out.display(), rows.len(), cols.len());
    Ok(())
}

/// Which heads `--head` asks for.
fn parse_heads(head: Option<&str>, n_head: usize) -> Result<Vec<usize>, Error> {
    match head {
        None => Ok(vec![0]),
        Some("all") => Ok((0..n_head).collect()),
        Some(h) => match h.parse::<usize>() {
            Ok(i) if i < n_head => Ok(vec![i]),
            _ => Err(Error::input(format!("--head {h}: the layer has {n_head} heads: give 0 to {} or `all`", n_head - 1))),
        },
    }
}

/// A GPT or Llama checkpoint: draw the causal self-attention of one layer over the prompt.
fn self_attention(a: &Args, ckpt: &Checkpoint, model: &dyn jielong_models::Model) -> Result<()> {
    let not_drawn = || {
        Error::input(format!(
            "{} holds a {} model, which has no attention to draw: `jielong attention` draws gpt/llama self-attention and seq2seq cross-attention",
            ckpt.dir.display(),
            ckpt.meta.family
        ))
    };
    if a.target.is_some() {
        return Err(Error::input("--target applies to seq2seq checkpoints: a gpt/llama map is drawn over --input itself").into());
    }
    let lm = model.as_causal_lm().ok_or_else(not_drawn)?;
    let tk = ckpt.load_tokenizer(None)?;
    let ids = tk.encode(&a.input)?;
    let max = lm.max_seq_len();
    if ids.is_empty() || ids.len() > max {
        return Err(Error::input(format!("--input is {} tokens; the model reads 1 to {max}", ids.len())).into());
    }
    let maps = lm.attention_maps(&ids)?.ok_or_else(not_drawn)?;
    let n_layer = maps.len();
    let layer = a.layer.unwrap_or(n_layer - 1);
    if layer >= n_layer {
        return Err(Error::input(format!("--layer {layer}: the model has {n_layer} layers: give 0 to {}", n_layer - 1)).into());
    }
    let map = maps[layer].to_vec3::<f32>()?; // (h, t, t)
    let heads = parse_heads(a.head.as_deref(), map.len())?;
    let eos = tk.eot_id().unwrap_or(u32::MAX);
    let labels: Vec<String> = ids.iter().map(|&id| label(&tk, id, eos)).collect();
    let caption = "rows: tokens (queries) · columns: the tokens they attend to (keys)";
    let family = &ckpt.meta.family;
    let panels: Vec<String> = heads
        .iter()
        .map(|&h| heatmap_svg(&format!("{family} · layer {layer} · head {h}"), &labels, &labels, &map[h], caption))
        .collect();
    let svg = if panels.len() == 1 { panels.into_iter().next().expect("one") } else { grid_svg(&format!("{} · {family} · layer {layer} · all {} heads", a.input, heads.len()), &panels) };
    jielong_core::fs::write_atomic(&a.out, svg.as_bytes())?;
    let which = if heads.len() == 1 { format!("head {}", heads[0]) } else { format!("{} heads", heads.len()) };
    println!("wrote {} ({family} layer {layer} of 0–{}, {which}, {} × {} tokens)", a.out.display(), n_layer - 1, labels.len(), labels.len());
    Ok(())
}

/// The `width` and `height` attributes of an SVG made by [`heatmap_svg`].
fn svg_size(svg: &str) -> (usize, usize) {
    let attr = |name: &str| -> usize {
        svg.split_once(&format!(" {name}=\"")).and_then(|(_, rest)| rest.split('"').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    (attr("width"), attr("height"))
}

/// Heat maps side by side, up to four per row, under one title (each panel a nested <svg>).
pub fn grid_svg(title: &str, panels: &[String]) -> String {
    const PER_ROW: usize = 4;
    let sizes: Vec<(usize, usize)> = panels.iter().map(|p| svg_size(p)).collect();
    let cell_w = sizes.iter().map(|s| s.0).max().unwrap_or(0);
    let cell_h = sizes.iter().map(|s| s.1).max().unwrap_or(0);
    let cols = panels.len().clamp(1, PER_ROW);
    let rows = panels.len().div_ceil(PER_ROW);
    let (width, height) = (cols * cell_w, 36 + rows * cell_h);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
font-family=\"'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei','Noto Sans',sans-serif\" font-size=\"13\">\n"
    );
    s.push_str(&format!("<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"));
    s.push_str(&format!("<text x=\"12\" y=\"24\" font-size=\"16\">{}</text>\n", xml_escape(title)));
    for (i, panel) in panels.iter().enumerate() {
        let (x, y) = ((i % PER_ROW) * cell_w, 36 + (i / PER_ROW) * cell_h);
        // The panel's own root element, placed: `<svg xmlns=… ` → `<svg x=… y=… `.
        s.push_str(&panel.replacen("<svg xmlns=\"http://www.w3.org/2000/svg\"", &format!("<svg x=\"{x}\" y=\"{y}\""), 1));
    }
    s.push_str("</svg>\n");
    s
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
/// `caption` says what the rows and columns are.
pub fn heatmap_svg(title: &str, rows: &[String], cols: &[String], weights: &[Vec<f32>], caption: &str) -> String {
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
    s.push_str(&format!("<text x=\"{left}\" y=\"{}\" fill=\"#555555\">{}</text>\n", top + rows.len() * CELL + 24, xml_escape(caption)));
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
        let svg = heatmap_svg("x < y & 两千", &rows, &cols, &w, "rows · columns");
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

    #[test]
    fn grid_svg_places_every_panel_inside_one_root() {
        let labels = vec!["注意".to_string(), "力".to_string()];
        let w = vec![vec![1.0, 0.0], vec![0.4, 0.6]];
        let panels: Vec<String> = (0..5).map(|h| heatmap_svg(&format!("head {h}"), &labels, &labels, &w, "q · k")).collect();
        let (pw, ph) = svg_size(&panels[0]);
        assert!(pw > 0 && ph > 0);
        let grid = grid_svg("all heads", &panels);
        assert_eq!(grid.matches("xmlns=").count(), 1, "one root element");
        assert_eq!(grid.matches("<svg").count(), 6);
        assert_eq!(grid.matches("</svg>").count(), 6);
        assert_eq!(svg_size(&grid), (4 * pw, 36 + 2 * ph), "four panels per row, two rows");
        assert!(grid.contains(&format!("<svg x=\"0\" y=\"{}\"", 36 + ph)), "the fifth panel starts the second row");
        assert_eq!(grid.matches("<title>").count(), 5 * 4);
    }

    #[test]
    fn parse_heads_rejects_heads_the_layer_lacks() {
        assert_eq!(parse_heads(None, 4).unwrap(), vec![0]);
        assert_eq!(parse_heads(Some("all"), 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_heads(Some("2"), 4).unwrap(), vec![2]);
        for bad in ["4", "-1", "x"] {
            let e = parse_heads(Some(bad), 4).unwrap_err().to_string();
            assert!(e.contains("0 to 3") && !e.contains('\n'), "{e}");
        }
    }
}
