//! An ensemble is several scorers whose next-token log-probabilities are averaged; to the
//! search it is just another scorer.

use super::rank::{step_ranked_on_host, Ranking};
use super::{Candidates, Scorer};
use crate::error::{Error, Result};

/// Scorers that share one target vocabulary.
pub struct Ensemble<S> {
    members: Vec<S>,
}

impl<S: Scorer> Ensemble<S> {
    /// Fails when `members` is empty or their vocabulary sizes differ.
    pub fn new(members: Vec<S>) -> Result<Self> {
        let Some(first) = members.first() else {
            return Err(Error::Config("an ensemble needs at least one model".into()));
        };
        let v = first.vocab_size();
        if let Some((i, m)) = members
            .iter()
            .enumerate()
            .find(|(_, m)| m.vocab_size() != v)
        {
            return Err(Error::Config(format!(
                "ensemble member {} has a target vocabulary of {} entries but member 1 has {v}: ensembled models must share one target vocabulary",
                i + 1,
                m.vocab_size()
            )));
        }
        Ok(Ensemble { members })
    }
}

impl<S: Scorer> Scorer for Ensemble<S> {
    type State = Vec<S::State>;

    fn start(&self, sources: &[&[u32]]) -> Result<Self::State> {
        self.members.iter().map(|m| m.start(sources)).collect()
    }

    fn step(&self, state: &Self::State, prev: &[u32], out: &mut Vec<f32>) -> Result<Self::State> {
        let mut next = Vec::with_capacity(self.members.len());
        let mut lp = Vec::new();
        for (i, (m, st)) in self.members.iter().zip(state).enumerate() {
            if i == 0 {
                next.push(m.step(st, prev, out)?);
            } else {
                next.push(m.step(st, prev, &mut lp)?);
                out.iter_mut().zip(&lp).for_each(|(a, b)| *a += b);
            }
        }
        let n = self.members.len() as f32;
        if n > 1.0 {
            out.iter_mut().for_each(|x| *x /= n);
        }
        Ok(next)
    }

    /// One member ranks on its own (on its device, where it can); several are averaged
    /// over full rows on the host first.
    fn step_top_k(
        &self,
        state: &Self::State,
        prev: &[u32],
        ranking: &Ranking,
        scratch: &mut Vec<f32>,
    ) -> Result<(Self::State, Candidates)> {
        if let ([member], [st]) = (self.members.as_slice(), state.as_slice()) {
            let (next, tops) = member.step_top_k(st, prev, ranking, scratch)?;
            return Ok((vec![next], tops));
        }
        step_ranked_on_host(self, state, prev, ranking, scratch)
    }

    fn reorder(&self, state: &Self::State, rows: &[usize]) -> Result<Self::State> {
        self.members
            .iter()
            .zip(state)
            .map(|(m, s)| m.reorder(s, rows))
            .collect()
    }

    fn vocab_size(&self) -> usize {
        self.members[0].vocab_size()
    }

    /// The first member's that has them (a member with attention).
    fn peaks(&self, state: &Self::State) -> Option<Vec<u32>> {
        self.members.iter().zip(state).find_map(|(m, s)| m.peaks(s))
    }
}
