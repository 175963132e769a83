//! `jielong finetune --task classify --checkpoint BASE --data FILE.jsonl
//! --regime frozen|full|lora --out DIR`: a pretrained model (BERT, ALBERT, MiniLM, GPT, Llama)
//! with a new classification head, trained on labelled text (see `jielong_train::finetune`).
//! `jielong predict` and `jielong eval --data` read the folder it writes.

use anyhow::Result;
use clap::{Args as ClapArgs, ValueEnum};
use jielong_models::Pooling;
use jielong_nn::LoraConfig;
use jielong_train::finetune::{finetune_classify, FinetuneConfig, FtRegime};
use jielong_train::finetune_span::{finetune_ner, finetune_qa, QaSettings, SpanEpoch, SpanSummary};
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// One label per text (or text pair): JSON lines {"text", "label"} or {"text", "text_pair", "label"}.
    Classify,
    /// Named entities: NER JSON lines {"tokens", "tags"} (BIO) or {"text", "entities"} (`jielong data ner` writes them).
    Ner,
    /// Extractive question answering: a SQuAD v1.1/v2.0 JSON file (`jielong data qa` writes one).
    Qa,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegimeArg {
    /// Train the head only; the body's weights stay bit-identical.
    Frozen,
    /// Train every weight.
    Full,
    /// Train LoRA adapters on the body and the head; the base stays as it is.
    Lora,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    /// [CLS] through the family's pooler (BERT), else the first token.
    Cls,
    /// The mean over the real tokens.
    Mean,
    /// The last real token (the default for GPT and Llama).
    Last,
}

#[derive(ClapArgs)]
pub struct Args {
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// The pretrained model: a run folder or a ckpt-NNNNNN folder (`jielong import` brings in
    /// Hugging Face models such as MiniLM).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Labelled examples, JSON lines.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = RegimeArg::Full)]
    pub regime: RegimeArg,
    /// Where the fine-tuned classifier goes.
    #[arg(long)]
    pub out: PathBuf,
    /// Validation examples (else --val-fraction of --data is held out).
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Default: cls for encoders, last for causal models.
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingArg>,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Peak learning rate (default: 2e-5 full, 5e-3 frozen, 5e-4 lora), warmup 10%, then linear decay.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Longest input in tokens (special tokens included); longer ones are cut (qa: the window).
    /// Default: 128, qa 384.
    #[arg(long)]
    pub max_len: Option<usize>,
    /// qa: context tokens shared by consecutive windows of a long context.
    #[arg(long, default_value_t = 128)]
    pub doc_stride: usize,
    /// qa: longest answer in tokens.
    #[arg(long, default_value_t = 30)]
    pub max_answer_len: usize,
    /// Dropout on the head's input in training.
    #[arg(long, default_value_t = 0.1)]
    pub head_dropout: f32,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// Comma-separated: q, k, v, o, mlp (mapped to each family's layers), module names or
    /// endings, or all-linear.
    #[arg(long, default_value = "q,v")]
    pub lora_targets: String,
}

