//! Span-level fine-tuning: named-entity recognition (`jielong finetune --task ner`) and
//! extractive question answering (`--task qa`), on the same regimes, optimizer, schedule and
//! folder layout as classification (`finetune`'s shared [`Setup`]).
//!
//! - NER: a token-classification head (`classifier`, one logit per BIO label per token). Each
//!   word's label sits on its first sub-word piece, the other pieces and the special tokens
//!   carry no loss (`jielong_data::labelled::align_ner`). Predictions are read back per word
//!   and cut into entities as seqeval does (`decode_ner`); validation reports entity-level
//!   micro precision/recall/F1 (the all-`O` baseline scores 0).
//! - QA: a span-extraction head (`qa_outputs`, a start and an end logit per token). Each
//!   question becomes windows `[CLS] question [SEP] context-piece [SEP]` overlapping by
//!   `doc_stride` tokens (`qa_windows`); a window's target is the answer's first and last
//!   token, or `[CLS]` when the answer is not wholly inside it. The loss is the mean of the
//!   start and end cross-entropies over the real tokens. The answer is the best span of at
//!   most `max_answer_len` tokens over all windows, mapped back to characters (`best_answer`);
//!   validation reports exact match and F1 (SQuAD's rules; CMRC 2018's character-level ones
//!   when the answers hold Han characters).
//!
//! The folder is the classifier's (`task.json` with `task` "ner" or "qa", `head.safetensors`,
//! the body or the LoRA adapter with PEFT `task_type` TOKEN_CLS / QUESTION_ANS, the tokenizer,
//! `metrics.jsonl`); [`SpanModel::load`] reads it back for `jielong predict` and `jielong eval`.

use crate::finetune::{append, forward, load_task, lr_at, Encoder, FinetuneConfig, FtRegime, Setup, TaskRecord, TASK_FILE};
use candle_core::{DType, Device, Tensor};
use jielong_core::{Error, Result, Rng};
use jielong_data::labelled::metrics::score_entity_sets;
use jielong_data::labelled::{align_ner, best_answer, decode_ner, qa_scores, qa_windows, read_ner_jsonl, read_squad, Entity, EntityScores, Framing, LabelSet, NerExample, QaAnswer, QaExample, QaOptions, QaScores, QaWindow, TokenFeatures, IGNORE};
use jielong_models::{ForwardOpts, HeadKind, Model, TaskHead};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// QA's window and answer settings, saved in `task.json`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QaSettings {
    /// Context tokens shared by consecutive windows.
    pub doc_stride: usize,
    /// Longest answer in tokens.
    pub max_answer_len: usize,
    /// Longest question kept, in tokens.
    pub max_query_len: usize,
}

impl Default for QaSettings {
    fn default() -> Self {
        Self { doc_stride: 128, max_answer_len: 30, max_query_len: 64 }
    }
}

/// One epoch's numbers (a line of `metrics.jsonl`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpanEpoch {
    pub epoch: usize,
    pub step: u64,
    pub train_loss: f64,
    /// NER: entity scores on the validation set.
    pub ner: Option<EntityScores>,
    /// QA: exact match and F1 on the validation set.
    pub qa: Option<QaScores>,
    pub examples_per_s: f64,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone)]
pub struct SpanSummary {
    pub labels: Vec<String>,
    pub train_examples: usize,
    pub val_examples: usize,
    /// Model inputs trained on: one per sentence (NER), one per window (QA).
    pub train_rows: usize,
    /// NER: words cut off by `--max-len`, and words without a piece of their own.
    pub truncated_words: usize,
    pub unaligned_words: usize,
    pub trainable: usize,
    pub total_params: usize,
    pub epochs: Vec<SpanEpoch>,
    /// QA: the first-word baseline on the validation set (NER's all-`O` baseline scores 0).
    pub baseline: Option<QaScores>,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

/// Model input: (ids, segment ids).
type Row = (Vec<u32>, Vec<u32>);

/// Shuffle `v` in place (Fisher-Yates) with `rng`.
fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// The training and validation split: `--val-data`, or `--val-fraction` held out.
fn split<T>(mut train: Vec<T>, val: Option<Vec<T>>, cfg: &FinetuneConfig) -> (Vec<T>, Vec<T>) {
    match val {
        Some(v) => (train, v),
        None if cfg.val_fraction > 0.0 && train.len() > 1 => {
            shuffle(&mut train, &mut Rng::derive(cfg.seed, &[0x0076_616c]));
            let n_val = ((train.len() as f64 * cfg.val_fraction).round() as usize).clamp(1, train.len() - 1);
            let val = train.split_off(train.len() - n_val);
            (train, val)
        }
        None => (train, Vec::new()),
    }
}

/// Each row's logits (t_i, n) under the model with no dropout and no gradient.
fn row_logits(model: &dyn Model, head: &TaskHead, enc: &Encoder, rows: &[Row], batch_size: usize) -> Result<Vec<Vec<Vec<f32>>>> {
    let dev = Device::Cpu;
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch_size.max(1)) {
        let refs: Vec<&Row> = chunk.iter().collect();
        let (ids, types, mask) = enc.batch(&refs, &dev)?;
        let logits: Vec<Vec<Vec<f32>>> = forward(model, head, &ids, &types, &mask, None, true)?.to_vec3()?;
        for (mut l, r) in logits.into_iter().zip(chunk) {
            l.truncate(r.0.len());
            out.push(l);
        }
    }
    Ok(out)
}

