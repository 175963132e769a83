//! `jielong serve`: an OpenAI-compatible HTTP server over a checkpoint, with a chat page at `/`
//! and a 👍/👎 feedback store (the server itself lives in the jielong-serve crate).

use super::generate::ModelArgs;
use anyhow::Result;
use candle_core::Device;
use jielong_core::Error;
use jielong_models::Model;
use jielong_serve::embeddings::Embedding;
use jielong_serve::request::Limits;
use jielong_serve::{LanguageModel, ServeConfig, Served, Variant};
use jielong_tokenizer::{ChatTemplate, Tokenizer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// A run folder (its latest checkpoint), a ckpt-NNNNNN folder, or an n-gram model file
    /// trained with `jielong ngram train --units tokens`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Use this tokenizer instead of the run's own (it must be the same one).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Accepted for the flags `generate` takes; the server always caches keys and values.
    #[arg(long, hide = true)]
    pub no_cache: bool,
    /// An adapter to serve beside the base, as `NAME=DIR` (or `DIR`, named by its folder):
    /// a request whose `model` is NAME is answered by the base with that adapter. May be given
    /// several times; each adapter holds its own copy of the base's weights.
    #[arg(long = "adapter", value_name = "NAME=DIR")]
    pub adapters: Vec<String>,
    /// Address to listen on (loopback by default; any other address wants --api-key).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on the /v1 routes.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Sequences decoded together in one forward pass.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    /// Sequences that may wait for a slot; beyond that requests get 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest `n` a request may ask for.
    #[arg(long, default_value_t = 8)]
    pub max_n: usize,
    /// Largest `beams` a request may ask for (beam search; each beam is one sequence of the batch).
    #[arg(long, default_value_t = 8)]
    pub max_beams: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// `max_tokens` for requests that give none.
    #[arg(long, default_value_t = 256)]
    pub default_max_tokens: usize,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 4)]
    pub max_body_mb: usize,
    /// The name clients pass as `model` (default: the run folder's name).
    #[arg(long)]
    pub model_name: Option<String>,
    /// A Jinja chat template file, or a Hugging Face tokenizer_config.json with one.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// SQLite file for 👍/👎 feedback (default: feedback.sqlite in the run folder).
    #[arg(long)]
    pub feedback_db: Option<PathBuf>,
    /// Keep no feedback.
    #[arg(long)]
    pub no_feedback: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.parallel == 0 || a.max_n == 0 || a.max_beams == 0 || a.max_tokens == 0 || a.max_body_mb == 0 {
        return Err(Error::input("--parallel, --max-n, --max-beams, --max-tokens and --max-body-mb must be at least 1").into());
    }
    if a.default_max_tokens > a.max_tokens {
        return Err(Error::input(format!("--default-max-tokens {} is above --max-tokens {}", a.default_max_tokens, a.max_tokens)).into());
    }
    let model = ModelArgs { checkpoint: a.checkpoint.clone(), tokenizer: a.tokenizer.clone(), no_cache: a.no_cache, adapter: None };
    let specs = adapter_specs(&a.adapters)?;
    if !specs.is_empty() && (a.checkpoint.is_file() || jielong_train::adapter::is_adapter_dir(&a.checkpoint)) {
        return Err(Error::input(format!(
            "--adapter applies to a transformer checkpoint and {} is not one: pass the run the adapters were trained on with --checkpoint",
            a.checkpoint.display()
        ))
        .into());
    }
    let (served, tk, tokenizer_dir) = load(&model)?;
    let generates = served.lm.is_some();
    let base_template = || -> Result<ChatTemplate> {
        Ok(match &a.template {
            Some(p) => ChatTemplate::load(p)?,
            None if generates => ChatTemplate::for_tokenizer_dir(&tokenizer_dir)?,
            None => ChatTemplate::default_template(),
        })
    };
    let template = base_template()?;
    // The weights file and where the run lives: a checkpoint folder or an n-gram model file.
    let (weights, run_dir) = if model.checkpoint.is_file() {
        (model.checkpoint.clone(), model.checkpoint.parent().map(PathBuf::from).unwrap_or_default())
    } else {
        let ckpt = jielong_train::Checkpoint::open(&model.checkpoint)?;
        (ckpt.dir.join("model.safetensors"), ckpt.run_dir().to_path_buf())
    };
    let checkpoint_hash = jielong_serve::file_hash(&weights)?;
    let model_id = a.model_name.clone().unwrap_or_else(|| {
        let base = if model.checkpoint.is_file() { &model.checkpoint } else { &run_dir };
        std::fs::canonicalize(base).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "jielong".into())
    });
    if let Some((name, _)) = specs.iter().find(|(n, _)| n == &model_id) {
        return Err(Error::input(format!(
            "the adapter name `{name}` is the base model's name: pick another NAME in --adapter NAME=DIR (or rename the base with --model-name)"
        ))
        .into());
    }
    if !specs.is_empty() && !generates {
        return Err(Error::input("--adapter needs a causal language model to apply to; this checkpoint only embeds").into());
    }
    let mut adapters = Vec::new();
    for (name, dir) in &specs {
        adapters.push(load_adapter(&model, name, dir, &base_template)?);
    }
    let adapter_lines: Vec<String> = adapters.iter().map(|v| format!("  adapter        `{}` · template {}", v.name, v.template.origin)).collect();
    let feedback_db = (!a.no_feedback && generates).then(|| a.feedback_db.clone().unwrap_or_else(|| run_dir.join("feedback.sqlite")));
    let cfg = ServeConfig {
        host: a.host.clone(),
        port: a.port,
        api_key: a.api_key.clone().filter(|k| !k.is_empty()),
        parallel: a.parallel,
        queue: a.queue,
        limits: Limits { max_n: a.max_n, max_tokens: a.max_tokens, default_max_tokens: a.default_max_tokens, max_beams: a.max_beams },
        max_body_bytes: a.max_body_mb << 20,
        model_id: model_id.clone(),
        checkpoint_hash,
        feedback_db: feedback_db.clone(),
        grace: Duration::from_secs(5),
    };
    let context = match (&served.lm, &served.embed) {
        (Some(m), _) => m.lm().max_seq_len(),
        (None, Some(e)) => e.opts.max_len,
        (None, None) => 0,
    };
    let embeds = served.embed.is_some();
    let origin = template.origin.clone();
    let server = jielong_serve::start_with_adapters(served, adapters, tk, template, cfg, true)?;
    let url = format!("http://{}", server.addr);
    let routes = match (generates, embeds) {
        (true, true) => "chat/completions, completions, embeddings, models",
        (true, false) => "chat/completions, completions, models",
        _ => "embeddings, models",
    };
    if generates {
        eprintln!("jielong serve · model `{model_id}` · context {context} tokens · template {origin}");
        for l in &adapter_lines {
            eprintln!("{l}");
        }
        eprintln!("  chat page      {url}/");
    } else {
        eprintln!("jielong serve · encoder `{model_id}` · texts up to {context} tokens (longer ones are cut) · embeddings only");
    }
    eprintln!("  OpenAI API     {url}/v1  ({routes})");
    eprintln!("  metrics        {url}/metrics");
    match &feedback_db {
        Some(p) => eprintln!("  feedback       {} (jielong feedback stats --db {})", p.display(), p.display()),
        None => eprintln!("  feedback       off"),
    }
    eprintln!("Ctrl-C to stop.");
    server.join();
    Ok(())
}

