//! Learning-rate schedules, and the validation bookkeeping behind reduce-on-plateau, the best
//! checkpoint and early stopping.

use serde::{Deserialize, Serialize};

use crate::config::{Metric, Schedule, TrainConfig};

/// The learning rate of update number `step` (1-based). `epoch` is fractional (2.5 = halfway
/// through the third epoch), `lr_scale` is what reduce-on-plateau has left of the rate, and
/// `total_steps` the planned length of the run (for linear decay).
pub fn learning_rate(
    cfg: &TrainConfig,
    step: usize,
    epoch: f64,
    lr_scale: f64,
    total_steps: usize,
) -> f64 {
    let step = step.max(1) as f64;
    let warm = cfg.warmup_steps.max(1) as f64;
    let factor = match cfg.schedule {
        Schedule::Constant | Schedule::Plateau => 1.0,
        Schedule::Paper if epoch < 5.0 => 1.0,
        Schedule::Paper => 0.5f64.powi(1 + ((epoch - 5.0) * 2.0).floor() as i32),
        Schedule::InverseSqrt => (step / warm).min((warm / step).sqrt()),
        Schedule::Linear => {
            let total = (total_steps as f64).max(warm + 1.0);
            if step <= warm {
                step / warm
            } else {
                ((total - step) / (total - warm)).max(0.0)
            }
        }
    };
    cfg.lr * factor * lr_scale
}

/// What validations have shown so far (saved with every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Best value of the chosen metric and the step it was reached at.
    pub best: Option<f64>,
    pub best_step: usize,
    /// Validations in a row without a new best (early stopping).
    pub since_best: usize,
    /// Best validation perplexity and checks without improving it (reduce-on-plateau).
    pub best_ppl: Option<f64>,
    pub since_best_ppl: usize,
    /// What reduce-on-plateau has left of the learning rate.
    pub lr_scale: f64,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            best: None,
            best_step: 0,
            since_best: 0,
            best_ppl: None,
            since_best_ppl: 0,
            lr_scale: 1.0,
        }
    }
}

impl Validation {
    /// Records one validation at `step`; returns true when it is a new best.
    pub fn record(&mut self, cfg: &TrainConfig, step: usize, ppl: f64, bleu: Option<f64>) -> bool {
        if self.best_ppl.is_none_or(|b| ppl < b) {
            self.best_ppl = Some(ppl);
            self.since_best_ppl = 0;
        } else {
            self.since_best_ppl += 1;
            if cfg.schedule == Schedule::Plateau && self.since_best_ppl >= cfg.plateau_patience {
                self.lr_scale *= 0.5;
                self.since_best_ppl = 0;
            }
        }
        let (value, higher_is_better) = match (cfg.metric, bleu) {
            (Metric::Bleu, Some(b)) => (b, true),
            _ => (ppl, false),
        };
        let better = self.best.is_none_or(|b| {
            if higher_is_better {
                value > b
            } else {
                value < b
            }
        });
        if better {
            self.best = Some(value);
            self.best_step = step;
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        better
    }

    /// Early stopping: `patience` validations without a new best.
    pub fn should_stop(&self, cfg: &TrainConfig) -> bool {
        cfg.patience > 0 && self.since_best >= cfg.patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_schedule_halves_every_half_epoch_after_five() {
        let cfg = TrainConfig::default();
        assert_eq!(learning_rate(&cfg, 1, 0.0, 1.0, 100), 0.7);
        assert_eq!(learning_rate(&cfg, 1, 4.99, 1.0, 100), 0.7);
        assert_eq!(learning_rate(&cfg, 1, 5.0, 1.0, 100), 0.35);
        assert_eq!(learning_rate(&cfg, 1, 5.6, 1.0, 100), 0.175);
    }

    #[test]
    fn warmup_schedules() {
        let cfg = TrainConfig {
            schedule: Schedule::InverseSqrt,
            warmup_steps: 100,
            lr: 1.0,
            ..TrainConfig::default()
        };
        assert!((learning_rate(&cfg, 50, 0.0, 1.0, 0) - 0.5).abs() < 1e-12);
        assert!((learning_rate(&cfg, 100, 0.0, 1.0, 0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&cfg, 400, 0.0, 1.0, 0) - 0.5).abs() < 1e-12);
        let lin = TrainConfig {
            schedule: Schedule::Linear,
            ..cfg
        };
        assert!((learning_rate(&lin, 150, 0.0, 1.0, 200) - 0.5).abs() < 1e-12);
        assert_eq!(learning_rate(&lin, 200, 0.0, 1.0, 200), 0.0);
    }

    #[test]
    fn plateau_halves_and_patience_stops() {
        let cfg = TrainConfig {
            schedule: Schedule::Plateau,
            plateau_patience: 2,
            patience: 3,
            ..TrainConfig::default()
        };
        let mut v = Validation::default();
        assert!(v.record(&cfg, 10, 50.0, None));
        assert!(!v.record(&cfg, 20, 51.0, None));
        assert_eq!(v.lr_scale, 1.0);
        assert!(!v.record(&cfg, 30, 52.0, None));
        assert_eq!(v.lr_scale, 0.5);
        assert!(!v.should_stop(&cfg));
        assert!(!v.record(&cfg, 40, 50.5, None));
        assert!(v.should_stop(&cfg));
        assert_eq!(v.best_step, 10);
    }
}
