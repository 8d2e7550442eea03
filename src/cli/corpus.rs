//! Corpora by name: `--corpus multi30k --pair SRC-TGT` and `nmt corpus fetch`.

use std::path::Path;

use anyhow::Result;

use super::CorpusArgs;
use crate::data::multi30k::{self, Multi30k};

/// The download cache of known corpora, relative to the working directory.
const CORPUS_CACHE: &str = "corpora/multi30k";

/// The Multi30k files for `--corpus multi30k --pair SRC-TGT`.
pub fn known_corpus(c: &CorpusArgs) -> Result<Option<(Multi30k, String, String)>> {
    let Some(name) = &c.corpus else {
        return Ok(None);
    };
    if name != "multi30k" {
        usage!(
            "unknown corpus `{name}`: the known corpus is multi30k (or give --src-file/--tgt-file)"
        );
    }
    let (s, t) = Multi30k::pair(&c.pair)?;
    Ok(Some((multi30k::locate(Path::new(CORPUS_CACHE))?, s, t)))
}

pub fn fetch(name: &str, dir: &Path) -> Result<()> {
    if name != "multi30k" {
        usage!("unknown corpus `{name}`: the known corpus is multi30k");
    }
    let m = if std::env::var_os("NMT_CORPORA").is_some() {
        multi30k::locate(dir)?
    } else {
        multi30k::fetch(dir)?
    };
    println!("multi30k is in {}", m.dir.display());
    Ok(())
}
