//! `jielong bench embed --checkpoint DIR`: sentences per second of a sentence encoder at the
//! batch sizes and input lengths of the issue (batch 1 and 32; short texts of about 12 tokens,
//! long ones of about 128), through the same `Embedder` that `jielong embed` and the server's
//! `/v1/embeddings` use. `bench/embed_minilm.py` runs it beside sentence-transformers on the
//! same texts and threads.
//!
//! The texts are generated here, deterministically, from a fixed list of words, so the Python
//! side can write the same ones (see [`texts`]). A cell's figure is the median over rounds of
//! texts / seconds for embedding all of its texts, tokenization included, after a warm-up.

use super::embed::EncoderArgs;
use anyhow::Result;
use candle_core::Device;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_generate::Embedder;
use std::time::Instant;

#[derive(ClapArgs)]
pub struct EmbedArgs {
    /// An encoder checkpoint (a run folder or ckpt-NNNNNN folder), e.g. `jielong import
    /// --from data/minilm --out runs/minilm`; causal checkpoints embed too (mean of the last
    /// hidden states). Pooling and normalisation come from its sentence.json, as in `jielong embed`.
    #[arg(long)]
    pub checkpoint: std::path::PathBuf,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 32])]
    pub batch: Vec<usize>,
    /// Input lengths, comma-separated: short (about 12 tokens) and/or long (about 128).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["short".to_string(), "long".to_string()])]
    pub lengths: Vec<String>,
    /// Threads for the kernels (sets RAYON_NUM_THREADS; default: all CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Texts per cell: this many batches of each batch size (at least 16 texts).
    #[arg(long, default_value_t = 8)]
    pub batches: usize,
    /// Timed rounds per cell; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// One JSON line per cell instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The words the bench texts are made of (bench/embed_minilm.py has the same list).
const WORDS: &str = "the river starts high in the mountains where snow melts slowly through spring and early \
summer gathering small streams as it falls through pine forests narrow gorges and wide \
green valleys farmers along its banks have used its water for centuries building \
terraces mills and little wooden bridges every village keeps its own stories";

/// Words per text: with the index suffix and `[CLS]`/`[SEP]`, MiniLM's tokenizer reads about
/// 12 and 128 tokens.
fn words_for(length: &str) -> Result<usize, Error> {
    match length {
        "short" => Ok(6),
        "long" => Ok(118),
        other => Err(Error::input(format!("--lengths {other}: use short and/or long"))),
    }
}

/// `n` texts of `words` words: text i takes word (7i + 3j) mod |WORDS| as its j-th word, is
/// capitalised, and ends with " (i)." (the Python side builds the same strings).
pub fn texts(n: usize, words: usize) -> Vec<String> {
    let ws: Vec<&str> = WORDS.split_whitespace().collect();
    (0..n)
        .map(|i| {
            let body: Vec<&str> = (0..words).map(|j| ws[(i * 7 + j * 3) % ws.len()]).collect();
            let mut s = body.join(" ");
            s[..1].make_ascii_uppercase();
            format!("{s} ({i}).")
        })
        .collect()
}

pub fn run(a: EmbedArgs) -> Result<()> {
    if let Some(t) = a.threads {
        if t == 0 {
            return Err(Error::input("--threads must be at least 1").into());
        }
        // Before the first kernel: rayon's pool and candle read it once.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    if a.batch.is_empty() || a.batch.contains(&0) || a.rounds == 0 || a.batches == 0 {
        return Err(Error::input("--batch sizes, --batches and --rounds must be at least 1").into());
    }
    let lengths: Vec<(String, usize)> = a.lengths.iter().map(|l| Ok((l.clone(), words_for(l)?))).collect::<Result<_, Error>>()?;
    let loaded = EncoderArgs::defaults(&a.checkpoint).load()?;
    let enc = loaded.model.as_encoder().expect("checked by load");
    let threads = candle_core::utils::get_num_threads();
    if !a.json {
        println!("{} · {} · {threads} threads · tokenization included · median of {} rounds", a.checkpoint.display(), loaded.model.config().describe(), a.rounds);
        println!("| inputs | tokens | batch | texts | texts/s | ms/batch |");
        println!("|---|---|---|---|---|---|");
    }
    for (name, words) in &lengths {
        for &batch in &a.batch {
            let n = (batch * a.batches).max(16);
            let all = texts(n, *words);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let opts = jielong_generate::EmbedOptions { batch_size: batch, ..loaded.opts };
            let embedder = Embedder::new(enc, &loaded.tk, opts, &Device::Cpu)?;
            let tokens = refs.iter().map(|t| embedder.tokenize(t).map(|(ids, _)| ids.len())).sum::<jielong_core::Result<usize>>()? as f64 / n as f64;
            embedder.embed(&refs[..batch.min(n)], |_| {})?;
            let mut rates: Vec<f64> = (0..a.rounds)
                .map(|_| {
                    let t0 = Instant::now();
                    embedder.embed(&refs, |_| {})?;
                    Ok(n as f64 / t0.elapsed().as_secs_f64().max(1e-9))
                })
                .collect::<Result<_>>()?;
            rates.sort_by(f64::total_cmp);
            let rate = rates[rates.len() / 2];
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "bench": "embed", "inputs": name, "mean_tokens": (tokens * 10.0).round() / 10.0, "batch": batch, "texts": n,
                        "threads": threads, "texts_per_s": (rate * 10.0).round() / 10.0, "rounds": rates,
                    })
                );
            } else {
                println!("| {name} | {tokens:.1} | {batch} | {n} | {rate:.1} | {:.1} |", 1000.0 * batch as f64 / rate);
            }
        }
    }
    Ok(())
}