/// What a span task's training step needs from its rows.
enum Targets {
    /// One label id per token ([`IGNORE`] where no loss).
    Tokens(Vec<Vec<u32>>),
    /// The answer's start and end token per window.
    Spans(Vec<(usize, usize)>),
}

/// The loss of a batch of `chunk`'s rows from logits (b, t, n) and mask (b, t).
fn batch_loss(logits: &Tensor, mask: &Tensor, targets: &Targets, chunk: &[usize]) -> Result<Option<Tensor>> {
    let dev = logits.device();
    let (b, t, n) = logits.dims3()?;
    match targets {
        Targets::Tokens(labels) => {
            let (mut rows, mut ys) = (Vec::new(), Vec::new());
            for (i, &r) in chunk.iter().enumerate() {
                for (j, &y) in labels[r].iter().enumerate() {
                    if y != IGNORE {
                        rows.push((i * t + j) as u32);
                        ys.push(y);
                    }
                }
            }
            if rows.is_empty() {
                return Ok(None);
            }
            let flat = logits.reshape((b * t, n))?.index_select(&Tensor::new(rows.as_slice(), dev)?, 0)?;
            Ok(Some(jielong_nn::cross_entropy(&flat, &Tensor::new(ys.as_slice(), dev)?)?))
        }
        Targets::Spans(spans) => {
            // Padding positions can never be the answer: a large negative bias there.
            let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?;
            let start = logits.narrow(2, 0, 1)?.squeeze(2)?.broadcast_add(&bias)?;
            let end = logits.narrow(2, 1, 1)?.squeeze(2)?.broadcast_add(&bias)?;
            let ys: Vec<u32> = chunk.iter().map(|&r| spans[r].0 as u32).collect();
            let ye: Vec<u32> = chunk.iter().map(|&r| spans[r].1 as u32).collect();
            let ls = jielong_nn::cross_entropy(&start, &Tensor::new(ys.as_slice(), dev)?)?;
            let le = jielong_nn::cross_entropy(&end, &Tensor::new(ye.as_slice(), dev)?)?;
            Ok(Some(((ls + le)? * 0.5)?))
        }
    }
}

/// Per-epoch validation: entity scores (NER) or EM/F1 (QA).
type Validate<'a> = dyn FnMut(&Setup, &Encoder) -> Result<(Option<EntityScores>, Option<QaScores>)> + 'a;

