//! `jielong generate` (alias `sample`): continue a prompt with a trained checkpoint, greedy,
//! sampled through the sampler chain, or by beam search; `--explain` shows the chain at work,
//! `--compare` lines strategies up side by side with their repetition measures.

use anyhow::Result;
use candle_core::Device;
use clap::{Args as ClapArgs, ValueEnum};
use jielong_core::Error;
use jielong_generate::repetition::{measure, Repetition};
use jielong_generate::sampler::{Chain, SamplingConfig};
use jielong_generate::{beam_search, generate, BeamOptions, Engine, GenOptions, StreamText};
use jielong_models::{CausalLm, Model};
use jielong_tokenizer::Tokenizer;
use jielong_train::Checkpoint;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Which checkpoint and tokenizer to load.
#[derive(ClapArgs, Clone)]
pub struct ModelArgs {
    /// A run folder (its latest checkpoint), a ckpt-NNNNNN folder, or an n-gram model file
    /// trained with `jielong ngram train --units tokens`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Use this tokenizer instead of the run's own (it must be the same one).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Recompute the whole context for every token instead of caching keys and values
    /// (slower; for comparison).
    #[arg(long)]
    pub no_cache: bool,
    /// An adapter folder (`jielong sft --regime lora|prefix|prompt`, PEFT layout) to apply to the
    /// checkpoint it was trained on; its chat template comes with it.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

pub struct Loaded {
    /// A causal language model (checked when loading).
    pub model: Box<dyn Model>,
    pub tk: Tokenizer,
    /// The folder the tokenizer came from (a chat template may sit beside it).
    pub tokenizer_dir: PathBuf,
}

impl ModelArgs {
    pub fn load(&self) -> Result<Loaded> {
        // A single model file of a family `jielong train` does not make (an n-gram model over
        // a tokenizer's ids): see model_files.rs.
        if jielong_train::adapter::is_adapter_dir(&self.checkpoint) {
            return Err(Error::input(format!("{} is an adapter, not a checkpoint: pass its base with --checkpoint BASE --adapter {0}", self.checkpoint.display())).into());
        }
        if let Some(loader) = super::model_files::loader_for(&self.checkpoint)? {
            if self.adapter.is_some() {
                return Err(Error::input(format!("--adapter applies to transformer checkpoints; {} is a {}", self.checkpoint.display(), loader.name)).into());
            }
            let (model, tk, tokenizer_dir) = (loader.load)(&self.checkpoint, self.tokenizer.as_deref())?;
            if model.as_causal_lm().is_none() {
                return Err(Error::input(format!("{} is a {} but not a causal language model", self.checkpoint.display(), loader.name)).into());
            }
            return Ok(Loaded { model, tk, tokenizer_dir });
        }
        let ckpt = Checkpoint::open(&self.checkpoint)?;
        let tk = ckpt.load_tokenizer(self.tokenizer.as_deref())?;
        let model = match &self.adapter {
            // Merged into the base weights: decoding then costs what the base costs.
            Some(dir) => jielong_train::sft::load_with_adapter(&ckpt, dir, true, &Device::Cpu)?.0,
            None => ckpt.load_causal_lm(&Device::Cpu, "this command")?,
        };
        if model.as_causal_lm().is_none() {
            return Err(Error::input(format!("this command needs a causal language model; {} is not one", ckpt.dir.display())).into());
        }
        let path = self.tokenizer.clone().unwrap_or_else(|| ckpt.tokenizer_path());
        let mut tokenizer_dir = if path.is_dir() { path } else { path.parent().map(PathBuf::from).unwrap_or_default() };
        if let Some(dir) = self.adapter.as_ref().filter(|d| d.join("tokenizer_config.json").is_file()) {
            tokenizer_dir = dir.clone();
        }
        Ok(Loaded { model, tk, tokenizer_dir })
    }

}

impl Loaded {
    /// The model's causal-LM side (every checkpoint `load` accepts has one).
    pub fn lm(&self) -> &dyn CausalLm {
        self.model.as_causal_lm().expect("checked by ModelArgs::load")
    }

    /// The decoding engine over this model, its candidates the tokenizer's ids.
    pub fn engine(&self, args: &ModelArgs) -> Engine<'_> {
        let e = Engine::new(self.lm(), &Device::Cpu).with_vocab_limit(self.tk.vocab_size());
        if args.no_cache { e.without_cache() } else { e }
    }
}