/// `--adapter NAME=DIR` or `--adapter DIR` (named by the folder) as (name, folder), checked
/// before anything is loaded: each folder holds an adapter and no name is given twice.
fn adapter_specs(given: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for spec in given {
        let (name, dir) = match spec.split_once('=') {
            Some((n, d)) if !Path::new(spec).exists() => (n.trim().to_string(), PathBuf::from(d)),
            _ => {
                let dir = PathBuf::from(spec);
                let name = std::fs::canonicalize(&dir).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default();
                (name, dir)
            }
        };
        if name.is_empty() || dir.as_os_str().is_empty() {
            return Err(Error::input(format!("--adapter {spec}: give it as NAME=DIR (or DIR, named by its folder)")).into());
        }
        if !jielong_train::adapter::is_adapter_dir(&dir) {
            return Err(Error::input(format!(
                "--adapter {spec}: {} is not an adapter folder (no {}): pass a folder `jielong sft --regime lora|prefix|prompt` wrote",
                dir.display(),
                jielong_train::adapter::CONFIG_FILE
            ))
            .into());
        }
        if out.iter().any(|(n, _)| n == &name) {
            return Err(Error::input(format!("--adapter: two adapters are named `{name}`: give each its own NAME in NAME=DIR")).into());
        }
        out.push((name, dir));
    }
    Ok(out)
}