/// The shared epoch loop of the span tasks: shuffled batches of `rows`, the regime's forward
/// (a frozen body's hidden states computed once), the loss of `targets`, `validate` after
/// each epoch.
#[allow(clippy::too_many_arguments)]
fn train_rows(
    out: &Path,
    cfg: &FinetuneConfig,
    su: &mut Setup,
    enc: &Encoder,
    rows: &[Row],
    targets: &Targets,
    n_examples: usize,
    validate: &mut Validate<'_>,
    on_epoch: &mut dyn FnMut(&SpanEpoch),
) -> Result<(Vec<SpanEpoch>, usize, f64)> {
    let dev = Device::Cpu;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let metrics_path = out.join("metrics.jsonl");
    let _ = std::fs::remove_file(&metrics_path);
    let frozen = cfg.regime == FtRegime::Frozen;
    let total_steps = rows.len().div_ceil(cfg.batch_size) as u64 * cfg.epochs as u64;
    let started = Instant::now();
    // Frozen: every row's hidden states (t_i, c) once, with the inference copies of the weights.
    let cache: Option<Vec<Tensor>> = if frozen {
        let e = su.model.as_encoder().ok_or_else(|| Error::input("the model gives no hidden states"))?;
        e.prepare_inference()?;
        let mut v = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(cfg.batch_size) {
            let refs: Vec<&Row> = chunk.iter().collect();
            let (ids, types, mask) = enc.batch(&refs, &dev)?;
            let h = e.hidden_states(&ids, Some(&types), &mask)?.detach();
            for (i, r) in chunk.iter().enumerate() {
                v.push(h.get(i)?.narrow(0, 0, r.0.len())?);
            }
        }
        Some(v)
    } else {
        None
    };
    let (mut step, mut tokens, mut epochs) = (0u64, 0usize, Vec::new());
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        shuffle(&mut order, &mut Rng::derive(cfg.seed, &[epoch as u64]));
        let (mut loss_sum, mut counted) = (0f64, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let refs: Vec<&Row> = chunk.iter().map(|&i| &rows[i]).collect();
            tokens += refs.iter().map(|r| r.0.len()).sum::<usize>();
            let (ids, types, mask) = enc.batch(&refs, &dev)?;
            let seed = Some(cfg.seed.wrapping_add(step));
            let logits = match &cache {
                Some(c) => {
                    let t = ids.dim(1)?;
                    let padded: Vec<Tensor> = chunk.iter().map(|&i| c[i].pad_with_zeros(0, 0, t - c[i].dim(0).unwrap_or(t))).collect::<candle_core::Result<_>>()?;
                    let hidden = Tensor::stack(&padded, 0)?;
                    let e = su.model.as_encoder().expect("checked above");
                    su.head.logits(e, &hidden, &mask, ForwardOpts { dropout_seed: seed, first_row: 0 })?
                }
                None => forward(&*su.model, &su.head, &ids, &types, &mask, seed, frozen)?,
            };
            let Some(loss) = batch_loss(&logits, &mask, targets, chunk)? else { continue };
            let l = su.step(&loss, lr_at(cfg.learning_rate, step, total_steps), step)?;
            loss_sum += l * chunk.len() as f64;
            counted += chunk.len();
            step += 1;
        }
        let (ner, qa) = validate(su, enc)?;
        let row = SpanEpoch { epoch, step, train_loss: loss_sum / counted.max(1) as f64, ner, qa, examples_per_s: n_examples as f64 / t0.elapsed().as_secs_f64().max(1e-9), elapsed_s: started.elapsed().as_secs_f64() };
        let mut line = serde_json::to_string(&row).expect("serializes");
        line.push('\n');
        append(&metrics_path, &line)?;
        on_epoch(&row);
        epochs.push(row);
    }
    Ok((epochs, tokens, started.elapsed().as_secs_f64()))
}

/// NER examples as rows with their token features.
fn ner_features(tk: &jielong_tokenizer::Tokenizer, examples: &[NerExample], labels: &LabelSet, max_len: usize) -> Result<Vec<TokenFeatures>> {
    let framing = Framing::for_tokenizer(tk);
    examples.iter().map(|e| align_ner(tk, e, labels, framing, max_len)).collect()
}

fn feature_rows(f: &[TokenFeatures]) -> Vec<Row> {
    f.iter().map(|f| (f.ids.clone(), vec![0; f.ids.len()])).collect()
}

