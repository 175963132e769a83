//! Learning rate: linear warmup to `learning_rate`, then cosine decay to `min_lr` at `max_steps`.

use crate::config::TrainConfig;

pub fn lr_at(cfg: &TrainConfig, step: u64) -> f64 {
    if step < cfg.warmup_steps {
        return cfg.learning_rate * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    if step >= cfg.max_steps {
        return cfg.min_lr;
    }
    let span = (cfg.max_steps - cfg.warmup_steps).max(1) as f64;
    let progress = (step - cfg.warmup_steps) as f64 / span;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_min() {
        let cfg = TrainConfig { learning_rate: 1.0, min_lr: 0.1, warmup_steps: 10, max_steps: 110, ..Default::default() };
        assert!((lr_at(&cfg, 0) - 0.1).abs() < 1e-12);
        assert!((lr_at(&cfg, 9) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 60) - 0.55).abs() < 1e-12);
        assert!((lr_at(&cfg, 110) - 0.1).abs() < 1e-12);
        assert!(lr_at(&cfg, 30) > lr_at(&cfg, 31));
    }
}
