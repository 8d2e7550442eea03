//! The update loop of a run: batches, updates, logging, validation and checkpoints, in an
//! order that a resumed run repeats exactly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::schedule::learning_rate;
use super::{state, Run, StopReason, ValidSet};
use crate::checkpoint::{self, Loaded};
use crate::config::SearchConfig;
use crate::data::batch::{token_batches, Batch, Example};
use crate::error::{Error, Result};
use crate::inference::{teacher_forced_nll, Translator};
use crate::metrics::{perplexity, Bleu};
use crate::model::dropout::Dropout;
use crate::rng::Rng;

/// Test hook: `NMT_TEST_NONFINITE_STEPS=3,4,5` makes the loss of those updates NaN, so the
/// real non-finite path (skip, count, stop) can be exercised end to end.
fn poisoned(step: usize) -> bool {
    std::env::var("NMT_TEST_NONFINITE_STEPS")
        .is_ok_and(|v| v.split(',').any(|s| s.trim().parse() == Ok(step)))
}

impl Run<'_> {
    /// Runs epochs from the state's position until the run ends.
    pub(super) fn train_loop(
        &mut self,
        examples: &[Example],
        interrupt: &AtomicBool,
    ) -> Result<StopReason> {
        let tc = self.spec.train.clone();
        let epochs = if tc.epochs == 0 {
            usize::MAX
        } else {
            tc.epochs
        };
        let planned = |per_epoch: usize| {
            if tc.max_steps > 0 {
                tc.max_steps
            } else {
                per_epoch.saturating_mul(tc.epochs.max(1))
            }
        };
        let (mut loss_sum, mut loss_tokens, mut interval_started) = (0f64, 0usize, Instant::now());
        let mut interval_tokens = 0usize;
        while self.state.epoch < epochs {
            let mut rng = Rng::from_state(self.state.epoch_rng);
            let batches = token_batches(examples, tc.batch_tokens, Some(&mut rng));
            let next_epoch_rng = rng.state();
            self.state.batches_in_epoch = Some(batches.len());
            let total_steps = planned(batches.len());
            let bar = self.progress_bar(batches.len());
            for idx in &batches[self.state.batch_in_epoch..] {
                if interrupt.load(Ordering::SeqCst) {
                    bar.finish_and_clear();
                    self.save()?;
                    self.log.text(&format!(
                        "interrupted at step {}; checkpoint saved",
                        self.state.step
                    ))?;
                    return Ok(StopReason::Interrupted);
                }
                let epoch_pos = self.state.epoch as f64
                    + self.state.batch_in_epoch as f64 / batches.len() as f64;
                let lr = learning_rate(
                    &tc,
                    self.state.step + 1,
                    epoch_pos,
                    self.state.validation.lr_scale,
                    total_steps,
                );
                let started = Instant::now();
                let (nll, tokens, grad_norm, applied) = self.update(examples, idx, lr)?;
                self.state.train_secs += started.elapsed().as_secs_f64();
                self.state.step += 1;
                self.state.batch_in_epoch += 1;
                self.state.target_tokens += tokens;
                interval_tokens += tokens;
                if applied {
                    self.state.bad_in_row = 0;
                    loss_sum += nll;
                    loss_tokens += tokens;
                    self.last_loss = nll / tokens as f64;
                } else {
                    self.state.bad_in_row += 1;
                    self.state.skipped_updates += 1;
                    if self.state.bad_in_row >= tc.max_bad_steps {
                        bar.finish_and_clear();
                        let msg = format!(
                            "{} updates in a row had a non-finite loss or gradient (last at step {}); the last good checkpoint is kept in {}. Lower --lr or raise --clip-norm and start again.",
                            self.state.bad_in_row,
                            self.state.step,
                            self.spec.out.display()
                        );
                        self.log.text(&msg)?;
                        return Err(Error::Training(msg));
                    }
                }
                bar.inc(1);
                bar.set_message(format!(
                    "loss {:.3} lr {lr:.2e} {:.0} tok/s",
                    loss_sum / loss_tokens.max(1) as f64,
                    self.state.target_tokens as f64 / self.state.train_secs.max(1e-9)
                ));
                let step = self.state.step;
                if step.is_multiple_of(tc.log_every) {
                    let secs = interval_started.elapsed().as_secs_f64().max(1e-9);
                    let loss = loss_sum / loss_tokens.max(1) as f64;
                    self.log.metrics(json!({
                        "kind": "train", "step": step, "epoch": epoch_pos, "loss": loss,
                        "ppl": loss.exp(), "lr": lr, "tok_per_s": interval_tokens as f64 / secs,
                        "grad_norm": grad_norm, "skipped": self.state.skipped_updates,
                    }))?;
                    (loss_sum, loss_tokens, interval_tokens, interval_started) =
                        (0.0, 0, 0, Instant::now());
                }
                let mut stop = None;
                if tc.valid_every > 0 && step.is_multiple_of(tc.valid_every) && self.validate()? {
                    stop = Some(StopReason::EarlyStopped);
                }
                if tc.max_steps > 0 && step >= tc.max_steps {
                    stop = stop.or(Some(StopReason::MaxSteps));
                }
                if stop.is_some() || (tc.save_every > 0 && step.is_multiple_of(tc.save_every)) {
                    self.save()?;
                }
                if let Some(reason) = stop {
                    bar.finish_and_clear();
                    return Ok(reason);
                }
            }
            bar.finish_and_clear();
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.state.epoch_rng = next_epoch_rng;
            let early = self.validate()?;
            self.save()?;
            self.log.text(&format!(
                "epoch {} step {} tok/s {:.0}{} skipped_updates {}",
                self.state.epoch,
                self.state.step,
                self.state.target_tokens as f64 / self.state.train_secs.max(1e-9),
                self.last_valid_ppl
                    .map(|p| format!(" valid_ppl {p:.2}"))
                    .unwrap_or_default(),
                self.state.skipped_updates
            ))?;
            if early {
                return Ok(StopReason::EarlyStopped);
            }
        }
        Ok(StopReason::Completed)
    }

    /// One update on batch `idx`: (plain NLL sum, target tokens, gradient norm, applied).
    fn update(
        &mut self,
        examples: &[Example],
        idx: &[usize],
        lr: f64,
    ) -> Result<(f64, usize, f64, bool)> {
        let tc = &self.spec.train;
        let refs: Vec<&Example> = idx.iter().map(|&j| &examples[j]).collect();
        let batch = Batch::new(&refs, &self.cfg, self.device)?;
        let mut dropout = Dropout {
            rng: Rng::from_state(self.state.dropout_rng),
            p: tc.dropout,
        };
        let use_dropout = tc.dropout > 0.0;
        let n = batch.tgt_tokens;
        // The mean over the batch's tokens (NaN when a test poisons this update).
        let scale = if poisoned(self.state.step + 1) {
            f64::NAN
        } else {
            1.0 / n as f64
        };
        let (nll, report) = if self.device.is_cpu() {
            // Our own backward pass over the fused ops (model::train_step).
            let fwd = self.model.forward_cpu(
                &batch,
                use_dropout.then_some(&mut dropout),
                tc.label_smoothing,
                scale as f32,
            )?;
            let nll = fwd.nll;
            (nll, self.optimizer.step_named(&fwd.backward()?, lr)?)
        } else {
            let (loss, nll) = self.model.forward_train(
                &batch,
                use_dropout.then_some(&mut dropout),
                tc.label_smoothing,
            )?;
            let grads = (loss * scale)?.backward()?;
            let nll = nll.to_scalar::<f32>()? as f64;
            (nll, self.optimizer.step(&grads, lr)?)
        };
        self.state.dropout_rng = dropout.rng.state();
        Ok((nll, n, report.grad_norm, report.applied))
    }

    /// Validates (when there is a validation set); returns true when early stopping says stop.
    fn validate(&mut self) -> Result<bool> {
        let Some(valid) = &self.valid else {
            return Ok(false);
        };
        let tc = &self.spec.train;
        let (nll, n) =
            teacher_forced_nll(&self.model, &valid.examples, tc.batch_tokens, self.device)?;
        let ppl = perplexity(nll, n);
        let bleu = if tc.valid_bleu {
            Some(self.valid_bleu(valid)?)
        } else {
            None
        };
        self.last_valid_ppl = Some(ppl);
        let step = self.state.step;
        let improved = self.state.validation.record(tc, step, ppl, bleu);
        if improved {
            // The run folder's model is the best one so far.
            checkpoint::save_model(&self.spec.out, &self.model)?;
        }
        self.log.metrics(json!({
            "kind": "valid", "step": step, "epoch": self.state.epoch as f64, "valid_ppl": ppl,
            "valid_bleu": bleu, "best": improved, "lr_scale": self.state.validation.lr_scale,
            "train_secs": self.state.train_secs,
        }))?;
        Ok(self.state.validation.should_stop(tc))
    }

    /// BLEU of the validation set translated with the current weights.
    fn valid_bleu(&self, valid: &ValidSet) -> Result<f64> {
        let search = SearchConfig {
            beam: self.spec.train.valid_beam,
            ..SearchConfig::default()
        };
        let loaded = Loaded {
            model: self.model.clone(),
            src_tok: self.src_tok.clone(),
            tgt_tok: self.tgt_tok.clone(),
        };
        let hyps =
            Translator::new(vec![("validation".into(), loaded)], search)?.translate(&valid.src)?;
        Ok(Bleu::corpus(&hyps, &valid.refs).score)
    }

    /// Saves a step checkpoint, prunes old ones, and without validation keeps the run
    /// folder's model at the latest weights.
    fn save(&mut self) -> Result<()> {
        let weights = self.model.named_tensors();
        let weights = weights.into_iter().map(|(k, t)| (k, t.detach())).collect();
        state::save(
            &self.spec.out,
            &self.state,
            &weights,
            &self.optimizer.state_tensors()?,
        )?;
        if self.valid.is_none() {
            checkpoint::save_model(&self.spec.out, &self.model)?;
        }
        state::prune(
            &self.spec.out,
            self.spec.train.keep_last,
            self.state.validation.best_step,
        )
    }

    fn progress_bar(&self, len: usize) -> ProgressBar {
        if !self.spec.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}", self.state.epoch + 1));
        bar.set_position(self.state.batch_in_epoch as u64);
        bar
    }
}