pub fn run(a: Args) -> Result<()> {
    let regime = match a.regime {
        RegimeArg::Frozen => FtRegime::Frozen,
        RegimeArg::Full => FtRegime::Full,
        RegimeArg::Lora => FtRegime::Lora,
    };
    let lr = a.lr.unwrap_or(match regime {
        FtRegime::Full => 2e-5,
        FtRegime::Frozen => 5e-3,
        FtRegime::Lora => 5e-4,
    });
    let max_len = a.max_len.unwrap_or(if a.task == TaskArg::Qa { 384 } else { 128 });
    let cfg = FinetuneConfig {
        base: a.checkpoint.clone(),
        data: a.data.clone(),
        val_data: a.val_data.clone(),
        val_fraction: if a.val_data.is_some() { 0.0 } else { a.val_fraction },
        regime,
        lora: LoraConfig { rank: a.lora_rank, alpha: a.lora_alpha, dropout: 0.0, targets: a.lora_targets.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect() },
        pooling: a.pooling.map(|p| match p {
            PoolingArg::Cls => Pooling::Cls,
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Last => Pooling::Last,
        }),
        epochs: a.epochs,
        batch_size: a.batch_size,
        learning_rate: lr,
        weight_decay: a.weight_decay,
        max_len,
        head_dropout: a.head_dropout,
        seed: a.seed,
    };
    match a.task {
        TaskArg::Classify => {}
        TaskArg::Ner => {
            let s = finetune_ner(&a.out, &cfg, &mut print_span_epoch)?;
            return report_span(&a, &s, "ner");
        }
        TaskArg::Qa => {
            let qa = QaSettings { doc_stride: a.doc_stride, max_answer_len: a.max_answer_len, ..QaSettings::default() };
            let s = finetune_qa(&a.out, &cfg, qa, &mut print_span_epoch)?;
            return report_span(&a, &s, "qa");
        }
    }
    let s = finetune_classify(&a.out, &cfg, &mut |row| {
        let val = match (row.val_loss, row.val) {
            (Some(l), Some(v)) => format!(" · val loss {l:.4} · accuracy {:.4} · macro-F1 {:.4}", v.accuracy, v.macro_f1),
            _ => String::new(),
        };
        println!("epoch {} (step {}): train loss {:.4}{val} · {:.0} examples/s", row.epoch, row.step, row.train_loss, row.examples_per_s);
    })?;
    println!(
        "{} labels ({}) · {} training / {} validation examples ({} cut to {} tokens) · trainable {} of {} parameters ({:.2}%) · {:.0} tokens/s · {:.1} s",
        s.labels.len(),
        s.labels.join(", "),
        s.train_examples,
        s.val_examples,
        s.truncated,
        max_len,
        s.trainable,
        s.total_params,
        100.0 * s.trainable as f64 / s.total_params.max(1) as f64,
        s.tokens_per_s,
        s.elapsed_s
    );
    if let Some(m) = s.majority {
        println!("majority-class baseline on the validation set: accuracy {:.4} · macro-F1 {:.4}", m.accuracy, m.macro_f1);
    }
    println!("classifier in {0}; try: jielong predict --checkpoint {0} \"some text\"", a.out.display());
    Ok(())
}

fn print_span_epoch(row: &SpanEpoch) {
    let val = match (&row.ner, &row.qa) {
        (Some(n), _) => format!(" · val entity P {:.4} · R {:.4} · F1 {:.4} ({} gold, {} predicted)", n.micro.precision, n.micro.recall, n.micro.f1, n.gold_entities, n.predicted_entities),
        (_, Some(q)) => format!(" · val EM {:.2} · F1 {:.2}", q.exact_match, q.f1),
        _ => String::new(),
    };
    println!("epoch {} (step {}): train loss {:.4}{val} · {:.0} examples/s", row.epoch, row.step, row.train_loss, row.examples_per_s);
}

fn report_span(a: &Args, s: &SpanSummary, task: &str) -> Result<()> {
    let what = if task == "ner" { format!("{} labels ({})", s.labels.len(), s.labels.join(", ")) } else { format!("{} windows", s.train_rows) };
    println!(
        "{what} · {} training / {} validation examples · trainable {} of {} parameters ({:.2}%) · {:.0} tokens/s · {:.1} s",
        s.train_examples,
        s.val_examples,
        s.trainable,
        s.total_params,
        100.0 * s.trainable as f64 / s.total_params.max(1) as f64,
        s.tokens_per_s,
        s.elapsed_s
    );
    if s.truncated_words + s.unaligned_words > 0 {
        println!("{} word(s) cut by --max-len, {} word(s) without a piece of their own (not trained on)", s.truncated_words, s.unaligned_words);
    }
    if task == "ner" && s.val_examples > 0 {
        println!("all-O baseline on the validation set: entity F1 0.0000");
    }
    if let Some(b) = s.baseline {
        println!("first-word baseline on the validation set: EM {:.2} · F1 {:.2}", b.exact_match, b.f1);
    }
    if task == "ner" {
        println!("tagger in {0}; try: jielong predict --checkpoint {0} \"some text\"", a.out.display());
    } else {
        println!("reader in {0}; try: jielong predict --checkpoint {0} --question \"…\" --context \"…\"", a.out.display());
    }
    Ok(())
}
