//! `jielong sft --packing` end to end on a tiny GPT: a step packs the examples the padded run
//! would pad, so the first step's loss is the padded run's (same weights, same examples, same
//! loss tokens), the run learns as the padded one does, on fewer positions per step; prompt
//! tuning refuses packing with a user error.

use crate::sft::{config, data, make_base_with};
use jielong_core::Rng;
use jielong_train::{sft, Regime};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Reverse-the-word conversations of uneven lengths (words of 2 to 24 letters), where padding
/// each batch to its longest example wastes most positions.
fn uneven(dir: &Path, n: usize) -> PathBuf {
    let mut rng = Rng::new(11);
    let lines: Vec<String> = (0..n)
        .map(|_| {
            let len = 2 + rng.below(23) as usize;
            let w: String = (0..len).map(|_| b"abcdef"[rng.below(6) as usize] as char).collect();
            let r: String = w.chars().rev().collect();
            serde_json::json!({"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": r}]}).to_string()
        })
        .collect();
    let p = dir.join("uneven.jsonl");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

#[test]
fn sft_packed_run_matches_the_padded_one_on_fewer_positions() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base_with(dir.path(), 192);
    let file = uneven(dir.path(), 64);
    let run = |packing: bool, out: &str| {
        let mut c = config(&base, &file, Regime::Full, "builtin", 12);
        c.packing = packing;
        sft(&dir.path().join(out), c, false, &AtomicBool::new(false), &mut |_| {}).unwrap()
    };
    let padded = run(false, "padded");
    let packed = run(true, "packed");
    let (l0, p0) = (padded.step_losses[0].1, packed.step_losses[0].1);
    println!("padded: {:.0} positions/step, {:.0} tok/s, loss {:.4} → {:.4}, {:.2} s; packed: {:.0} positions/step, {:.0} tok/s, loss {:.4} → {:.4}, {:.2} s", padded.positions_per_step, padded.tokens_per_s, padded.loss_before, padded.loss_after, padded.elapsed_s, packed.positions_per_step, packed.tokens_per_s, packed.loss_before, packed.loss_after, packed.elapsed_s);
    assert!((l0 - p0).abs() <= 1e-5 * l0, "first step: padded loss {l0}, packed {p0}");
    // Same batches, gradients equal up to rounding: the runs stay together.
    assert!((padded.loss_after - packed.loss_after).abs() <= 1e-3 * padded.loss_after, "after: padded {} packed {}", padded.loss_after, packed.loss_after);
    assert!(packed.loss_after < 0.9 * packed.loss_before, "packed run learnt nothing: {} → {}", packed.loss_before, packed.loss_after);
    // Rows of 192 hold several examples of 25 to 70 tokens: fewer positions than padding.
    assert!(packed.positions_per_step < 0.85 * padded.positions_per_step, "positions per step: packed {} padded {}", packed.positions_per_step, padded.positions_per_step);

    let mut c = config(&base, &file, Regime::Prompt, "builtin", 2);
    c.packing = true;
    let e = sft(&dir.path().join("prompt"), c, false, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("--packing cannot be used with --regime prompt"), "{e}");
}

#[test]
fn sft_packed_prefix_and_lora_runs_learn() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base_with(dir.path(), 96);
    let file = data(dir.path(), 64, 9);
    for regime in [Regime::Lora, Regime::Prefix] {
        let mut c = config(&base, &file, regime, "builtin", 12);
        c.packing = true;
        let s = sft(&dir.path().join(format!("{regime:?}")), c, false, &AtomicBool::new(false), &mut |_| {}).unwrap();
        assert!(s.loss_after < s.loss_before, "{regime:?}: {} → {}", s.loss_before, s.loss_after);
    }
}
