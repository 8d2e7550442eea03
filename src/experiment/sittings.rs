//! A sweep run in sittings: `nmt experiment depth --layers 1` on one machine, `--layers 2`
//! in a fresh folder on another, and so on. Each sitting's results.json holds its own depths;
//! with the same settings and the same tokenizer they are one sweep, put back together here.

use super::compare::Sweep;
use super::results::DepthResult;
use crate::error::{Error, Result};

/// True when `a` is further along than `b`: evaluated where `b` is not, or more epochs
/// (on a tie, the later sitting's row wins).
fn further(a: &DepthResult, b: &DepthResult) -> bool {
    (a.test.is_some(), a.epochs) >= (b.test.is_some(), b.epochs)
}

/// Sweeps with equal settings, in the order given, merged into one per settings: every depth
/// from the sitting that took it furthest, the commands joined by ` && `, and the name of the
/// first with "(N sittings)". Sweeps with other settings stay as they are.
///
/// Refused (a usage error naming both) where two such sweeps record different tokenizers:
/// their perplexities are over different subwords, so they are not one sweep.
pub fn merge(sweeps: Vec<Sweep>) -> Result<Vec<Sweep>> {
    let mut merged: Vec<(Sweep, usize)> = Vec::new();
    for s in sweeps {
        let Some((m, n)) = merged
            .iter_mut()
            .find(|(m, _)| m.results.settings == s.results.settings)
        else {
            merged.push((s, 1));
            continue;
        };
        if let (Some(a), Some(b)) = (&m.results.tokenizer_sha256, &s.results.tokenizer_sha256) {
            if a != b {
                return Err(Error::Usage(format!(
                    "{} and {} have the same settings but different tokenizers (SHA-256 {a} and {b}), so they are not sittings of one sweep; compare them under other settings, or rerun one with the other's nmt version",
                    m.name, s.name
                )));
            }
        }
        let r = &mut m.results;
        r.tokenizer_sha256 = r.tokenizer_sha256.take().or(s.results.tokenizer_sha256);
        if !r.command.split(" && ").any(|c| c == s.results.command) {
            r.command = format!("{} && {}", r.command, s.results.command);
        }
        for d in s.results.depths {
            match r.depths.iter_mut().find(|x| x.layers == d.layers) {
                Some(x) if further(&d, x) => *x = d,
                Some(_) => {}
                None => r.depths.push(d),
            }
        }
        r.depths.sort_by_key(|d| d.layers);
        m.pairs = m.pairs.or(s.pairs);
        *n += 1;
    }
    Ok(merged
        .into_iter()
        .map(|(mut s, n)| {
            if n > 1 {
                s.name = format!("{} ({n} sittings)", s.name);
            }
            s
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::compare::tests::{depth, results};

    fn sweep(name: &str, command: &str, depths: Vec<DepthResult>) -> Sweep {
        let mut r = results(depths);
        r.command = command.into();
        Sweep {
            name: name.into(),
            results: r,
            pairs: Some(29_000),
        }
    }

    #[test]
    fn sittings_of_one_sweep_become_one_with_every_depth() {
        let first = sweep(
            "wide",
            "nmt experiment depth --layers 1",
            vec![depth(1, Some(10.0), 24.0)],
        );
        let second = sweep(
            "wide-3",
            "nmt experiment depth --layers 3,2",
            vec![depth(2, Some(11.0), 23.0), depth(3, Some(12.1), 20.0)],
        );
        let mut other = sweep(
            "narrow",
            "nmt experiment depth",
            vec![depth(1, Some(9.0), 25.0)],
        );
        other.results.settings.hidden = 128;
        let m = merge(vec![first, other, second]).unwrap();
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].name, "wide (2 sittings)");
        let layers: Vec<usize> = m[0].results.depths.iter().map(|d| d.layers).collect();
        assert_eq!(layers, [1, 2, 3]);
        assert_eq!(
            m[0].results.command,
            "nmt experiment depth --layers 1 && nmt experiment depth --layers 3,2"
        );
        assert_eq!(
            (m[1].name.as_str(), m[1].results.depths.len()),
            ("narrow", 1)
        );
    }

    #[test]
    fn a_depth_in_two_sittings_comes_from_the_one_that_took_it_further() {
        let mut ahead = depth(1, Some(10.0), 24.0);
        ahead.epochs = 12;
        let unevaluated = depth(1, None, 0.0);
        let merged = merge(vec![
            sweep("a", "x", vec![ahead.clone()]),
            sweep("b", "y", vec![unevaluated, depth(2, Some(11.0), 23.0)]),
        ])
        .unwrap();
        assert_eq!(merged[0].results.depths[0], ahead);
        assert_eq!(merged[0].results.depths.len(), 2);
    }

    #[test]
    fn sittings_with_different_tokenizers_are_refused_by_name() {
        let a = sweep("wide", "x", vec![depth(1, Some(10.0), 24.0)]);
        let mut b = sweep("wide-2", "y", vec![depth(2, Some(11.0), 23.0)]);
        b.results.tokenizer_sha256 = Some("cd".into());
        let e = merge(vec![a, b]).unwrap_err().to_string();
        assert!(
            e.contains("wide and wide-2") && e.contains("different tokenizers"),
            "{e}"
        );
    }
}