/// Predicted entities of each example, each with a score: the mean over its words of the
/// probability of the label predicted on the word's first piece.
fn tag_examples(model: &dyn Model, head: &TaskHead, enc: &Encoder, examples: &[NerExample], features: &[TokenFeatures], labels: &LabelSet, batch_size: usize) -> Result<Vec<Vec<(Entity, f32)>>> {
    let logits = row_logits(model, head, enc, &feature_rows(features), batch_size)?;
    let mut out = Vec::with_capacity(examples.len());
    for ((ex, f), l) in examples.iter().zip(features).zip(logits) {
        let probs: Vec<Vec<f32>> = l.iter().map(|row| softmax(row)).collect();
        let pred: Vec<u32> = probs.iter().map(|p| crate::finetune::argmax(p)).collect();
        let ents = decode_ner(ex, f, &pred, labels);
        // Each word's probability: that of its first piece's predicted label.
        let mut word_p = vec![None; ex.words.len()];
        for (t, w) in f.word_of.iter().enumerate() {
            if let Some(w) = *w {
                if word_p[w].is_none() {
                    word_p[w] = Some(probs[t][pred[t] as usize]);
                }
            }
        }
        out.push(
            ents.into_iter()
                .map(|e| {
                    let ps: Vec<f32> = ex.words.iter().zip(&word_p).filter(|(w, _)| w.0 >= e.start && w.1 <= e.end).filter_map(|(_, p)| *p).collect();
                    let score = if ps.is_empty() { 0.0 } else { ps.iter().sum::<f32>() / ps.len() as f32 };
                    (e, score)
                })
                .collect(),
        );
    }
    Ok(out)
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().cloned().fold(f32::MIN, f32::max);
    let e: Vec<f32> = row.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// seqeval-style entity scores of predictions against the examples' gold entities.
fn score_entities(examples: &[NerExample], predicted: &[Vec<(Entity, f32)>]) -> EntityScores {
    let gold: BTreeSet<(String, usize, usize, usize)> = examples.iter().enumerate().flat_map(|(i, e)| e.entities().into_iter().map(move |x| (x.label, i, x.start, x.end))).collect();
    let pred: BTreeSet<(String, usize, usize, usize)> = predicted.iter().enumerate().flat_map(|(i, p)| p.iter().map(move |(x, _)| (x.label.clone(), i, x.start, x.end))).collect();
    score_entity_sets(&gold, &pred)
}

/// Fine-tune `cfg.base` for NER on `cfg.data` (NER JSONL) into `out`.
pub fn finetune_ner(out: &Path, cfg: &FinetuneConfig, on_epoch: &mut dyn FnMut(&SpanEpoch)) -> Result<SpanSummary> {
    crate::finetune::check_run(out, cfg)?;
    let read = read_ner_jsonl(&cfg.data, false)?;
    let val = cfg.val_data.as_ref().map(|p| read_ner_jsonl(p, false).map(|r| r.examples)).transpose()?;
    let (train, val) = split(read.examples, val, cfg);
    let labels = LabelSet::bio_from(&train);
    if labels.len() < 3 {
        return Err(Error::input(format!("{}: the training sentences hold no entity (every tag is O): NER needs B-/I- tags", cfg.data.display())));
    }
    let mut su = Setup::open(cfg, HeadKind::TokenClassification, labels.len())?;
    let enc = Encoder::new(&su.tk, su.max_len)?;
    let tk = su.tk.without_padding()?;
    let feats = ner_features(&tk, &train, &labels, su.max_len)?;
    // A validation tag the training data never had cannot be predicted: it is an error.
    let val_feats = ner_features(&tk, &val, &labels, su.max_len).map_err(|e| Error::input(format!("validation data: {e}")))?;
    let rows = feature_rows(&feats);
    let targets = Targets::Tokens(feats.iter().map(|f| f.labels.clone()).collect());
    let batch = cfg.batch_size;
    let mut validate = |su: &Setup, enc: &Encoder| -> Result<(Option<EntityScores>, Option<QaScores>)> {
        if val.is_empty() {
            return Ok((None, None));
        }
        let pred = tag_examples(&*su.model, &su.head, enc, &val, &val_feats, &labels, batch)?;
        Ok((Some(score_entities(&val, &pred)), None))
    };
    let (epochs, tokens, elapsed_s) = train_rows(out, cfg, &mut su, &enc, &rows, &targets, train.len(), &mut validate, on_epoch)?;
    su.save_weights(out, "TOKEN_CLS")?;
    let mut record = su.record(cfg, "ner", labels.names.clone());
    record.span_val = epochs.last().and_then(|e| e.ner.as_ref()).map(|s| serde_json::to_value(s).expect("serializes"));
    jielong_core::fs::write_json_atomic(&out.join(TASK_FILE), &record)?;
    Ok(SpanSummary {
        labels: labels.names,
        train_examples: train.len(),
        val_examples: val.len(),
        train_rows: rows.len(),
        truncated_words: feats.iter().map(|f| f.truncated_words).sum(),
        unaligned_words: feats.iter().map(|f| f.unaligned_words).sum(),
        trainable: su.n_trainable,
        total_params: su.total_params,
        epochs,
        baseline: None,
        tokens_per_s: tokens as f64 / elapsed_s.max(1e-9),
        elapsed_s,
    })
}

fn qa_options(max_len: usize, s: &QaSettings) -> QaOptions {
    QaOptions { max_len, doc_stride: s.doc_stride, max_query_len: s.max_query_len }
}

/// Every example's windows.
fn windows_of(tk: &jielong_tokenizer::Tokenizer, examples: &[QaExample], opts: &QaOptions) -> Result<Vec<Vec<QaWindow>>> {
    let framing = Framing::for_tokenizer(tk);
    examples.iter().map(|e| qa_windows(tk, framing, e, opts)).collect()
}

/// The best answer of each example from its windows (`None`: no context token in any window).
fn answer_examples(model: &dyn Model, head: &TaskHead, enc: &Encoder, examples: &[QaExample], windows: &[Vec<QaWindow>], max_answer_len: usize, batch_size: usize) -> Result<Vec<Option<QaAnswer>>> {
    let rows: Vec<Row> = windows.iter().flatten().map(|w| (w.ids.clone(), w.type_ids.clone())).collect();
    let logits = row_logits(model, head, enc, &rows, batch_size)?;
    let mut at = 0;
    let mut out = Vec::with_capacity(examples.len());
    for (ex, ws) in examples.iter().zip(windows) {
        let l = &logits[at..at + ws.len()];
        at += ws.len();
        let start: Vec<Vec<f32>> = l.iter().map(|w| w.iter().map(|x| x[0]).collect()).collect();
        let end: Vec<Vec<f32>> = l.iter().map(|w| w.iter().map(|x| x[1]).collect()).collect();
        out.push(best_answer(&ex.context, ws, &start, &end, max_answer_len));
    }
    Ok(out)
}

fn score_answers(examples: &[QaExample], answers: &[Option<QaAnswer>]) -> QaScores {
    let items: Vec<(String, Vec<String>)> = examples.iter().zip(answers).map(|(e, a)| (a.as_ref().map(|a| a.text.clone()).unwrap_or_default(), e.answers.iter().map(|g| g.text.clone()).collect())).collect();
    qa_scores(&items)
}

/// A trivial QA baseline: the context's first word (its first character when it is Chinese).
pub fn first_word_baseline(examples: &[QaExample]) -> QaScores {
    let items: Vec<(String, Vec<String>)> = examples
        .iter()
        .map(|e| {
            let first = e.context.split_whitespace().next().unwrap_or("");
            let first = if first.chars().next().is_some_and(jielong_text::segment::is_han) { first.chars().take(1).collect() } else { first.to_string() };
            (first, e.answers.iter().map(|g| g.text.clone()).collect())
        })
        .collect();
    qa_scores(&items)
}

/// Fine-tune `cfg.base` for extractive QA on `cfg.data` (SQuAD JSON) into `out`.
pub fn finetune_qa(out: &Path, cfg: &FinetuneConfig, qa: QaSettings, on_epoch: &mut dyn FnMut(&SpanEpoch)) -> Result<SpanSummary> {
    crate::finetune::check_run(out, cfg)?;
    if qa.max_answer_len == 0 {
        return Err(Error::input("--max-answer-len must be at least 1"));
    }
    let all = read_squad(&cfg.data)?;
    let val = cfg.val_data.as_ref().map(|p| read_squad(p)).transpose()?;
    let (train, val) = split(all, val, cfg);
    let train: Vec<QaExample> = train.into_iter().filter(|e| !e.is_impossible && !e.answers.is_empty()).collect();
    let val: Vec<QaExample> = val.into_iter().filter(|e| !e.is_impossible && !e.answers.is_empty()).collect();
    if train.is_empty() {
        return Err(Error::input(format!("{}: no answerable question to train on", cfg.data.display())));
    }
    let mut su = Setup::open(cfg, HeadKind::SpanExtraction, 2)?;
    let enc = Encoder::new(&su.tk, su.max_len)?;
    let opts = qa_options(su.max_len, &qa);
    let tk = su.tk.without_padding()?;
    let windows = windows_of(&tk, &train, &opts)?;
    let val_windows = windows_of(&tk, &val, &opts)?;
    let rows: Vec<Row> = windows.iter().flatten().map(|w| (w.ids.clone(), w.type_ids.clone())).collect();
    let targets = Targets::Spans(windows.iter().flatten().map(|w| (w.start, w.end)).collect());
    let batch = cfg.batch_size;
    let mut validate = |su: &Setup, enc: &Encoder| -> Result<(Option<EntityScores>, Option<QaScores>)> {
        if val.is_empty() {
            return Ok((None, None));
        }
        let answers = answer_examples(&*su.model, &su.head, enc, &val, &val_windows, qa.max_answer_len, batch)?;
        Ok((None, Some(score_answers(&val, &answers))))
    };
    let (epochs, tokens, elapsed_s) = train_rows(out, cfg, &mut su, &enc, &rows, &targets, train.len(), &mut validate, on_epoch)?;
    su.save_weights(out, "QUESTION_ANS")?;
    let mut record: TaskRecord = su.record(cfg, "qa", Vec::new());
    record.qa = Some(qa);
    record.span_val = epochs.last().and_then(|e| e.qa.as_ref()).map(|s| serde_json::to_value(s).expect("serializes"));
    jielong_core::fs::write_json_atomic(&out.join(TASK_FILE), &record)?;
    Ok(SpanSummary {
        labels: Vec::new(),
        train_examples: train.len(),
        val_examples: val.len(),
        train_rows: rows.len(),
        truncated_words: 0,
        unaligned_words: 0,
        trainable: su.n_trainable,
        total_params: su.total_params,
        epochs,
        baseline: (!val.is_empty()).then(|| first_word_baseline(&val)),
        tokens_per_s: tokens as f64 / elapsed_s.max(1e-9),
        elapsed_s,
    })
}

/// A NER or QA model fine-tuned by this module, loaded for `predict` and `eval`.
pub struct SpanModel {
    pub record: TaskRecord,
    model: Box<dyn Model>,
    head: TaskHead,
    tk: jielong_tokenizer::Tokenizer,
    enc: Encoder,
}

impl SpanModel {
    /// Read the folder; `task` is "ner" or "qa" (a head trained for another task is refused).
    pub fn load(dir: &Path, task: &str) -> Result<Self> {
        let (record, model, head, tk) = load_task(dir, task)?;
        let enc = Encoder::new(&tk, record.max_len)?;
        let tk = tk.without_padding()?;
        Ok(Self { record, model, head, tk, enc })
    }

    fn labels(&self) -> LabelSet {
        LabelSet { names: self.record.labels.clone() }
    }

    /// Entities (with scores) in each example's text.
    pub fn tag(&self, examples: &[NerExample], batch_size: usize) -> Result<Vec<Vec<(Entity, f32)>>> {
        let labels = self.labels();
        // Prediction needs no gold tags: align with every word `O`.
        let bare: Vec<NerExample> = examples.iter().map(|e| NerExample { text: e.text.clone(), words: e.words.clone(), tags: vec!["O".into(); e.words.len()] }).collect();
        let feats = ner_features(&self.tk, &bare, &labels, self.record.max_len)?;
        tag_examples(&*self.model, &self.head, &self.enc, examples, &feats, &labels, batch_size)
    }

    /// Entity scores on labelled examples (micro, per type).
    pub fn evaluate_ner(&self, examples: &[NerExample], batch_size: usize) -> Result<EntityScores> {
        let labels = self.labels();
        if let Some(t) = examples.iter().flat_map(|e| &e.tags).find(|t| labels.id(t).is_none()) {
            return Err(Error::input(format!("tag `{t}` was not among the labels the model was trained with ({}): drop those lines or retrain with it", labels.names.join(", "))));
        }
        let pred = self.tag(examples, batch_size)?;
        Ok(score_entities(examples, &pred))
    }

    /// The best answer of each question.
    pub fn answer(&self, examples: &[QaExample], batch_size: usize) -> Result<Vec<Option<QaAnswer>>> {
        let s = self.record.qa.unwrap_or_default();
        let windows = windows_of(&self.tk, examples, &qa_options(self.record.max_len, &s))?;
        answer_examples(&*self.model, &self.head, &self.enc, examples, &windows, s.max_answer_len, batch_size)
    }

    /// Exact match and F1 on answered questions, beside the first-word baseline.
    pub fn evaluate_qa(&self, examples: &[QaExample], batch_size: usize) -> Result<(QaScores, QaScores)> {
        let ex: Vec<QaExample> = examples.iter().filter(|e| !e.is_impossible && !e.answers.is_empty()).cloned().collect();
        if ex.is_empty() {
            return Err(Error::input("no answerable question with a gold answer to score"));
        }
        let answers = self.answer(&ex, batch_size)?;
        Ok((score_answers(&ex, &answers), first_word_baseline(&ex)))
    }
}
