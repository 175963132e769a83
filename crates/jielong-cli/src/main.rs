//! `jielong`: from raw text to a language model you trained. Each subcommand is one stage that
//! reads and writes files a person can open.

mod cmd;
mod corpus;
mod layout;
mod progress;

use clap::{Parser, Subcommand};

// Training allocates and frees many large tensors per step; mimalloc reuses that memory instead
// of returning it to the OS and taking page faults to get it back (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "jielong", version, about = "接龙 — train, inspect and run small language models", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a small model (GPT or Llama) on the built-in handbook, end to end, in a few minutes.
    Quickstart(cmd::quickstart::Args),
    /// Train, inspect and use tokenizers.
    #[command(subcommand)]
    Tokenizer(cmd::tokenizer::Command),
    /// Turn text into token shards.
    #[command(subcommand)]
    Data(cmd::data::Command),
    /// Train a model of any family from a TOML config, or resume a run.
    Train(cmd::train::Args),
    /// Continue a prompt: greedy, sampled or beam search; --explain, --compare.
    #[command(alias = "sample")]
    Generate(cmd::generate::Args),
    /// Talk to a checkpoint through a chat template, keeping the KV cache between turns.
    Chat(cmd::chat::Args),
    /// Cross-entropy, perplexity and bits per byte on text files.
    Eval(cmd::eval::Args),
    /// Write a checkpoint as a Hugging Face folder (`--format hf`).
    Export(cmd::export::Args),
    /// Read a Hugging Face folder (GPT-2, Llama, Qwen2) into a jielong run folder.
    Import(cmd::import::Args),
    /// Measure speed.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
    /// Counting language models: n-grams with MLE, add-k, Kneser-Ney; ARPA; KenLM-exact.
    #[command(subcommand)]
    Ngram(cmd::ngram::Command),
    /// Word vectors: train word2vec, GloVe, fastText; neighbours, analogies, evaluation, maps.
    #[command(subcommand)]
    Vectors(cmd::vectors::Command),
    /// Lexical retrieval: index documents (bag of words, TF-IDF, BM25) and search them.
    #[command(subcommand)]
    Lexical(cmd::lexical::Command),
    /// Serve a checkpoint: an OpenAI-compatible API, a chat page at /, 👍/👎 feedback.
    Serve(cmd::serve::Args),
    /// Feedback collected by `jielong serve`: stats, export as KTO/DPO training data.
    #[command(subcommand)]
    Feedback(cmd::feedback::Command),
    /// Built-in sequence-to-sequence tasks (reverse, numbers-en, numbers-zh, dates) as JSONL.
    #[command(subcommand)]
    Task(cmd::task::Command),
    /// Draw attention as an SVG heat map: seq2seq cross-attention, gpt/llama self-attention.
    Attention(cmd::attention::Args),
    /// Sentence vectors from an encoder (BERT, MiniLM) or a causal model: .safetensors / .npy.
    Embed(cmd::embed::EmbedArgs),
    /// The cosine-similarity matrix of a few texts under an encoder checkpoint.
    Similarity(cmd::embed::SimilarityArgs),
    /// What a masked language model (BERT) puts in each [MASK] of a text, with probabilities.
    FillMask(cmd::fill_mask::Args),
    /// Supervised fine-tuning on conversations (full or LoRA), the loss on the assistant's tokens.
    Sft(cmd::sft::Args),
    /// Train n-gram, RNN, LSTM, GRU, GPT and Llama at equal size and time; one table, one plot.
    Compare(cmd::compare::Args),
    /// Fine-tune a pretrained model for a task (classify) with a new head: frozen, full or LoRA.
    Finetune(cmd::finetune::Args),
    /// A fine-tuned classifier's labels and probabilities for texts.
    Predict(cmd::predict::Args),
    /// LoRA adapters: `merge` folds one into its base's weights.
    #[command(subcommand)]
    Lora(cmd::lora::Command),
    /// Experiments end to end: `ulmfit` (general LM → domain LM → classifier at 1/10/100% labels).
    #[command(subcommand)]
    Study(cmd::study::Command),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Quickstart(a) => cmd::quickstart::run(a),
        Command::Tokenizer(c) => cmd::tokenizer::run(c),
        Command::Data(c) => cmd::data::run(c),
        Command::Train(a) => cmd::train::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Ngram(c) => cmd::ngram::run(c),
        Command::Vectors(c) => cmd::vectors::run(c),
        Command::Lexical(c) => cmd::lexical::run(c),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Feedback(c) => cmd::feedback::run(c),
        Command::Task(c) => cmd::task::run(c),
        Command::Attention(a) => cmd::attention::run(a),
        Command::Embed(a) => cmd::embed::run_embed(a),
        Command::Similarity(a) => cmd::embed::run_similarity(a),
        Command::FillMask(a) => cmd::fill_mask::run(a),
        Command::Sft(a) => cmd::sft::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Finetune(a) => cmd::finetune::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Lora(c) => cmd::lora::run(c),
        Command::Study(c) => cmd::study::run(c),
    }
}

/// Exit status 2 for anything the user can fix (bad input, bad files), 130 for Ctrl-C, 1 otherwise.
fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<jielong_core::Error>() {
            if matches!(e, jielong_core::Error::Interrupted) {
                return 130;
            }
            if e.is_user_error() {
                return 2;
            }
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return 0;
            }
        }
    }
    1
}

/// mimalloc's `purge_delay` option (mimalloc v3 numbering).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Keep freed memory instead of handing it back to the OS after a few milliseconds: the same
    // large activation buffers are needed again a moment later, and re-faulting them costs page
    // clearing (about +10% tokens/s in training and batched decoding, BENCHMARKS.md). Peak
    // memory is unchanged; it is just not given back while the process runs.
    // SAFETY: sets a plain integer option; mimalloc reads options at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            if code != 0 && code != 130 {
                let mut msg = format!("error: {err}");
                for cause in err.chain().skip(1) {
                    // An error that names its cause in its own message (`path: io error`)
                    // would otherwise print it twice.
                    let cause = cause.to_string();
                    if !msg.ends_with(&cause) {
                        msg += &format!(": {cause}");
                    }
                }
                eprintln!("{msg}");
            }
            ExitCode::from(code)
        }
    }
}
