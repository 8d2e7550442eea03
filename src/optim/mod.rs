//! SGD and Adam over the model's `Var`s, with global gradient-norm clipping. The project owns
//! these: Candle's AdamW keeps its moments private and candle-nn has no clipping. On the CPU
//! the arithmetic runs fused and in place (`fused`); elsewhere as Candle tensor ops.

pub mod fused;
#[cfg(feature = "cuda")]
mod fused_cuda;

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

/// A parameter's gradient.
pub enum Gradient {
    Dense(Tensor),
    /// Only the rows `ids` (distinct) of a `(V, E)` parameter are non-zero: an embedding's
    /// rows for the batch's words. `rows`: `(ids.len(), E)`.
    Rows {
        ids: Vec<u32>,
        rows: Vec<f32>,
    },
}

impl Gradient {
    /// A dense CPU gradient from `data`, shaped like the parameter `like`.
    pub fn dense_like(data: Vec<f32>, like: &Tensor) -> Result<Self> {
        Ok(Gradient::Dense(Tensor::from_vec(
            data,
            like.shape(),
            &candle_core::Device::Cpu,
        )?))
    }

    /// The gradient as a dense tensor shaped like `like` (a parameter: `(rows, cols)` or
    /// `(n)`).
    pub fn to_dense(&self, like: &Tensor) -> Result<Tensor> {
        match self {
            Gradient::Dense(t) => Ok(t.clone()),
            Gradient::Rows { ids, rows } => {
                let e = like.dim(1)?;
                let mut dense = vec![0f32; like.elem_count()];
                for (&id, row) in ids.iter().zip(rows.chunks_exact(e.max(1))) {
                    dense[id as usize * e..(id as usize + 1) * e].copy_from_slice(row);
                }
                Ok(Tensor::from_vec(dense, like.shape(), like.device())?)
            }
        }
    }
}

/// Updates a fixed list of variables.
pub struct Optimizer {
    kind: OptimizerKind,
    names: Vec<String>,
    vars: Vec<Var>,
    clip_norm: f64,
    adam: Option<AdamMoments>,
    /// In-place fused arithmetic (`fused`); false: Candle tensor ops.
    fused: bool,
    /// Every variable lives on the CPU (the norm and sparse rows are computed on the host).
    on_cpu: bool,
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
        let on_cpu = vars.iter().all(|v| v.device().is_cpu());
        // The in-place updates run on the CPU and on CUDA; elsewhere tensor ops.
        let fused = on_cpu || vars.iter().all(|v| v.device().is_cuda());
        let adam = match kind {
            OptimizerKind::Sgd => None,
            OptimizerKind::Adam => {
                // Separate storage for each moment: the CPU path updates them in place.
                let zeros = || {
                    vars.iter()
                        .map(|v| Ok(v.as_tensor().zeros_like()?))
                        .collect::<Result<Vec<_>>>()
                };
                Some(AdamMoments {
                    m: zeros()?,
                    v: zeros()?,
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
            fused,
            on_cpu,
        })
    }

    /// Runs the arithmetic as Candle tensor ops even on the CPU (the path of other devices),
    /// to compare the two.
    pub fn with_tensor_ops(mut self) -> Self {
        self.fused = false;
        self
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

    /// Restores what `state_tensors` saved. A moment of another shape, or a step count that
    /// is not one non-negative whole number, is refused (a damaged or foreign checkpoint).
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
        for (i, (name, var)) in self.names.iter().zip(&self.vars).enumerate() {
            for (key, slot) in [("m", &mut st.m[i]), ("v", &mut st.v[i])] {
                let key = format!("{key}.{name}");
                let t = get(&key)?;
                if t.dims() != var.dims() || t.dtype() != var.dtype() {
                    return Err(Error::Training(format!(
                        "the checkpoint's optimizer state `{key}` is {:?} {:?}, but the weight is {:?} {:?}",
                        t.dtype(),
                        t.dims(),
                        var.dtype(),
                        var.dims()
                    )));
                }
                // Own copies: the CPU path updates the moments in place.
                *slot = t.copy()?;
            }
        }
        let t = get("t")?;
        let steps = t
            .flatten_all()
            .and_then(|t| t.to_dtype(candle_core::DType::F64))
            .and_then(|t| t.to_vec1::<f64>())?;
        st.t = match steps.as_slice() {
            [n] if n.fract() == 0.0 && (0.0..=i32::MAX as f64).contains(n) => *n as i32,
            other => {
                return Err(Error::Training(format!(
                    "the checkpoint's optimizer step count `t` is {other:?}; expected one whole number >= 0"
                )))
            }
        };
        Ok(())
    }

    /// Clips the gradients to `clip_norm` (global L2 norm) and applies one update at `lr`.
    /// Non-finite gradients skip the update.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<StepReport> {
        let gs: Vec<Option<&Tensor>> = self.vars.iter().map(|v| grads.get(v.as_tensor())).collect();
        let rows = vec![None; gs.len()];
        self.apply(gs, rows, lr)
    }

