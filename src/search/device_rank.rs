//! Ranking a step's candidates where the logits are: per row of logits `(rows, vocab)`, its
//! best extensions scored `base + log-softmax`, as one tensor op. On CUDA it is one kernel
//! (src/kernels/cuda/top_k.cu), so a step copies `(rows, k)` candidates back to the host
//! instead of `(rows, vocab)` log-probabilities; on the CPU it is the host ranking of
//! `rank`, the reference the kernel is held to.

use candle_core::{CpuStorage, CustomOp2, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::rank::{row_top_k, Ranking};
use super::{log_softmax_rows, Candidates};
use crate::error::{Error, Result};
use crate::tensor_data::cpu_f32;

/// Logits `(rows, vocab)` and bases `(rows)` -> `(rows, 2k)`: per row its `k` best scores,
/// best first, then their token ids as floats (-1 where the row had fewer than `k` entries
/// that are not NaN).
struct RowTopK {
    k: usize,
    banned: Option<u32>,
}

/// Token ids travel as f32, exact below 2^24.
const MAX_VOCAB: usize = 1 << 24;

/// Whether `rank_logits` runs on `device` (elsewhere: read the rows back and rank them
/// with `rank::rank_rows`).
pub fn runs_on(device: &Device) -> bool {
    device.is_cpu() || device.is_cuda()
}

/// Per row of `logits (rows, vocab)`, its best `ranking.widths[r]` (score, token) with
/// score `ranking.bases[r] + log-softmax`, best first, ties to the lower token id, NaN and
/// `ranking.banned` skipped: `rank::rank_rows` over the rows' log-softmax, computed where
/// the logits are.
pub fn rank_logits(logits: &Tensor, ranking: &Ranking) -> Result<Candidates> {
    let (rows, vocab) = logits.dims2()?;
    if ranking.bases.len() != rows || ranking.widths.len() != rows {
        return Err(Error::Config(format!(
            "ranking: {} bases and {} widths for {rows} rows of logits",
            ranking.bases.len(),
            ranking.widths.len()
        )));
    }
    if vocab >= MAX_VOCAB {
        return Err(Error::Config(format!(
            "ranking: a target vocabulary of {vocab} entries is too large to rank on the device (at most {})",
            MAX_VOCAB - 1
        )));
    }
    let k = ranking.widths.iter().copied().max().unwrap_or(0);
    if k == 0 {
        return Ok(vec![Vec::new(); rows]);
    }
    let bases = Tensor::from_slice(&ranking.bases, rows, logits.device())?;
    let op = RowTopK {
        k,
        banned: ranking.banned,
    };
    let picked = logits.contiguous()?.apply_op2_no_bwd(&bases, &op)?;
    let picked = picked.to_vec2::<f32>()?;
    Ok(picked
        .iter()
        .zip(&ranking.widths)
        .map(|(p, &width)| {
            (0..width)
                .take_while(|&j| p[k + j] >= 0.0)
                .map(|j| (p[j], p[k + j] as u32))
                .collect()
        })
        .collect())
}

fn check_bases(l: &Layout, rows: usize) -> candle_core::Result<()> {
    if l.shape().elem_count() != rows {
        candle_core::bail!(
            "row-top-k: {} bases for {rows} rows of logits",
            l.shape().elem_count()
        );
    }
    Ok(())
}

impl CustomOp2 for RowTopK {
    fn name(&self) -> &'static str {
        "row-top-k"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, vocab) = l1.shape().dims2()?;
        check_bases(l2, rows)?;
        let x = cpu_f32(s1, l1, "logits").map_err(candle_core::Error::wrap)?;
        let bases = cpu_f32(s2, l2, "bases").map_err(candle_core::Error::wrap)?;
        let k = self.k;
        let mut out = vec![0f32; rows * 2 * k];
        out.par_chunks_mut(2 * k).enumerate().for_each(|(r, o)| {
            let mut row = x[r * vocab..(r + 1) * vocab].to_vec();
            log_softmax_rows(&mut row, vocab);
            let top = row_top_k(&row, bases[r], k, self.banned);
            for j in 0..k {
                (o[j], o[k + j]) = top
                    .get(j)
                    .map_or((f32::NEG_INFINITY, -1.0), |&(s, v)| (s, v as f32));
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, 2 * k))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (rows, vocab) = l1.shape().dims2()?;
        check_bases(l2, rows)?;
        let out = super::device_rank_cuda::launch(
            (s1, l1),
            (s2, l2),
            (rows, vocab),
            self.k,
            self.banned,
        )?;
        Ok((out, Shape::from((rows, 2 * self.k))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::rank::rank_rows;

    /// The op ranks as the host does over the rows' log-softmax: widths that differ per row,
    /// a banned token, ties, NaN and a row with fewer finite entries than its width.
    #[test]
    fn ranking_logits_matches_ranking_log_probs() {
        let vocab = 150;
        let mut logits: Vec<f32> = (0..4 * vocab)
            .map(|i| ((i * 37 % 101) as f32 * 0.13).sin() * 4.0)
            .collect();
        // Row 1: ties between ids 10, 20 and 30.
        for v in [10, 20, 30] {
            logits[vocab + v] = 9.0;
        }
        // Row 2: a damaged model's NaN logits: nothing to rank.
        logits[2 * vocab..3 * vocab].fill(f32::NAN);
        // Row 3: all but two entries are impossible (-inf): ranked last, lower ids first.
        for (v, x) in logits[3 * vocab..].iter_mut().enumerate() {
            *x = match v {
                40 => 1.0,
                90 => 0.5,
                _ => f32::NEG_INFINITY,
            };
        }
        let ranking = Ranking {
            bases: vec![-1.5, 0.0, -0.25, -7.0],
            widths: vec![3, 5, 4, 4],
            banned: Some(2),
        };
        let t = Tensor::from_slice(&logits, (4, vocab), &Device::Cpu).unwrap();
        let on_device = rank_logits(&t, &ranking).unwrap();
        let mut host_lp = logits.clone();
        log_softmax_rows(&mut host_lp, vocab);
        let host = rank_rows(&host_lp, vocab, &ranking);
        assert_eq!(on_device, host);
        let ids = |r: usize| on_device[r].iter().map(|p| p.1).collect::<Vec<_>>();
        assert_eq!(ids(1)[..3], [10, 20, 30]);
        assert!(!ids(0).contains(&2), "the banned token was picked");
        assert!(on_device[2].is_empty());
        assert_eq!(ids(3), [40, 90, 0, 1]);
        assert_eq!(on_device[3][2].0, f32::NEG_INFINITY);
    }

    #[test]
    fn mismatched_ranking_is_refused() {
        let t = Tensor::zeros((2, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        let ranking = Ranking {
            bases: vec![0.0],
            widths: vec![1, 1],
            banned: None,
        };
        let e = rank_logits(&t, &ranking).unwrap_err().to_string();
        assert!(e.contains("1 bases and 2 widths for 2 rows"), "{e}");
    }

    /// Ids travel as f32: a vocabulary past 2^24 would rank wrong ids, so it is refused.
    #[test]
    fn vocabulary_too_large_for_f32_ids_is_refused() {
        // No rows, so the 2^24 columns allocate nothing.
        let t = Tensor::zeros((0, MAX_VOCAB), candle_core::DType::F32, &Device::Cpu).unwrap();
        let ranking = Ranking {
            bases: Vec::new(),
            widths: Vec::new(),
            banned: None,
        };
        let e = rank_logits(&t, &ranking).unwrap_err().to_string();
        assert!(e.contains("16777216 entries is too large"), "{e}");
        let fits =
            Tensor::zeros((0, MAX_VOCAB - 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(rank_logits(&fits, &ranking).unwrap().is_empty());
    }
}