/// The sampler chain's settings (llama.cpp's defaults).
#[derive(ClapArgs, Clone)]
pub struct SamplingArgs {
    /// Divide logits by this; 0 = greedy.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Keep tokens at least this fraction as likely as the best (0 = off).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Locally typical sampling mass (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub typical_p: f32,
    /// Divide (or multiply, if negative) the logits of tokens already present (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repetition_penalty: f32,
    /// Subtract from the logit of every token already present (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtract this × count from the logit of every token already present (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// The penalties look at the last N tokens (0 = all, the prompt included).
    #[arg(long, default_value_t = 0)]
    pub penalty_last_n: usize,
    /// Never repeat an n-gram of this size (0 = off).
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram: usize,
    /// Order of the chain's stages, comma-separated.
    #[arg(long, default_value = "penalties,no_repeat_ngram,top_k,typical_p,top_p,min_p,temperature")]
    pub samplers: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn config(&self, sample: bool) -> SamplingConfig {
        SamplingConfig {
            sample,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            repetition_penalty: self.repetition_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            penalty_last_n: self.penalty_last_n,
            no_repeat_ngram: self.no_repeat_ngram,
            seed: self.seed,
            order: self.samplers.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    Greedy,
    Sample,
    Beam,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Truncate {
    /// A prompt longer than the context window is an error.
    Error,
    /// Keep the end of a long prompt (drop tokens from the left).
    Left,
}

#[derive(ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text to continue. An empty prompt starts from the end-of-text token (unconditional).
    #[arg(long)]
    pub prompt: String,
    #[arg(long, value_enum, default_value = "sample")]
    pub strategy: Strategy,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Beams for --strategy beam.
    #[arg(long, default_value_t = 4)]
    pub beams: usize,
    /// Beam scores are log p / length^α: α > 0 favours longer output.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub length_penalty: f32,
    /// Stop beam search once --beams hypotheses have ended.
    #[arg(long)]
    pub early_stopping: bool,
    #[arg(long, default_value_t = 100)]
    pub max_tokens: usize,
    /// Stop when this text appears (not printed); may be given several times.
    #[arg(long, num_args = 1..)]
    pub stop: Vec<String>,
    /// Number of samples (decoded together as one batch), or of best beams to print.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Show every step: the top candidates before and after each stage of the sampler chain.
    #[arg(long)]
    pub explain: bool,
    /// Candidates shown per stage with --explain.
    #[arg(long, default_value_t = 5)]
    pub explain_top: usize,
    /// Run several strategies on the prompt and line them up, e.g.
    /// `greedy,beam:4,sample:t=0.8,top_p=0.9`.
    #[arg(long)]
    pub compare: Option<String>,
    /// What to do with a prompt longer than the model's context window.
    #[arg(long, value_enum, default_value = "error")]
    pub truncate: Truncate,    /// Treat --prompt as a user's message: render it through the checkpoint's chat template
    /// (saved by `jielong sft`, or the built-in one) and stop where the reply ends its turn.
    #[arg(long)]
    pub chat: bool,
}

/// Encode a prompt for the model: an empty prompt becomes the end-of-text token; one longer
/// than the context window is an error or is cut from the left.
pub fn prompt_ids(tk: &Tokenizer, prompt: &str, max_seq_len: usize, truncate: Truncate) -> Result<Vec<u32>> {
    let mut ids = tk.encode(prompt)?;
    if ids.is_empty() {
        match tk.eot_id() {
            Some(eot) => ids.push(eot),
            None => return Err(Error::input("the prompt is empty and the tokenizer has no end-of-text token to start from: give some text").into()),
        }
    }
    if ids.len() > max_seq_len {
        match truncate {
            Truncate::Error => {
                return Err(Error::input(format!(
                    "the prompt is {} tokens but the model's context window is {max_seq_len}: shorten it, or pass --truncate left to keep its last {max_seq_len} tokens",
                    ids.len()
                ))
                .into())
            }
            Truncate::Left => {
                eprintln!("note: prompt cut from {} to its last {max_seq_len} tokens", ids.len());
                ids.drain(..ids.len() - max_seq_len);
            }
        }
    }
    Ok(ids)
}

/// A token as a person reads it: its text, or its bytes when it is part of a character.
pub fn show_token(tk: &Tokenizer, id: u32) -> String {
    match tk.decode(&[id]) {
        Ok(s) if !s.contains('\u{FFFD}') && !s.is_empty() => format!("{s:?}"),
        _ => tk.id_to_piece(id).map(|p| format!("[{}]", tk.piece_text(&p))).unwrap_or_else(|| format!("#{id}")),
    }
}

/// One continuation of `prompt`, streamed to stdout as it is produced; returns the text.
pub fn stream_one(engine: &Engine, tk: &Tokenizer, prompt: &[u32], chain: Chain, max_tokens: usize, stops: &[String]) -> Result<String> {
    let mut text = StreamText::new(tk, prompt, stops);
    let mut out = std::io::stdout().lock();
    let mut failed: Option<anyhow::Error> = None;
    let opts = GenOptions { max_tokens, stop_ids: tk.eot_id().into_iter().collect() };
    generate(engine, vec![engine.sequence(prompt.to_vec())?], &mut [chain], &opts, &mut |_, id, _| {
        match text.push(id) {
            Ok(piece) => {
                if let Err(e) = out.write_all(piece.as_bytes()).and_then(|_| out.flush()) {
                    failed = Some(e.into());
                    return false;
                }
            }
            Err(e) => {
                failed = Some(e.into());
                return false;
            }
        }
        !text.stopped
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    out.write_all(text.finish()?.as_bytes())?;
    out.flush()?;
    Ok(text.text)
}

/// Generated tokens of `n` sequences, decoded together, returned as (tokens, text, finish).
fn run_batch(engine: &Engine, tk: &Tokenizer, prompt: &[u32], chains: Vec<Chain>, max_tokens: usize, stops: &[String]) -> Result<Vec<(Vec<u32>, String, &'static str)>> {
    let mut chains = chains;
    let mut texts: Vec<StreamText> = chains.iter().map(|_| StreamText::new(tk, prompt, stops)).collect();
    let seqs = (0..chains.len()).map(|_| engine.sequence(prompt.to_vec())).collect::<jielong_core::Result<Vec<_>>>()?;
    let opts = GenOptions { max_tokens, stop_ids: tk.eot_id().into_iter().collect() };
    let outs = generate(engine, seqs, &mut chains, &opts, &mut |i, id, _| {
        let _ = texts[i].push(id);
        !texts[i].stopped
    })?;
    let mut result = Vec::new();
    for (o, mut t) in outs.into_iter().zip(texts) {
        t.finish()?;
        let finish = if t.stopped { "stop" } else { o.finish.as_str() };
        result.push((o.tokens().to_vec(), t.text, finish));
    }
    Ok(result)
}

pub fn run(mut a: Args) -> Result<()> {
    if a.n == 0 {
        return Err(Error::input("--n must be at least 1").into());
    }
    let loaded = a.model.load()?;
    if a.chat {
        let template = jielong_tokenizer::ChatTemplate::for_tokenizer_dir(&loaded.tokenizer_dir)?;
        a.prompt = template.render(&[jielong_tokenizer::Message::new("user", &a.prompt)], true)?;
        a.stop.extend(template.stop.iter().filter(|s| !s.is_empty()).cloned());
    }
    let tk = &loaded.tk;
    let engine = loaded.engine(&a.model);
    let prompt = prompt_ids(tk, &a.prompt, engine.max_seq_len(), a.truncate)?;
    if let Some(spec) = &a.compare {
        return compare(&engine, tk, &a, &prompt, spec);
    }
    let t0 = Instant::now();
    match a.strategy {
        Strategy::Beam => {
            if a.explain {
                return Err(Error::input("--explain shows the sampler chain: use it with --strategy greedy or sample").into());
            }
            let opts = beam_options(&a, a.beams, tk);
            let hyps = beam_search(&engine, prompt.clone(), &opts)?;
            for (i, h) in hyps.iter().take(a.n).enumerate() {
                let (text, _) = cut_at_stop(&tk.decode(&h.tokens)?, &a.stop);
                if a.n > 1 {
                    println!("── beam {} · log p {:.3} · score {:.3}{} ──", i + 1, h.logprob, h.score, if h.finished { " · ended" } else { "" });
                }
                println!("{}{}", a.prompt, text);
            }
        }
        Strategy::Greedy | Strategy::Sample => {
            let cfg = a.sampling.config(a.strategy == Strategy::Sample);
            cfg.validate()?;
            if a.explain {
                return explain(&engine, tk, &a, &prompt, &cfg);
            }
            if a.n == 1 {
                print!("{}", a.prompt);
                let text = stream_one(&engine, tk, &prompt, cfg.build(&prompt, 0)?, a.max_tokens, &a.stop)?;
                println!();
                let n = tk.encode(&text).map(|v| v.len()).unwrap_or(0);
                eprintln!("[{n} tokens · {:.1} tokens/s]", n as f64 / t0.elapsed().as_secs_f64());
            } else {
                let chains = (0..a.n)
                    .map(|i| SamplingConfig { seed: jielong_core::Rng::derive(cfg.seed, &[i as u64]).next_u64(), ..cfg.clone() }.build(&prompt, 0))
                    .collect::<jielong_core::Result<Vec<_>>>()?;
                for (i, (tokens, text, finish)) in run_batch(&engine, tk, &prompt, chains, a.max_tokens, &a.stop)?.into_iter().enumerate() {
                    println!("── sample {} · {} tokens · {finish} ──", i + 1, tokens.len());
                    println!("{}{}", a.prompt, text);
                }
            }
        }
    }
    Ok(())
}

/// Beam settings from the flags; a hypothesis ends at the tokenizer's end-of-text.
fn beam_options(a: &Args, beams: usize, tk: &Tokenizer) -> BeamOptions {
    BeamOptions {
        beams,
        max_tokens: a.max_tokens,
        length_penalty: a.length_penalty,
        early_stopping: a.early_stopping,
        stop_ids: tk.eot_id().into_iter().collect(),
        no_repeat_ngram: a.sampling.no_repeat_ngram,
    }
}

/// Text up to the first stop string.
fn cut_at_stop(text: &str, stops: &[String]) -> (String, bool) {
    match stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min() {
        Some(at) => (text[..at].to_string(), true),
        None => (text.to_string(), false),
    }
}

fn explain(engine: &Engine, tk: &Tokenizer, a: &Args, prompt: &[u32], cfg: &SamplingConfig) -> Result<()> {
    let chain = cfg.build(prompt, a.explain_top.max(1))?;
    println!("chain: {}", chain.stage_names().join(" → "));
    let mut text = StreamText::new(tk, prompt, &a.stop);
    let opts = GenOptions { max_tokens: a.max_tokens, stop_ids: tk.eot_id().into_iter().collect() };
    let mut step = 0;
    generate(engine, vec![engine.sequence(prompt.to_vec())?], &mut [chain], &opts, &mut |_, id, chain| {
        step += 1;
        println!("\nstep {step}: chose {} (id {id})", show_token(tk, id));
        for v in &chain.views {
            let tops: Vec<String> = v
                .top
                .iter()
                .map(|(t, p)| format!("{}{} {:.3}", if *t == id { "▶" } else { "" }, show_token(tk, *t), p))
                .collect();
            println!("  {:<28} {:>6} left │ {}", v.stage, v.n_candidates, tops.join("  "));
        }
        let _ = text.push(id);
        !text.stopped
    })?;
    text.finish()?;
    println!("\ntext: {}{}", a.prompt, text.text);
    Ok(())
}

/// One entry of --compare.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Greedy,
    Beam(usize),
    Sample(SamplingConfig),
}

/// Parse `greedy,beam:4,sample:t=0.8,top_p=0.9`: a `key=value` without a strategy name belongs
/// to the entry before it.
fn parse_compare(spec: &str, base: &SamplingConfig) -> Result<Vec<(String, Plan)>, Error> {
    let mut plans: Vec<(String, Plan)> = Vec::new();
    let bad = |m: String| Error::input(format!("--compare: {m} (example: greedy,beam:4,sample:t=0.8,top_p=0.9)"));
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (head, rest) = part.split_once(':').unwrap_or((part, ""));
        let setting = if head.contains('=') { Some(head) } else { None };
        if let Some(kv) = setting {
            let Some((label, Plan::Sample(cfg))) = plans.last_mut() else {
                return Err(bad(format!("`{kv}` must follow a sample entry")));
            };
            apply_setting(cfg, kv).map_err(bad)?;
            label.push(',');
            label.push_str(kv);
            continue;
        }
        let plan = match head {
            "greedy" => Plan::Greedy,
            "beam" => Plan::Beam(if rest.is_empty() { 4 } else { rest.parse().map_err(|_| bad(format!("`{rest}` is not a number of beams")))? }),
            "sample" => {
                let mut cfg = base.clone();
                if !rest.is_empty() {
                    apply_setting(&mut cfg, rest).map_err(bad)?;
                }
                Plan::Sample(cfg)
            }
            other => return Err(bad(format!("unknown strategy `{other}`: use greedy, beam:N or sample:key=value"))),
        };
        plans.push((part.to_string(), plan));
    }
    if plans.is_empty() {
        return Err(bad("no strategies given".into()));
    }
    for (_, p) in &plans {
        match p {
            Plan::Sample(cfg) => cfg.validate()?,
            Plan::Beam(0) => return Err(bad("beam:0 has no beams".into())),
            _ => {}
        }
    }
    Ok(plans)
}

fn apply_setting(cfg: &mut SamplingConfig, kv: &str) -> std::result::Result<(), String> {
    let (k, v) = kv.split_once('=').ok_or(format!("`{kv}` is not key=value"))?;
    let f = || v.parse::<f32>().map_err(|_| format!("`{v}` is not a number in `{kv}`"));
    let u = || v.parse::<usize>().map_err(|_| format!("`{v}` is not a whole number in `{kv}`"));
    match k {
        "t" | "temperature" => cfg.temperature = f()?,
        "k" | "top_k" => cfg.top_k = u()?,
        "p" | "top_p" => cfg.top_p = f()?,
        "min_p" => cfg.min_p = f()?,
        "typical" | "typical_p" => cfg.typical_p = f()?,
        "rep" | "repetition_penalty" => cfg.repetition_penalty = f()?,
        "presence" | "presence_penalty" => cfg.presence_penalty = f()?,
        "frequency" | "frequency_penalty" => cfg.frequency_penalty = f()?,
        "no_repeat_ngram" => cfg.no_repeat_ngram = u()?,
        "seed" => cfg.seed = v.parse().map_err(|_| format!("`{v}` is not a seed"))?,
        _ => return Err(format!("unknown setting `{k}`: use t, top_k, top_p, min_p, typical_p, rep, presence, frequency, no_repeat_ngram or seed")),
    }
    Ok(())
}

fn compare(engine: &Engine, tk: &Tokenizer, a: &Args, prompt: &[u32], spec: &str) -> Result<()> {
    let base = a.sampling.config(true);
    let plans = parse_compare(spec, &base)?;
    let mut rows: Vec<(String, Vec<u32>, String, Repetition)> = Vec::new();
    for (label, plan) in &plans {
        let (tokens, text) = match plan {
            Plan::Beam(k) => {
                let best = beam_search(engine, prompt.to_vec(), &beam_options(a, *k, tk))?.into_iter().next().expect("at least one hypothesis");
                let (text, _) = cut_at_stop(&tk.decode(&best.tokens)?, &a.stop);
                (best.tokens, text)
            }
            Plan::Greedy | Plan::Sample(_) => {
                let cfg = match plan {
                    Plan::Sample(c) => c.clone(),
                    _ => SamplingConfig { sample: false, ..base.clone() },
                };
                let (tokens, text, _) = run_batch(engine, tk, prompt, vec![cfg.build(prompt, 0)?], a.max_tokens, &a.stop)?.remove(0);
                (tokens, text)
            }
        };
        let rep = measure(&tokens);
        rows.push((label.clone(), tokens, text, rep));
    }
    println!("prompt: {}\n", a.prompt);
    println!("{:<28} {:>6} {:>10} {:>10} {:>14} {:>16}", "strategy", "tokens", "distinct-1", "distinct-2", "longest repeat", "repeated 4-grams");
    for (label, tokens, _, r) in &rows {
        println!(
            "{:<28} {:>6} {:>10.3} {:>10.3} {:>14} {:>15.1}%",
            label,
            tokens.len(),
            r.distinct_1,
            r.distinct_2,
            r.longest_repeat,
            r.repeated_4grams * 100.0
        );
    }
    println!();
    // Newlines shown as ↵ so that a loop of blank lines stays visible in a column.
    let columns: Vec<(String, String)> = rows.iter().map(|(l, _, t, _)| (l.clone(), t.replace('\n', "↵ "))).collect();
    print!("{}", crate::layout::side_by_side(&columns, crate::layout::terminal_width()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_spec_attaches_settings_to_the_sample_entry() {
        let base = SamplingConfig::default();
        let plans = parse_compare("greedy, beam:4,sample:t=0.7,top_p=0.9,sample", &base).unwrap();
        assert_eq!(plans.len(), 4);
        assert_eq!(plans[0].1, Plan::Greedy);
        assert_eq!(plans[1].1, Plan::Beam(4));
        let Plan::Sample(c) = &plans[2].1 else { panic!("sample expected") };
        assert_eq!((c.temperature, c.top_p), (0.7, 0.9));
        assert_eq!(plans[2].0, "sample:t=0.7,top_p=0.9");
        assert_eq!(plans[3].1, Plan::Sample(base.clone()));
        for bad in ["", "top_p=0.9", "nucleus", "beam:x", "beam:0", "sample:top_p=2", "sample:zz=1"] {
            assert!(parse_compare(bad, &base).is_err(), "{bad} must be rejected");
        }
    }
}
