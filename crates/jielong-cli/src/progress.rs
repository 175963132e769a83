//! Progress bars and Ctrl-C handling shared by the subcommands.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A training progress bar: step, loss, tokens/s and ETA.
pub fn train_bar(start: u64, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_position(start);
    bar.set_style(
        ProgressStyle::with_template("{spinner} step {pos}/{len} [{bar:30}] {msg} · {elapsed} elapsed, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// A flag set by the first Ctrl-C (the trainer then checkpoints and stops); a second Ctrl-C
/// exits at once (the previous checkpoint is intact: checkpoints are written atomically).
pub fn stop_flag() -> Arc<AtomicBool> {
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let _ = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted again: exiting now");
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: writing a checkpoint after this step (Ctrl-C again to quit now)");
        });
        flag
    })
    .clone()
}
