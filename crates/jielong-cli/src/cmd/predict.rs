//! `jielong predict --checkpoint DIR [TEXT…|--input FILE] [--json]`: what a fine-tuned model
//! says of each input: a classifier's label and probabilities; a NER tagger's entities (label,
//! character span, text, score); a QA reader's answer (`--question Q --context C`, or every
//! question of a SQuAD file: answer text, character start, score). And `jielong eval
//! --checkpoint DIR --data FILE`: accuracy and macro-F1 beside the majority-class baseline
//! (classify), seqeval entity P/R/F1 with per-type scores (ner), EM/F1 beside the first-word
//! baseline (qa).

use anyhow::Result;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_train::classify_data::{read_examples, Example};
use jielong_data::labelled::{read_ner_jsonl, read_squad, Answer, NerExample, QaExample};
use jielong_train::finetune::{read_record, Classifier};
use jielong_train::finetune_span::SpanModel;
use std::path::{Path, PathBuf};

#[derive(ClapArgs)]
pub struct Args {
    /// The folder `jielong finetune` wrote.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Texts to classify or tag.
    pub texts: Vec<String>,
    /// classify: JSON lines {"text"} or {"text", "text_pair"} (a "label" is ignored); ner: JSON
    /// lines {"text"} or {"tokens"}; qa: a SQuAD JSON file.
    #[arg(long, conflicts_with = "texts")]
    pub input: Option<PathBuf>,
    /// The task the checkpoint must have been fine-tuned for (classify, ner, qa); default: its own.
    #[arg(long)]
    pub task: Option<String>,
    /// qa: the question (with --context).
    #[arg(long, requires = "context", conflicts_with_all = ["texts", "input"])]
    pub question: Option<String>,
    /// qa: the passage holding the answer (with --question).
    #[arg(long, requires = "question")]
    pub context: Option<String>,
    /// One JSON line per text instead of the table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

pub fn run(a: Args) -> Result<()> {
    let record = read_record(&a.checkpoint)?;
    if let Some(t) = &a.task {
        if !["classify", "ner", "qa"].contains(&t.as_str()) {
            return Err(Error::input(format!("--task {t}: use classify, ner or qa")).into());
        }
        if *t != record.task {
            return Err(Error::input(format!("{} holds a head for task {:?}, not {t:?}: pass a checkpoint fine-tuned with --task {t}", a.checkpoint.display(), record.task)).into());
        }
    }
    if a.question.is_some() && record.task != "qa" {
        return Err(Error::input(format!("--question/--context need a QA checkpoint; {} holds a head for task {:?}", a.checkpoint.display(), record.task)).into());
    }
    match record.task.as_str() {
        "ner" => return run_ner(&a),
        "qa" => return run_qa(&a),
        _ => {}
    }
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

/// NER input: JSON lines {"text"} or {"tokens"} (tags, if any, are ignored).
fn read_ner_input(path: &Path) -> Result<Vec<NerExample>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::format(path, format!("line {}: not JSON ({e})", i + 1)))?;
        let ex = match (v.get("text").and_then(|t| t.as_str()), v.get("tokens").and_then(|t| t.as_array())) {
            (Some(t), _) => NerExample::from_spans(t, &[]).map_err(|m| Error::format(path, format!("line {}: {m}", i + 1)))?,
            (None, Some(toks)) => {
                let words: Vec<&str> = toks.iter().filter_map(|t| t.as_str()).collect();
                NerExample::from_words(&words, vec!["O".into(); words.len()])
            }
            _ => return Err(Error::format(path, format!("line {}: needs \"text\" or \"tokens\"", i + 1)).into()),
        };
        out.push(ex);
    }
    Ok(out)
}

fn run_ner(a: &Args) -> Result<()> {
    let examples: Vec<NerExample> = match &a.input {
        Some(p) => read_ner_input(p)?,
        None if a.texts.is_empty() => return Err(Error::input("nothing to tag: give texts, or --input FILE.jsonl").into()),
        None => a.texts.iter().map(|t| NerExample::from_spans(t, &[]).map_err(Error::input)).collect::<jielong_core::Result<_>>()?,
    };
    let m = SpanModel::load(&a.checkpoint, "ner")?;
    let tagged = m.tag(&examples, a.batch_size)?;
    for (e, ents) in examples.iter().zip(&tagged) {
        if a.json {
            let list: Vec<serde_json::Value> = ents.iter().map(|(x, s)| serde_json::json!({"label": x.label, "start": x.start, "end": x.end, "text": x.text, "score": s})).collect();
            println!("{}", serde_json::json!({"text": e.text, "entities": list}));
        } else {
            let list: Vec<String> = ents.iter().map(|(x, s)| format!("{} {}..{} {:?} {s:.3}", x.label, x.start, x.end, x.text)).collect();
            let head: String = e.text.chars().take(60).collect();
            println!("{head}\n  {}", if list.is_empty() { "(no entity)".to_string() } else { list.join(" · ") });
        }
    }
    Ok(())
}

