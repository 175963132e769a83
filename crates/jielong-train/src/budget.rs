//! Training for a wall-clock budget (`train.max_minutes`, `jielong compare`): the number of
//! steps the cosine schedule is laid out for, re-planned from the steps actually measured.
//!
//! Before training, a few timed forward/backward passes give a first estimate of the steps
//! that fit (`trainer::calibrate`). That estimate is only as good as a few passes on a cold
//! process: the first steps of a run allocate, the host may be busy. So after the first
//! `replan_after` steps, and again after four times as many, the plan is redone from the
//! measured pace: `max_steps = step + (budget − spent) / seconds_per_step`, so that the schedule
//! reaches its minimum learning rate as the budget runs out. A re-plan happens during the
//! warm-up where it can (the warm-up's learning rates do not depend on `max_steps`), and the
//! new `max_steps` is written to the run's config, so `--resume` continues the schedule the
//! run was on: the learning rate of every step is a function of the saved config alone.

use std::time::Instant;

/// Share of the remaining time kept back for evaluation, checkpoints and the last step.
const MARGIN: f64 = 0.05;

/// The steps the schedule is laid out for: the `step` already done, plus as many steps of
/// `per_step_s` as fit in what is left of `budget_s` after `spent_s` (less `MARGIN`), at least
/// one more and at most `cap` in all.
pub fn replan_steps(budget_s: f64, spent_s: f64, per_step_s: f64, step: u64, cap: u64) -> u64 {
    let left = (budget_s - spent_s).max(0.0) * (1.0 - MARGIN);
    let more = if per_step_s > 0.0 { (left / per_step_s).floor() as u64 } else { cap };
    (step + more.max(1)).min(cap.max(step + 1))
}

/// The clock of one budgeted run.
pub struct TimeBudget {
    budget_s: f64,
    /// When the run began (its setup and the timed calibration count against the budget).
    began: Instant,
    cap: u64,
    /// The next step after which to re-plan; None after the last re-plan.
    next: Option<u64>,
    /// Steps and time when the first step ended (the first step warms up, so it is not timed).
    first: Option<(u64, Instant)>,
}

impl TimeBudget {
    /// A budget of `budget_s` seconds counted from `began`, never planning past `cap` steps;
    /// `estimate` is the calibrated step count (it sets when to re-plan).
    pub fn new(budget_s: f64, began: Instant, cap: u64, estimate: u64) -> Self {
        Self { budget_s, began, cap, next: Some((estimate / 40).clamp(3, 25)), first: None }
    }

    /// Call after each finished `step` (counted from 1); returns the new `max_steps` when this
    /// step re-plans.
    pub fn after_step(&mut self, step: u64) -> Option<u64> {
        let now = Instant::now();
        let Some((s1, t1)) = self.first else {
            self.first = Some((step, now));
            return None;
        };
        let at = self.next?;
        if step < at {
            return None;
        }
        self.next = if at < 100 { Some(at * 4) } else { None };
        let per_step = now.duration_since(t1).as_secs_f64() / (step - s1).max(1) as f64;
        Some(replan_steps(self.budget_s, now.duration_since(self.began).as_secs_f64(), per_step, step, self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::schedule::lr_at;

    #[test]
    fn replan_steps_fills_the_time_left() {
        // 100 s budget, 10 s spent, 0.5 s a step: 90·0.95/0.5 = 171 more steps.
        assert_eq!(replan_steps(100.0, 10.0, 0.5, 20, 1_000_000), 191);
        // Capped by the run's own max_steps, and always at least one step more.
        assert_eq!(replan_steps(100.0, 10.0, 0.5, 20, 100), 100);
        assert_eq!(replan_steps(100.0, 120.0, 0.5, 20, 1000), 21);
        assert_eq!(replan_steps(100.0, 10.0, 0.0, 20, 500), 500);
    }

    /// The schedule as a function of the elapsed fraction of the budget: with a first estimate
    /// 3× too pessimistic (what a cold calibration gave recurrent families), the re-planned
    /// schedule still reaches its minimum as the budget ends, not a third of the way down.
    #[test]
    fn replanned_schedule_decays_over_the_budget() {
        let (budget, per_step, warmup) = (120.0, 0.1, 20);
        let estimate = (budget / (3.0 * per_step)) as u64; // 400 steps planned, 1200 fit
        let mut cfg = TrainConfig { learning_rate: 1.0, min_lr: 0.1, warmup_steps: warmup, max_steps: estimate, ..Default::default() };
        // Re-plan at step 10 (inside the warm-up) with the pace measured there.
        let step = 10;
        cfg.max_steps = replan_steps(budget, step as f64 * per_step, per_step, step, 1_000_000);
        let end = cfg.max_steps;
        let spent_at_end = end as f64 * per_step;
        assert!((spent_at_end / budget - (1.0 - MARGIN)).abs() < 0.01, "the schedule ends at {:.3} of the budget", spent_at_end / budget);
        // Learning rate against the elapsed fraction: warm-up, then half-way down at about half
        // the budget, at the minimum at the end.
        let lr_at_fraction = |f: f64| lr_at(&cfg, (f * budget / per_step) as u64);
        assert!((lr_at_fraction(0.5) - 0.55).abs() < 0.05, "{}", lr_at_fraction(0.5));
        assert!(lr_at_fraction(0.25) > lr_at_fraction(0.5) && lr_at_fraction(0.5) > lr_at_fraction(0.75));
        assert!((lr_at(&cfg, end - 1) - 0.1).abs() < 1e-3);
        // Without the re-plan the rate hits its floor a third of the way in.
        let old = TrainConfig { max_steps: estimate, ..cfg.clone() };
        assert_eq!(lr_at(&old, (0.34 * budget / per_step) as u64), 0.1);
    }

    #[test]
    fn time_budget_replans_after_the_first_steps_then_stops() {
        let mut b = TimeBudget::new(1000.0, Instant::now(), 5000, 400);
        let plans: Vec<(u64, u64)> = (1..=200).filter_map(|s| b.after_step(s).map(|m| (s, m))).collect();
        // Re-plans after steps 10, 40 and 160, never before the first timed step.
        assert_eq!(plans.iter().map(|p| p.0).collect::<Vec<_>>(), vec![10, 40, 160]);
        // Steps that take no time: the plan is the cap.
        assert!(plans.iter().all(|p| p.1 == 5000));
    }
}
