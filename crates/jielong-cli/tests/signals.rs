//! Ctrl-C (SIGINT) and kill -9 during training, through the real binary: Ctrl-C writes a
//! checkpoint after the current step and exits 130; a kill at any moment leaves the last
//! checkpoint intact, and `--resume` continues from it.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The training process, killed when the test ends however it ends (a failed assertion must
/// not leave a 100,000-step run behind).
struct Training(std::process::Child);

impl Drop for Training {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Training {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Training {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

fn start_training(dir: &std::path::Path, out: &str) -> Training {
    Training(Command::new(env!("CARGO_BIN_EXE_jielong"))
        .args(["train", "--config", "tiny.toml", "--out", out, "--set", "train.max_steps=100000", "--set", "train.checkpoint_interval=5"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

/// Wait until the run holds a complete checkpoint (any step: a fast machine may already have
/// rotated the first ones away, as `keep_checkpoints` says).
fn wait_for_checkpoint(run: &std::path::Path) {
    let complete = || {
        std::fs::read_dir(run).into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().starts_with("ckpt-") && e.path().join("meta.json").exists())
    };
    let t0 = Instant::now();
    while !complete() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn latest_step(run: &std::path::Path) -> u64 {
    let mut steps: Vec<u64> = std::fs::read_dir(run)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            // Only complete checkpoints: meta.json is written last.
            e.path().join("meta.json").exists().then_some(())?;
            e.file_name().to_str()?.strip_prefix("ckpt-")?.parse().ok()
        })
        .collect();
    steps.sort();
    *steps.last().unwrap()
}

#[test]
fn signals_ctrl_c_checkpoints_and_kill_keeps_last_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let corpus = write_corpus(dir);
    assert_ok(&jielong(&["tokenizer", "train", "--vocab-size", "300", "--out", "tok", corpus.to_str().unwrap()], dir));
    assert_ok(&jielong(&["data", "prepare", "--tokenizer", "tok", "--out", "shards", corpus.to_str().unwrap()], dir));
    std::fs::write(dir.join("tiny.toml"), TINY_CONFIG).unwrap();

    // SIGINT: checkpoint at the step where it stopped, exit 130.
    let mut child = start_training(dir, "run");
    wait_for_checkpoint(&dir.join("run"));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "Ctrl-C should exit 130");
    let stopped = latest_step(&dir.join("run"));
    let meta = std::fs::read_to_string(dir.join(format!("run/ckpt-{stopped:06}/meta.json"))).unwrap();
    assert!(meta.contains(&format!("\"step\": {stopped}")));
    let rows = jielong_metrics_steps(&dir.join("run/metrics.jsonl"));
    assert_eq!(*rows.last().unwrap(), stopped, "the checkpoint is at the last step run");

    // SIGKILL at an arbitrary moment: the newest complete checkpoint loads and training resumes.
    let mut child = start_training(dir, "run2");
    wait_for_checkpoint(&dir.join("run2"));
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let before = latest_step(&dir.join("run2"));
    let target = before + 3;
    let o = jielong(&["train", "--resume", "run2", "--set", &format!("train.max_steps={target}")], dir);
    assert_ok(&o);
    assert!(text(&o).contains(&format!("from step {before}")), "{}", text(&o));
    assert!(dir.join(format!("run2/ckpt-{target:06}")).exists());
}

fn jielong_metrics_steps(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"loss\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect()
}
