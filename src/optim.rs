//! SGD and Adam over the model's `Var`s, with global gradient-norm clipping. The project owns
//! these: Candle's AdamW keeps its moments private and candle-nn has no clipping.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::config::OptimizerKind;
use crate::error::{Error, Result};

/// Adam's running moments, one pair per variable.
struct AdamMoments {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

/// Updates a fixed list of variables.
pub struct Optimizer {
    kind: OptimizerKind,
    names: Vec<String>,
    vars: Vec<Var>,
    clip_norm: f64,
    adam: Option<AdamMoments>,
}

/// What one update did.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// False when the gradients were not finite and the update was skipped.
    pub applied: bool,
}

impl Optimizer {
    /// `vars`: the named variables to update.
    pub fn new(kind: OptimizerKind, vars: Vec<(String, Var)>, clip_norm: f64) -> Result<Self> {
        let (names, vars): (Vec<String>, Vec<Var>) = vars.into_iter().unzip();
        let adam = match kind {
            OptimizerKind::Sgd => None,
            OptimizerKind::Adam => {
                let zeros = vars
                    .iter()
                    .map(|v| Ok(v.as_tensor().zeros_like()?))
                    .collect::<Result<Vec<_>>>()?;
                Some(AdamMoments {
                    m: zeros.clone(),
                    v: zeros,
                    t: 0,
                })
            }
        };
        Ok(Optimizer {
            kind,
            names,
            vars,
            clip_norm,
            adam,
        })
    }

    /// Adam's moments as named tensors (`m.NAME`, `v.NAME`) and its step count (`t`, as a
    /// one-element tensor); empty for SGD.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        if let Some(st) = &self.adam {
            for (i, name) in self.names.iter().enumerate() {
                out.insert(format!("m.{name}"), st.m[i].clone());
                out.insert(format!("v.{name}"), st.v[i].clone());
            }
            let dev = self.vars[0].device();
            out.insert("t".into(), Tensor::new(&[st.t as f32], dev)?);
        }
        Ok(out)
    }

    /// Restores what `state_tensors` saved.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let Some(st) = self.adam.as_mut() else {
            return Ok(());
        };
        let get = |key: &str| {
            tensors
                .get(key)
                .cloned()
                .ok_or_else(|| Error::Training(format!("the checkpoint's optimizer state lacks `{key}` (was it trained with another optimizer?)")))
        };
        for (i, name) in self.names.iter().enumerate() {
            st.m[i] = get(&format!("m.{name}"))?;
            st.v[i] = get(&format!("v.{name}"))?;
        }
        st.t = get("t")?.to_vec1::<f32>()?[0] as i32;
        Ok(())
    }

    /// Clips the gradients to `clip_norm` (global L2 norm) and applies one update at `lr`.
    /// Non-finite gradients skip the update.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<StepReport> {
        let gs: Vec<Option<&Tensor>> = self.vars.iter().map(|v| grads.get(v.as_tensor())).collect();
        let mut sq = 0f64;
        for g in gs.iter().flatten() {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let grad_norm = sq.sqrt();
        if !grad_norm.is_finite() {
            return Ok(StepReport {
                grad_norm,
                applied: false,
            });
        }
        let scale = if grad_norm > self.clip_norm {
            self.clip_norm / grad_norm
        } else {
            1.0
        };
        match self.kind {
            OptimizerKind::Sgd => {
                for (var, g) in self.vars.iter().zip(&gs) {
                    if let Some(g) = g {
                        var.set(&(var.as_tensor() - (*g * (lr * scale))?)?)?;
                    }
                }
            }
            OptimizerKind::Adam => {
                let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
                let st = self.adam.as_mut().expect("adam moments exist for Adam");
                st.t += 1;
                let c1 = 1.0 - b1.powi(st.t);
                let c2 = 1.0 - b2.powi(st.t);
                for (i, (var, g)) in self.vars.iter().zip(&gs).enumerate() {
                    let Some(g) = g else { continue };
                    let g = (*g * scale)?;
                    st.m[i] = ((&st.m[i] * b1)? + (&g * (1.0 - b1))?)?;
                    st.v[i] = ((&st.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let update = ((&st.m[i] / c1)? / ((&st.v[i] / c2)?.sqrt()? + eps)?)?;
                    var.set(&(var.as_tensor() - (update * lr)?)?)?;
                }
            }
        }
        Ok(StepReport {
            grad_norm,
            applied: true,
        })
    }
}
