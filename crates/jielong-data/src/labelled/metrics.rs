//! Scores for labelled tasks, computed as the reference tools compute them:
//!
//! - NER: entity-level precision, recall and F1 as `seqeval` (default mode, IOB2) reports them:
//!   an entity counts as correct only when its type, start and end all match; micro average over
//!   all entities, per-type scores, and the macro and support-weighted averages of
//!   `classification_report`. A zero denominator gives 0 (seqeval's `zero_division="warn"`).
//! - QA: exact match and F1 of the official SQuAD v1.1 script (lower-case, drop ASCII
//!   punctuation, the articles a/an/the and extra whitespace; F1 over whitespace tokens; best
//!   over the gold answers; reported ×100). Whitespace tokens mean nothing in Chinese, so when
//!   the gold answers or the prediction hold a Han character jielong scores as the CMRC 2018
//!   script does: exact match after lower-casing and dropping punctuation, and F1 from the
//!   longest common run of segments, where every Han character is a segment (other text is cut
//!   at whitespace, where CMRC uses NLTK's word tokenizer) and punctuation is dropped.
//! - Classification: accuracy, and macro-F1 over the classes present in gold or predictions
//!   (scikit-learn's `f1_score(average="macro")`).

use super::bio;
use jielong_text::segment::is_han;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Precision, recall and F1 of one group of entities, and how many gold entities it has.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

fn prf(correct: usize, predicted: usize, gold: usize) -> Prf {
    let div = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (p, r) = (div(correct, predicted), div(correct, gold));
    let f1 = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    Prf { precision: p, recall: r, f1, support: gold }
}

/// Entity-level scores (see the module doc).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EntityScores {
    pub micro: Prf,
    pub macro_avg: Prf,
    pub weighted_avg: Prf,
    pub per_type: BTreeMap<String, Prf>,
    pub gold_entities: usize,
    pub predicted_entities: usize,
    pub correct: usize,
}

/// seqeval's scores for gold and predicted BIO tag sequences, one sequence per sentence.
/// Sentences must pair up (the same count; a pair may differ in length only if the caller
/// truncated, and positions past the shorter one are read as `O`).
pub fn entity_scores<S: AsRef<str>>(gold: &[Vec<S>], pred: &[Vec<S>]) -> EntityScores {
    let collect = |seqs: &[Vec<S>]| -> BTreeSet<(String, usize, usize, usize)> {
        seqs.iter().enumerate().flat_map(|(i, s)| bio::entities(s).into_iter().map(move |e| (e.label, i, e.start, e.end))).collect()
    };
    score_entity_sets(&collect(gold), &collect(pred))
}

/// The same scores for entities given as (type, sentence, start, end) — e.g. the character
/// spans `decode_ner` returns, keyed by sentence index.
pub fn score_entity_sets(gold: &BTreeSet<(String, usize, usize, usize)>, pred: &BTreeSet<(String, usize, usize, usize)>) -> EntityScores {
    let types: BTreeSet<&String> = gold.iter().chain(pred.iter()).map(|e| &e.0).collect();
    let mut per_type = BTreeMap::new();
    for t in types {
        let g = gold.iter().filter(|e| &e.0 == t).count();
        let p = pred.iter().filter(|e| &e.0 == t).count();
        let c = gold.iter().filter(|e| &e.0 == t && pred.contains(*e)).count();
        per_type.insert(t.clone(), prf(c, p, g));
    }
    let correct = gold.intersection(pred).count();
    let n = per_type.len().max(1) as f64;
    let mean = |f: fn(&Prf) -> f64| per_type.values().map(f).sum::<f64>() / n;
    let total: usize = per_type.values().map(|v| v.support).sum();
    let weighted = |f: fn(&Prf) -> f64| if total == 0 { 0.0 } else { per_type.values().map(|v| f(v) * v.support as f64).sum::<f64>() / total as f64 };
    EntityScores {
        micro: prf(correct, pred.len(), gold.len()),
        macro_avg: Prf { precision: mean(|v| v.precision), recall: mean(|v| v.recall), f1: mean(|v| v.f1), support: total },
        weighted_avg: Prf { precision: weighted(|v| v.precision), recall: weighted(|v| v.recall), f1: weighted(|v| v.f1), support: total },
        per_type,
        gold_entities: gold.len(),
        predicted_entities: pred.len(),
        correct,
    }
}