fn run_qa(a: &Args) -> Result<()> {
    let examples: Vec<QaExample> = match (&a.question, &a.context, &a.input) {
        (Some(q), Some(c), _) => vec![QaExample { id: "q1".into(), title: String::new(), context: c.clone(), question: q.clone(), answers: Vec::<Answer>::new(), is_impossible: false }],
        (_, _, Some(p)) => read_squad(p)?,
        _ => return Err(Error::input("a QA checkpoint answers --question Q --context C, or the questions of --input FILE.json (SQuAD)").into()),
    };
    let m = SpanModel::load(&a.checkpoint, "qa")?;
    let answers = m.answer(&examples, a.batch_size)?;
    for (e, ans) in examples.iter().zip(&answers) {
        let (text, start, score) = ans.as_ref().map(|x| (x.text.as_str(), Some(x.start), Some(x.score))).unwrap_or(("", None, None));
        if a.json {
            println!("{}", serde_json::json!({"id": e.id, "question": e.question, "answer": text, "start": start, "score": score}));
        } else {
            println!("{}  {:?} (char {}, score {})", e.question, text, start.map_or("-".into(), |s| s.to_string()), score.map_or("-".into(), |s| format!("{s:.3}")));
        }
    }
    Ok(())
}

/// `jielong eval --checkpoint DIR --data FILE` on a fine-tuned classifier, tagger or reader.
pub fn run_eval(checkpoint: &Path, data: &Path, batch_size: usize, json: bool) -> Result<()> {
    let record = read_record(checkpoint)?;
    match record.task.as_str() {
        "ner" => return eval_ner(checkpoint, data, batch_size, json),
        "qa" => return eval_qa(checkpoint, data, batch_size, json),
        _ => {}
    }
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

fn eval_ner(checkpoint: &Path, data: &Path, batch_size: usize, json: bool) -> Result<()> {
    let m = SpanModel::load(checkpoint, "ner")?;
    let examples = read_ner_jsonl(data, false).map_err(|e| Error::input(format!("{e} (a NER checkpoint scores NER JSON lines)")))?.examples;
    let s = m.evaluate_ner(&examples, batch_size)?;
    if json {
        let per: serde_json::Map<String, serde_json::Value> = s.per_type.iter().map(|(k, v)| (k.clone(), serde_json::json!({"precision": v.precision, "recall": v.recall, "f1": v.f1, "support": v.support}))).collect();
        println!(
            "{}",
            serde_json::json!({"sentences": examples.len(), "precision": s.micro.precision, "recall": s.micro.recall, "f1": s.micro.f1, "gold_entities": s.gold_entities, "predicted_entities": s.predicted_entities, "correct": s.correct, "per_type": per, "all_o_f1": 0.0})
        );
        return Ok(());
    }
    println!("{} sentences · {} gold / {} predicted / {} correct entities · precision {:.4} · recall {:.4} · F1 {:.4} (seqeval micro)", examples.len(), s.gold_entities, s.predicted_entities, s.correct, s.micro.precision, s.micro.recall, s.micro.f1);
    for (t, v) in &s.per_type {
        println!("  {t:<8} precision {:.4} · recall {:.4} · F1 {:.4} · support {}", v.precision, v.recall, v.f1, v.support);
    }
    println!("all-O baseline: F1 0.0000");
    Ok(())
}

fn eval_qa(checkpoint: &Path, data: &Path, batch_size: usize, json: bool) -> Result<()> {
    let m = SpanModel::load(checkpoint, "qa")?;
    let examples = read_squad(data).map_err(|e| Error::input(format!("{e} (a QA checkpoint scores a SQuAD JSON file)")))?;
    let (s, base) = m.evaluate_qa(&examples, batch_size)?;
    if json {
        println!("{}", serde_json::json!({"questions": s.count, "exact_match": s.exact_match, "f1": s.f1, "baseline_exact_match": base.exact_match, "baseline_f1": base.f1}));
        return Ok(());
    }
    println!("{} questions · exact match {:.2} · F1 {:.2}", s.count, s.exact_match, s.f1);
    println!("first-word baseline: exact match {:.2} · F1 {:.2}", base.exact_match, base.f1);
    Ok(())
}
