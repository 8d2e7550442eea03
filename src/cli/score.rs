//! `nmt score`: forced decoding, the log-probability and perplexity of given translations.

use std::io::Write;

use anyhow::Result;

use super::loading::model_dir;
use super::ScoreArgs;
use crate::checkpoint;
use crate::data::batch::Example;
use crate::data::corpus::read_parallel;
use crate::device;
use crate::inference::sentence_nll;
use crate::metrics::perplexity;

pub fn run(a: ScoreArgs) -> Result<()> {
    let dev = device::pick(&a.device)?;
    let loaded = checkpoint::load(&model_dir(&a.model, a.offline)?, &dev)?;
    let (src, tgt) = read_parallel(&a.src_file, &a.tgt_file)?;
    let examples = src
        .iter()
        .zip(&tgt)
        .map(|(s, t)| {
            Ok(Example {
                src: loaded.src_tok.encode(s.trim())?,
                tgt: loaded.tgt_tok.encode(t.trim())?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let nll = sentence_nll(&loaded.model, &examples, 4000, &dev)?;
    let mut stdout = std::io::stdout().lock();
    let (mut total, mut tokens) = (0f64, 0usize);
    for (i, (v, e)) in nll.iter().zip(&examples).enumerate() {
        let n = e.tgt.len() + 1;
        writeln!(
            stdout,
            "{}\t{:.4}\t{}\t{:.4}",
            i + 1,
            -v,
            n,
            perplexity(*v, n)
        )?;
        total += v;
        tokens += n;
    }
    writeln!(
        stdout,
        "total\t{:.4}\t{}\t{:.4}",
        -total,
        tokens,
        perplexity(total, tokens)
    )?;
    Ok(())
}