/// The SQuAD v1.1 script's `normalize_answer`: lower-case, drop ASCII punctuation, drop the
/// words a/an/the, collapse whitespace.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: String = lower.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    // re.sub(r'\b(a|an|the)\b', ' ', text): an article that is a whole word (word characters
    // are Unicode letters, digits and '_').
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<char> = no_punct.chars().collect();
    let mut out = String::with_capacity(no_punct.len());
    let mut i = 0;
    while i < chars.len() {
        let at_start = i == 0 || !word(chars[i - 1]);
        let mut matched = 0;
        if at_start {
            for art in ["a", "an", "the"] {
                let n = art.len();
                if chars.len() >= i + n && chars[i..i + n].iter().copied().eq(art.chars()) && chars.get(i + n).is_none_or(|&c| !word(c)) {
                    matched = n;
                    break;
                }
            }
        }
        if matched > 0 {
            out.push(' ');
            i += matched;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SQuAD exact match of one prediction against one gold answer.
pub fn squad_exact(pred: &str, gold: &str) -> bool {
    normalize_answer(pred) == normalize_answer(gold)
}

/// SQuAD token F1 of one prediction against one gold answer.
pub fn squad_f1(pred: &str, gold: &str) -> f64 {
    let (p, g) = (normalize_answer(pred), normalize_answer(gold));
    token_f1(&p.split_whitespace().collect::<Vec<_>>(), &g.split_whitespace().collect::<Vec<_>>())
}

fn token_f1(p: &[&str], g: &[&str]) -> f64 {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in g {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0;
    for t in p {
        if let Some(c) = counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let (pr, rc) = (same as f64 / p.len() as f64, same as f64 / g.len() as f64);
    2.0 * pr * rc / (pr + rc)
}

/// The punctuation CMRC 2018's script drops (its `sp_char`, with all ASCII punctuation).
fn cmrc_punct(c: char) -> bool {
    c.is_ascii_punctuation() || "，。：？！“”；’《》…·、「」（）－～『』—‘".contains(c)
}

/// CMRC's mixed segmentation: every Han character alone, other runs cut at whitespace; lower-cased, punctuation dropped.
fn cmrc_segments(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in s.trim().to_lowercase().chars() {
        if cmrc_punct(c) {
            continue;
        }
        if is_han(c) {
            out.extend(run.split_whitespace().map(str::to_string));
            run.clear();
            out.push(c.to_string());
        } else {
            run.push(c);
        }
    }
    out.extend(run.split_whitespace().map(str::to_string));
    out
}

/// CMRC 2018 exact match: equal after lower-casing, trimming and dropping punctuation.
pub fn cmrc_exact(pred: &str, gold: &str) -> bool {
    let clean = |s: &str| s.trim().to_lowercase().chars().filter(|&c| !cmrc_punct(c)).collect::<String>();
    clean(pred) == clean(gold)
}

/// CMRC 2018 F1: the longest common (contiguous) run of segments against each side's length.
pub fn cmrc_f1(pred: &str, gold: &str) -> f64 {
    let (p, g) = (cmrc_segments(pred), cmrc_segments(gold));
    let mut best = 0;
    let mut row = vec![0usize; p.len() + 1];
    for gi in &g {
        let mut prev_diag = 0;
        for j in 0..p.len() {
            let up = row[j + 1];
            row[j + 1] = if gi == &p[j] { prev_diag + 1 } else { 0 };
            best = best.max(row[j + 1]);
            prev_diag = up;
        }
    }
    if best == 0 {
        return 0.0;
    }
    let (pr, rc) = (best as f64 / p.len() as f64, best as f64 / g.len() as f64);
    2.0 * pr * rc / (pr + rc)
}

/// Exact match and F1 over a set of questions, ×100 as the scripts print them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct QaScores {
    pub exact_match: f64,
    pub f1: f64,
    pub count: usize,
}

/// An exact-match rule and an F1 rule.
type Scorer = (fn(&str, &str) -> bool, fn(&str, &str) -> f64);

/// Scores of (prediction, gold answers) pairs: the best over gold answers, averaged, ×100.
/// SQuAD's rules, or CMRC's where the gold answers or the prediction hold a Han character.
pub fn qa_scores<P: AsRef<str>, G: AsRef<str>>(items: &[(P, Vec<G>)]) -> QaScores {
    let (mut em, mut f1) = (0.0, 0.0);
    for (pred, golds) in items {
        let pred = pred.as_ref();
        let chinese = pred.chars().any(is_han) || golds.iter().any(|g| g.as_ref().chars().any(is_han));
        let (e, f): Scorer = if chinese { (cmrc_exact, cmrc_f1) } else { (squad_exact, squad_f1) };
        em += if golds.iter().any(|g| e(pred, g.as_ref())) { 1.0 } else { 0.0 };
        f1 += golds.iter().map(|g| f(pred, g.as_ref())).fold(0.0, f64::max);
    }
    let n = items.len().max(1) as f64;
    QaScores { exact_match: 100.0 * em / n, f1: 100.0 * f1 / n, count: items.len() }
}

/// Fraction of predictions equal to the gold label (0 for no items).
pub fn accuracy(gold: &[u32], pred: &[u32]) -> f64 {
    let n = gold.len().min(pred.len());
    if n == 0 {
        return 0.0;
    }
    gold.iter().zip(pred).filter(|(g, p)| g == p).count() as f64 / n as f64
}

/// Unweighted mean of the per-class F1 over the classes in `gold` or `pred`
/// (scikit-learn's `f1_score(average="macro")`, zero division giving 0).
pub fn macro_f1(gold: &[u32], pred: &[u32]) -> f64 {
    let classes: BTreeSet<u32> = gold.iter().chain(pred).copied().collect();
    if classes.is_empty() {
        return 0.0;
    }
    let sum: f64 = classes
        .iter()
        .map(|&c| {
            let tp = gold.iter().zip(pred).filter(|(g, p)| **g == c && **p == c).count();
            let np = pred.iter().filter(|p| **p == c).count();
            let ng = gold.iter().filter(|g| **g == c).count();
            prf(tp, np, ng).f1
        })
        .sum();
    sum / classes.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_answer_matches_squad_rules() {
        assert_eq!(normalize_answer("The  Cat, an apple; a-b"), "cat apple ab");
        assert_eq!(normalize_answer("theatre Anna"), "theatre anna");
        assert_eq!(normalize_answer("the_a a_the"), "thea athe", "_ is punctuation, removed before articles");
    }

    #[test]
    fn cmrc_scores_chinese_by_characters() {
        assert!(cmrc_exact("北京。", "北京"));
        // pred 北京市 vs gold 北京: LCS 2, P = 2/3, R = 1 → F1 = 0.8
        assert!((cmrc_f1("北京市", "北京") - 0.8).abs() < 1e-12);
        // Not a bag of characters: the longest common *run* counts (京北 vs 北京 share runs of 1).
        assert!((cmrc_f1("京北", "北京") - 0.5).abs() < 1e-12);
        assert!((cmrc_f1("在 Beijing 北京", "Beijing 北京") - 2.0 * 0.75 / 1.75).abs() < 1e-12);
        let s = qa_scores(&[("北京市", vec!["北京", "北京市"]), ("上海", vec!["北京"])]);
        assert_eq!((s.exact_match, s.f1, s.count), (50.0, 50.0, 2));
    }

    #[test]
    fn accuracy_and_macro_f1_by_hand() {
        let g = [0, 0, 1, 1, 2];
        let p = [0, 1, 1, 1, 0];
        assert!((accuracy(&g, &p) - 0.6).abs() < 1e-12);
        // class 0: P 1/2 R 1/2 F 0.5; class 1: P 2/3 R 1 F 0.8; class 2: F 0 → mean 0.4333…
        assert!((macro_f1(&g, &p) - 1.3 / 3.0).abs() < 1e-12);
    }
}

/// jielong's metrics against seqeval, the official SQuAD v1.1 script and scikit-learn, on the
/// inputs in `tests/fixtures/labelled/metrics.json` (made by `make_metrics.py` beside it).
#[cfg(test)]
mod reference {
    use super::*;
    use serde_json::Value;

    fn fixture() -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/labelled/metrics.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn close(a: f64, b: &Value, what: &str) {
        let b = b.as_f64().unwrap();
        assert!((a - b).abs() < 1e-9, "{what}: jielong {a}, reference {b}");
    }

    fn seqs(v: &Value) -> Vec<Vec<String>> {
        serde_json::from_value(v.clone()).unwrap()
    }

    #[test]
    fn entity_scores_equal_seqeval() {
        let f = fixture();
        for (i, case) in f["ner"].as_array().unwrap().iter().enumerate() {
            let (gold, pred) = (seqs(&case["gold"]), seqs(&case["pred"]));
            let s = entity_scores(&gold, &pred);
            close(s.micro.precision, &case["precision"], &format!("case {i} precision"));
            close(s.micro.recall, &case["recall"], &format!("case {i} recall"));
            close(s.micro.f1, &case["f1"], &format!("case {i} f1"));
            let report = case["report"].as_object().unwrap();
            for (name, r) in report {
                let got = match name.as_str() {
                    "micro avg" => s.micro,
                    "macro avg" => s.macro_avg,
                    "weighted avg" => s.weighted_avg,
                    ty => s.per_type[ty],
                };
                close(got.precision, &r["precision"], &format!("case {i} {name} precision"));
                close(got.recall, &r["recall"], &format!("case {i} {name} recall"));
                close(got.f1, &r["f1-score"], &format!("case {i} {name} f1"));
                if name != "micro avg" {
                    close(got.support as f64, &r["support"], &format!("case {i} {name} support"));
                }
            }
            assert_eq!(report.len(), s.per_type.len() + 3, "case {i}: the same entity types");
            let all: Vec<&Vec<String>> = gold.iter().chain(pred.iter()).collect();
            for (seq, want) in all.iter().zip(case["entities"].as_array().unwrap()) {
                let got: Vec<Value> = bio::entities(seq).into_iter().map(|e| serde_json::json!([e.label, e.start, e.end - 1])).collect();
                assert_eq!(&Value::Array(got), want, "get_entities of {seq:?}");
            }
        }
    }

    #[test]
    fn squad_scores_equal_the_official_script() {
        let f = fixture();
        let mut items = Vec::new();
        for it in f["squad"]["items"].as_array().unwrap() {
            let p = it["prediction"].as_str().unwrap();
            let golds: Vec<String> = serde_json::from_value(it["golds"].clone()).unwrap();
            assert_eq!(normalize_answer(p), it["normalized"].as_str().unwrap());
            let em = golds.iter().any(|g| squad_exact(p, g));
            close(em as u8 as f64, &it["exact"], &format!("exact {p:?}"));
            close(golds.iter().map(|g| squad_f1(p, g)).fold(0.0, f64::max), &it["f1"], &format!("f1 {p:?}"));
            items.push((p.to_string(), golds));
        }
        let s = qa_scores(&items);
        close(s.exact_match, &f["squad"]["overall"]["exact_match"], "overall exact match");
        close(s.f1, &f["squad"]["overall"]["f1"], "overall f1");
    }

    #[test]
    fn classification_scores_equal_sklearn() {
        let f = fixture();
        let c = &f["classification"];
        let g: Vec<u32> = serde_json::from_value(c["gold"].clone()).unwrap();
        let p: Vec<u32> = serde_json::from_value(c["pred"].clone()).unwrap();
        close(accuracy(&g, &p), &c["accuracy"], "accuracy");
        close(macro_f1(&g, &p), &c["macro_f1"], "macro f1");
    }
}