/// The base with the adapter in `dir` applied (LoRA merged into the weights, so decoding costs
/// what the base costs), under `name`; its own chat template when sft saved one beside it,
/// else the base's.
fn load_adapter(base: &ModelArgs, name: &str, dir: &Path, base_template: &dyn Fn() -> Result<ChatTemplate>) -> Result<Variant> {
    let ckpt = jielong_train::Checkpoint::open(&base.checkpoint)?;
    let model = jielong_train::sft::load_with_adapter(&ckpt, dir, true, &Device::Cpu)?.0;
    if model.as_causal_lm().is_none() {
        return Err(Error::input(format!("--adapter {name}={}: the base is not a causal language model", dir.display())).into());
    }
    let template = if dir.join("tokenizer_config.json").is_file() { ChatTemplate::for_tokenizer_dir(dir)? } else { base_template()? };
    let checkpoint_hash = jielong_serve::file_hash(&dir.join(jielong_train::adapter::WEIGHTS_FILE))?;
    Ok(Variant { name: name.to_string(), lm: Box::new(model), template, checkpoint_hash })
}

/// The model to serve, its tokenizer and the folder the tokenizer came from. A checkpoint is
/// loaded once and shared: a causal model serves chat and completions and, when it gives
/// hidden states, embeddings too; an encoder (BERT) serves embeddings only, with the recipe
/// `jielong embed` would use (the run's sentence.json). N-gram model files and LoRA adapters
/// go through `ModelArgs::load` and serve text only.
fn load(m: &ModelArgs) -> Result<(Served, Tokenizer, PathBuf)> {
    if m.adapter.is_some() || m.checkpoint.is_file() || jielong_train::adapter::is_adapter_dir(&m.checkpoint) {
        let loaded = m.load()?;
        let lm: Box<dyn LanguageModel> = Box::new(loaded.model);
        return Ok((Served { lm: Some(lm), embed: None }, loaded.tk, loaded.tokenizer_dir));
    }
    let ckpt = jielong_train::Checkpoint::open(&m.checkpoint)?;
    let tk = ckpt.load_tokenizer(m.tokenizer.as_deref())?;
    let model: Arc<Box<dyn Model>> = Arc::new(ckpt.load_model(&Device::Cpu)?);
    let embed = match model.as_encoder() {
        Some(enc) => Some(Embedding { model: model.clone(), opts: super::embed::EncoderArgs::defaults(&m.checkpoint).options(ckpt.run_dir(), enc)? }),
        None => None,
    };
    let lm = model.as_causal_lm().is_some().then(|| Box::new(model.clone()) as Box<dyn LanguageModel>);
    if lm.is_none() && embed.is_none() {
        return Err(Error::input(format!(
            "{} holds a {} model, which neither generates text nor embeds: serve a causal language model (GPT, Llama, RNN) or an encoder (BERT)",
            ckpt.dir.display(),
            ckpt.meta.family
        ))
        .into());
    }
    let path = m.tokenizer.clone().unwrap_or_else(|| ckpt.tokenizer_path());
    let tokenizer_dir = if path.is_dir() { path } else { path.parent().map(Path::to_path_buf).unwrap_or_default() };
    Ok((Served { lm, embed }, tk, tokenizer_dir))
}
