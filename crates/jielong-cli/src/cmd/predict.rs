//! `jielong predict --checkpoint DIR [TEXT…|--input FILE.jsonl] [--json]`: a fine-tuned
//! classifier's label and probabilities for each text; and `jielong eval --checkpoint DIR
//! --data FILE.jsonl`: its accuracy and macro-F1 beside the majority-class baseline.

use anyhow::Result;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_train::classify_data::{read_examples, Example};
use jielong_train::finetune::Classifier;
use std::path::{Path, PathBuf};

#[derive(ClapArgs)]
pub struct Args {
    /// The folder `jielong finetune` wrote.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Texts to classify.
    pub texts: Vec<String>,
    /// JSON lines {"text"} or {"text", "text_pair"} (a "label" is ignored).
    #[arg(long, conflicts_with = "texts")]
    pub input: Option<PathBuf>,
    /// One JSON line per text instead of the table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

pub fn run(a: Args) -> Result<()> {
    let examples: Vec<Example> = match &a.input {
        Some(p) => read_examples(p, false)?,
        None if a.texts.is_empty() => return Err(Error::input("nothing to classify: give texts, or --input FILE.jsonl").into()),
        None => a.texts.iter().enumerate().map(|(i, t)| Example { text: t.clone(), text_pair: None, label: None, source: format!("argument {}", i + 1) }).collect(),
    };
    let clf = Classifier::load(&a.checkpoint, "classify")?;
    let preds = clf.predict(&examples, a.batch_size)?;
    for (e, p) in examples.iter().zip(&preds) {
        if a.json {
            let probs: serde_json::Map<String, serde_json::Value> = p.probabilities.iter().map(|(l, v)| (l.clone(), serde_json::json!(v))).collect();
            println!("{}", serde_json::json!({"text": e.text, "label": p.label, "probability": p.probability, "probabilities": probs}));
        } else {
            let head: String = e.text.chars().take(60).collect();
            let rest: Vec<String> = p.probabilities.iter().map(|(l, v)| format!("{l} {v:.3}")).collect();
            println!("{:<12} {:.3}  ({})  {head}", p.label, p.probability, rest.join(" · "));
        }
    }
    Ok(())
}

/// `jielong eval --checkpoint DIR --data FILE.jsonl` on a classifier.
pub fn run_eval(checkpoint: &Path, data: &Path, batch_size: usize, json: bool) -> Result<()> {
    let clf = Classifier::load(checkpoint, "classify")?;
    let examples = read_examples(data, true)?;
    let (s, majority) = clf.evaluate(&examples, batch_size)?;
    if json {
        println!("{}", serde_json::json!({"examples": s.n, "accuracy": s.accuracy, "macro_f1": s.macro_f1, "majority_accuracy": majority.map(|m| m.accuracy), "majority_macro_f1": majority.map(|m| m.macro_f1)}));
        return Ok(());
    }
    println!("{} examples · accuracy {:.4} · macro-F1 {:.4}", s.n, s.accuracy, s.macro_f1);
    if let Some(m) = majority {
        println!("majority-class baseline (the training data's most frequent label): accuracy {:.4} · macro-F1 {:.4}", m.accuracy, m.macro_f1);
    }
    Ok(())
}