    /// `step` with the gradients by variable name (the CPU training step's own backward pass).
    /// Row gradients stay sparse in the fused SGD update and in the norm.
    pub fn step_named(&mut self, grads: &HashMap<String, Gradient>, lr: f64) -> Result<StepReport> {
        let sparse_sgd = self.fused && self.on_cpu && matches!(self.kind, OptimizerKind::Sgd);
        let mut dense: Vec<Option<Tensor>> = Vec::with_capacity(self.vars.len());
        let mut rows: Vec<Option<(&[u32], &[f32])>> = Vec::with_capacity(self.vars.len());
        for (name, var) in self.names.iter().zip(&self.vars) {
            let (d, r) = match grads.get(name) {
                None => (None, None),
                Some(Gradient::Rows { ids, rows }) if sparse_sgd => {
                    (None, Some((ids.as_slice(), rows.as_slice())))
                }
                Some(g) => (Some(g.to_dense(var.as_tensor())?), None),
            };
            dense.push(d);
            rows.push(r);
        }
        self.apply(dense.iter().map(Option::as_ref).collect(), rows, lr)
    }

    /// `gs`: each variable's dense gradient, in `vars` order; `rows`: or its non-zero rows
    /// (fused SGD only).
    fn apply(
        &mut self,
        gs: Vec<Option<&Tensor>>,
        rows: Vec<Option<(&[u32], &[f32])>>,
        lr: f64,
    ) -> Result<StepReport> {
        let mut sq: f64 = rows
            .iter()
            .flatten()
            .map(|(_, r)| fused::sum_squares_of(r))
            .sum();
        if self.fused && self.on_cpu {
            for g in gs.iter().flatten() {
                sq += fused::sum_squares(g)?;
            }
        } else if self.fused {
            // CUDA: one kernel per parameter adds its sum of squares into its slot of one
            // device buffer, read back once per step.
            let grads: Vec<Tensor> = gs
                .iter()
                .flatten()
                .map(|g| g.contiguous())
                .collect::<candle_core::Result<_>>()?;
            if let Some(first) = grads.first() {
                let sums = Tensor::zeros(grads.len(), candle_core::DType::F32, first.device())?;
                for (slot, g) in grads.iter().enumerate() {
                    sums.inplace_op2(g, &fused::SumSquaresInto { slot })?;
                }
                sq += sums
                    .to_vec1::<f32>()?
                    .iter()
                    .map(|&x| x as f64)
                    .sum::<f64>();
            }
        } else {
            // The per-parameter sums stay on the device: one read-back per step, not one
            // per parameter.
            let sums = gs
                .iter()
                .flatten()
                .map(|g| Ok(g.sqr()?.sum_all()?))
                .collect::<Result<Vec<_>>>()?;
            if !sums.is_empty() {
                sq += Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f32>()? as f64;
            }
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
                for ((var, g), r) in self.vars.iter().zip(&gs).zip(&rows) {
                    if let Some((ids, rows)) = r {
                        let step = (lr * scale) as f32;
                        var.as_tensor()
                            .inplace_op1(&fused::SgdRows { ids, rows, step })?;
                    }
                    let Some(g) = g else { continue };
                    if self.fused {
                        let step = (lr * scale) as f32;
                        var.as_tensor()
                            .inplace_op2(&g.contiguous()?, &fused::SgdUpdate { step })?;
                    } else {
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
                    if self.fused {
                        let g = g.contiguous()?;
                        let moment = |decay: f64, square| fused::MomentUpdate {
                            decay: decay as f32,
                            scale: scale as f32,
                            square,
                        };
                        st.m[i].inplace_op2(&g, &moment(b1, false))?;
                        st.v[i].inplace_op2(&g, &moment(b2, true))?;
                        let update = fused::AdamUpdate {
                            lr: lr as f32,
                            c1: c1 as f32,
                            c2: c2 as f32,
                            eps: eps as f32,
                        };
                        var.as_tensor().inplace_op3(&st.m[i], &st.v[i], &update)?;
                        continue;
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The norm's per-parameter op (the one CUDA runs as a kernel) adds each gradient's sum
    /// of squares into its own slot, as `sum_squares` computes it.
    #[test]
    fn sum_squares_into_adds_each_gradient_into_its_slot() {
        let a = Tensor::new(&[[1f32, -2.0], [3.0, 0.5]], &Device::Cpu).unwrap();
        let b = Tensor::arange(0f32, 5000.0, &Device::Cpu).unwrap();
        let b = (b * 1e-3).unwrap();
        let sums = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        sums.inplace_op2(&a, &fused::SumSquaresInto { slot: 0 })
            .unwrap();
        sums.inplace_op2(&b, &fused::SumSquaresInto { slot: 2 })
            .unwrap();
        sums.inplace_op2(&a, &fused::SumSquaresInto { slot: 2 })
            .unwrap();
        let got = sums.to_vec1::<f32>().unwrap();
        let (sa, sb) = (
            fused::sum_squares(&a).unwrap(),
            fused::sum_squares(&b).unwrap(),
        );
        assert_eq!(got[0], sa as f32);
        assert_eq!(got[1], 0.0);
        assert!(((got[2] as f64) - (sa + sb)).abs() < 1e-4 * (sa + sb));
        let e = sums
            .inplace_op2(&a, &fused::SumSquaresInto { slot: 3 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("slot 3 outside 3 sums"), "{e}");
    }

    /// The fused in-place updates against the same arithmetic in Candle tensor ops: three
    /// steps with clipping active, weights and Adam's moments compared.
    #[test]
    fn fused_updates_match_tensor_ops() {
        let mut rng = crate::rng::Rng::new(3);
        let mut data = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect() };
        let (w0, w1) = (data(40_000), data(7));
        let grads: Vec<(Vec<f32>, Vec<f32>)> = (0..3).map(|_| (data(40_000), data(7))).collect();
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let make = || -> Vec<(String, Var)> {
                vec![
                    (
                        "a".into(),
                        Var::from_slice(&w0, (200, 200), &Device::Cpu).unwrap(),
                    ),
                    ("b".into(), Var::from_slice(&w1, 7, &Device::Cpu).unwrap()),
                ]
            };
            let (va, vb) = (make(), make());
            let mut fused = Optimizer::new(kind, va.clone(), 5.0).unwrap();
            let mut plain = Optimizer::new(kind, vb.clone(), 5.0)
                .unwrap()
                .with_tensor_ops();
            for (ga, gb) in &grads {
                for (opt, vars) in [(&mut fused, &va), (&mut plain, &vb)] {
                    let loss = ((vars[0].1.as_tensor()
                        * Tensor::from_slice(ga, (200, 200), &Device::Cpu).unwrap())
                    .unwrap()
                    .sum_all()
                    .unwrap()
                        + (vars[1].1.as_tensor()
                            * Tensor::from_slice(gb, 7, &Device::Cpu).unwrap())
                        .unwrap()
                        .sum_all()
                        .unwrap())
                    .unwrap();
                    let report = opt.step(&loss.backward().unwrap(), 0.01).unwrap();
                    assert!(
                        report.applied && report.grad_norm > 5.0,
                        "clipping is active"
                    );
                }
            }
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut pairs: Vec<(Tensor, Tensor)> = va
                .iter()
                .zip(&vb)
                .map(|(a, b)| (a.1.as_tensor().clone(), b.1.as_tensor().clone()))
                .collect();
            let (sa, sb) = (
                fused.state_tensors().unwrap(),
                plain.state_tensors().unwrap(),
            );
            for (k, t) in &sa {
                pairs.push((t.clone(), sb[k].clone()));
            }
            for (a, b) in pairs {
                for (x, y) in flat(&a).iter().zip(flat(&b)) {
                    assert!(
                        (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                        "{kind:?}: {x} vs {y}"
                    );
                }
            }
        }
    }

    /// Row gradients (an embedding's batch rows) update like the same gradient given dense,
    /// with SGD's sparse step and with Adam (which densifies them), clipping included.
    #[test]
    fn row_gradients_update_like_dense_ones() {
        let dev = Device::Cpu;
        let w0: Vec<f32> = (0..6 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
        let ids = vec![4u32, 1];
        let rows: Vec<f32> = (0..2 * 4).map(|i| 3.0 - i as f32).collect();
        let mut dense = vec![0f32; 6 * 4];
        dense[16..20].copy_from_slice(&rows[..4]);
        dense[4..8].copy_from_slice(&rows[4..]);
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let var = || Var::from_slice(&w0, (6, 4), &dev).unwrap();
            let (a, b) = (var(), var());
            let mut opt_a = Optimizer::new(kind, vec![("e".into(), a.clone())], 1.0).unwrap();
            let mut opt_b = Optimizer::new(kind, vec![("e".into(), b.clone())], 1.0).unwrap();
            let sparse = HashMap::from([(
                "e".to_string(),
                Gradient::Rows {
                    ids: ids.clone(),
                    rows: rows.clone(),
                },
            )]);
            let full = HashMap::from([(
                "e".to_string(),
                Gradient::Dense(Tensor::from_slice(&dense, (6, 4), &dev).unwrap()),
            )]);
            for _ in 0..2 {
                let ra = opt_a.step_named(&sparse, 0.5).unwrap();
                let rb = opt_b.step_named(&full, 0.5).unwrap();
                assert!((ra.grad_norm - rb.grad_norm).abs() < 1e-9 && ra.grad_norm > 1.0);
            }
            let flat = |v: &Var| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            for (x, y) in flat(&a).iter().zip(flat(&b)) {
                assert!((x - y).abs() <= 1e-6, "{kind:?}: {x} vs {y}");
            }
            assert_ne!(flat(&a), w0, "{kind:?}: the update happened");
        }
    }
}
