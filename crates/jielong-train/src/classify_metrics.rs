//! Classification scores: accuracy and macro-F1, computed as scikit-learn's
//! `accuracy_score` and `f1_score(average="macro")` do: F1 per class over the classes that
//! occur in the true or the predicted labels, a class with no true and no predicted example
//! left out, 0 where precision or recall is 0/0 (`zero_division=0`), then the unweighted mean.
//! The majority-class baseline (always the most frequent training label) is scored the same
//! way, so a classifier's numbers can be read against what guessing gives.

use std::collections::BTreeSet;

/// Accuracy and macro-F1 of a prediction.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub n: usize,
}

/// Score `pred` against `gold` (label indices, the same length).
pub fn scores(gold: &[u32], pred: &[u32]) -> Scores {
    assert_eq!(gold.len(), pred.len(), "one prediction per example");
    let n = gold.len();
    let correct = gold.iter().zip(pred).filter(|(g, p)| g == p).count();
    let classes: BTreeSet<u32> = gold.iter().chain(pred).copied().collect();
    let f1s: Vec<f64> = classes
        .iter()
        .map(|&c| {
            let tp = gold.iter().zip(pred).filter(|&(&g, &p)| g == c && p == c).count() as f64;
            let fp = gold.iter().zip(pred).filter(|&(&g, &p)| g != c && p == c).count() as f64;
            let fn_ = gold.iter().zip(pred).filter(|&(&g, &p)| g == c && p != c).count() as f64;
            if 2.0 * tp + fp + fn_ == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fn_)
            }
        })
        .collect();
    Scores { accuracy: correct as f64 / n.max(1) as f64, macro_f1: f1s.iter().sum::<f64>() / f1s.len().max(1) as f64, n }
}

/// The most frequent label of `train` (the lowest index on ties).
pub fn majority_label(train: &[u32]) -> u32 {
    let max = train.iter().copied().max().unwrap_or(0) as usize;
    let mut counts = vec![0usize; max + 1];
    train.iter().for_each(|&l| counts[l as usize] += 1);
    let best = counts.iter().copied().max().unwrap_or(0);
    counts.iter().position(|&c| c == best).unwrap_or(0) as u32
}

/// The majority-class baseline's scores on `gold`.
pub fn majority_baseline(train: &[u32], gold: &[u32]) -> Scores {
    let m = majority_label(train);
    scores(gold, &vec![m; gold.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers from scikit-learn 1.9.1 (the bench venv): `f1_score([0,0,1,1,2,2,2], [0,1,1,1,2,0,2],
    /// average="macro")` = 0.7000000000000001, accuracy 0.7142857142857143; with class 3
    /// predicted but never true, `f1_score([0,0,1,1], [0,3,1,1], average="macro")` =
    /// 0.5555555555555555 (class 3 scores 0); the constant prediction
    /// `f1_score([0,1,1,1], [1,1,1,1], average="macro")` = 0.42857142857142855.
    #[test]
    fn classify_metrics_match_scikit_learn() {
        let s = scores(&[0, 0, 1, 1, 2, 2, 2], &[0, 1, 1, 1, 2, 0, 2]);
        assert!((s.accuracy - 0.7142857142857143).abs() < 1e-12);
        assert!((s.macro_f1 - 0.7000000000000001).abs() < 1e-12, "{}", s.macro_f1);
        assert!((scores(&[0, 0, 1, 1], &[0, 3, 1, 1]).macro_f1 - 0.5555555555555555).abs() < 1e-12);
        let b = majority_baseline(&[1, 1, 0], &[0, 1, 1, 1]);
        assert!((b.macro_f1 - 0.42857142857142855).abs() < 1e-12 && (b.accuracy - 0.75).abs() < 1e-12);
        assert_eq!(majority_label(&[2, 0, 2, 0]), 0);
    }
}
