//! A Europarl v7 de-en subset (Koehn 2005), a larger corpus than Multi30k for the depth
//! question: `$NMT_CORPORA/europarl/`, else the cache `corpora/europarl/`, else prepared
//! there from WMT13's Europarl v7 archive (downloaded, or copied into the cache by hand),
//! whose SHA-256 is checked first.
//!
//! Preparation: the aligned de-en files are read in order; a pair is kept when both sides
//! have 1 to 50 words. The first 200,000 kept pairs are the training split; the last 4,000
//! kept pairs of the file (debates years later) are the validation and test splits, 2,000
//! each, so no sentence of a held-out debate is trained on.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::corpus_dir::{CorpusDir, KnownCorpus};
use super::download::{self, check_digest};
use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};

/// The archive WMT13 published Europarl v7 in (all of its language pairs with English).
pub const ARCHIVE: &str = "training-parallel-europarl-v7.tgz";

/// The folder it is published in.
const BASE_URL: &str = "https://www.statmt.org/wmt13";

/// Environment variable naming a mirror of `BASE_URL` (same file name).
pub const MIRROR_ENV: &str = "NMT_EUROPARL_URL";

/// SHA-256 of `ARCHIVE`, as published alongside scripts that download it (two independent
/// sources agree); not recomputed here, where statmt.org cannot be reached.
pub const DIGEST: &str = "0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7";

/// The archive's aligned German and English files (matched by file name).
const MEMBERS: [&str; 2] = ["europarl-v7.de-en.de", "europarl-v7.de-en.en"];

/// The prepared subset's splits and languages.
pub static EUROPARL: KnownCorpus = KnownCorpus {
    name: "europarl",
    splits: ["train", "val", "test"],
    langs: &["de", "en"],
    fetch,
};

/// How the subset is cut from the aligned files.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Training pairs, the first kept pairs of the file.
    pub train: usize,
    /// Validation pairs, then test pairs: the last kept pairs of the file.
    pub valid: usize,
    pub test: usize,
    /// The most words (whitespace-separated) either side of a kept pair may have.
    pub max_words: usize,
}

/// The subset `nmt corpus fetch europarl` prepares.
pub const PLAN: Plan = Plan {
    train: 200_000,
    valid: 2_000,
    test: 2_000,
    max_words: 50,
};

/// Downloads the archive into `dir` unless it is there, checks its SHA-256 and prepares
/// the subset beside it; a folder that already holds the prepared subset is left as it is.
pub fn fetch(dir: &Path) -> Result<CorpusDir> {
    if EUROPARL.complete_in(dir) {
        return Ok(EUROPARL.at(dir));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let archive = dir.join(ARCHIVE);
    if !archive.is_file() {
        let base = std::env::var(MIRROR_ENV).unwrap_or_else(|_| BASE_URL.to_string());
        let url = format!("{}/{ARCHIVE}", base.trim_end_matches('/'));
        let part = dir.join(format!("{ARCHIVE}.part"));
        let _ = std::fs::remove_file(&part);
        eprintln!("downloading {url} (about 630 MB) into {}", dir.display());
        let got = download::to_file(&url, &part).map_err(|e| {
            Error::Download(format!(
                "{ARCHIVE}: download failed: {e}. Without network access, copy {ARCHIVE} (from {BASE_URL}/) into {} and run `nmt corpus fetch europarl` again, or put a prepared copy ({}) in ROOT/europarl/ and set NMT_CORPORA=ROOT",
                dir.display(),
                EUROPARL.file_names().join(", ")
            ))
        })?;
        if let Err(e) = check_digest(ARCHIVE, &got, DIGEST) {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::rename(&part, &archive).map_err(|e| Error::write(&archive, e))?;
    } else {
        check_digest(ARCHIVE, &download::sha256_file(&archive)?, DIGEST)?;
    }
    prepare(&archive, dir, &PLAN)?;
    Ok(EUROPARL.at(dir))
}

/// Cuts the subset `plan` from `archive` (already checked) into `dir`'s split files.
pub fn prepare(archive: &Path, dir: &Path, plan: &Plan) -> Result<()> {
    eprintln!("preparing the Europarl subset from {}", archive.display());
    let parts = MEMBERS.map(|m| dir.join(format!(".{m}.part")));
    let result = extract(archive, &parts).and_then(|()| cut(&parts, dir, plan));
    for p in &parts {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Writes the archive's two aligned files to `parts` (German, English).
fn extract(archive: &Path, parts: &[PathBuf; 2]) -> Result<()> {
    let damaged = |e: std::io::Error| {
        Error::Corpus(format!(
            "{} cannot be read as a gzip tar archive ({e}): delete it and fetch again",
            archive.display()
        ))
    };
    let file = File::open(archive).map_err(|e| Error::read(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut done = [false; 2];
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let path = entry.path().map_err(damaged)?.into_owned();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(i) = MEMBERS.iter().position(|m| *m == name) {
            let mut out = File::create(&parts[i]).map_err(|e| Error::write(&parts[i], e))?;
            std::io::copy(&mut entry, &mut out).map_err(damaged)?;
            done[i] = true;
        }
        if done == [true; 2] {
            return Ok(());
        }
    }
    let missing: Vec<&str> = (0..2).filter(|&i| !done[i]).map(|i| MEMBERS[i]).collect();
    Err(Error::Corpus(format!(
        "{} has no {}: it is not WMT13's Europarl v7 archive; delete it and fetch again",
        archive.display(),
        missing.join(" or ")
    )))
}

/// Whether a pair is kept: both sides 1 to `max_words` words.
fn keep(de: &str, en: &str, max_words: usize) -> bool {
    [de, en].iter().all(|s| {
        let n = s.split_whitespace().count();
        (1..=max_words).contains(&n)
    })
}

/// Reads the aligned files in step and writes the split files.
fn cut(parts: &[PathBuf; 2], dir: &Path, plan: &Plan) -> Result<()> {
    let open = |p: &PathBuf| -> Result<_> {
        let f = File::open(p).map_err(|e| Error::read(p, e))?;
        Ok(BufReader::with_capacity(1 << 20, f).lines())
    };
    let (mut de_lines, mut en_lines) = (open(&parts[0])?, open(&parts[1])?);
    let held_out = plan.valid + plan.test;
    let mut train: Vec<(String, String)> = Vec::with_capacity(plan.train);
    let mut tail: VecDeque<(String, String)> = VecDeque::with_capacity(held_out + 1);
    let mut line = 0usize;
    loop {
        line += 1;
        let (de, en) = match (de_lines.next(), en_lines.next()) {
            (None, None) => break,
            (Some(de), Some(en)) => (
                de.map_err(|e| Error::read(&parts[0], e))?,
                en.map_err(|e| Error::read(&parts[1], e))?,
            ),
            _ => {
                return Err(Error::Corpus(format!(
                    "the archive's {} and {} differ in length (one ends at line {line}): it is damaged; delete it and fetch again",
                    MEMBERS[0], MEMBERS[1]
                )))
            }
        };
        if !keep(&de, &en, plan.max_words) {
            continue;
        }
        let pair = (de.trim().to_string(), en.trim().to_string());
        if train.len() < plan.train {
            train.push(pair);
        } else {
            tail.push_back(pair);
            if tail.len() > held_out {
                tail.pop_front();
            }
        }
    }
    if train.len() < plan.train || tail.len() < held_out {
        return Err(Error::Corpus(format!(
            "the archive has {} usable pairs (1-{} words a side), fewer than the {} the subset needs: it is not the full Europarl v7 de-en; delete it and fetch again",
            train.len() + tail.len(),
            plan.max_words,
            plan.train + held_out
        )));
    }
    let tail: Vec<(String, String)> = tail.into();
    let (valid, test) = tail.split_at(plan.valid);
    for (split, pairs) in [("train", &train[..]), ("val", valid), ("test", test)] {
        for (lang, side) in [("de", 0), ("en", 1)] {
            let path = dir.join(format!("{split}.{lang}.gz"));
            write_atomic(&path, |tmp| {
                let f = File::create(tmp).map_err(|e| Error::write(tmp, e))?;
                let mut gz = GzEncoder::new(f, flate2::Compression::default());
                for p in pairs {
                    let s = if side == 0 { &p.0 } else { &p.1 };
                    writeln!(gz, "{s}").map_err(|e| Error::write(tmp, e))?;
                }
                gz.finish().map_err(|e| Error::write(tmp, e))?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::corpus::read_lines;

    /// A gzip tar archive laid out as WMT13's, with `n` aligned lines; every seventh pair
    /// has an empty side and every eleventh a 60-word German side, so both are dropped.
    fn fixture(dir: &Path, n: usize) -> PathBuf {
        let (mut de, mut en) = (String::new(), String::new());
        for i in 0..n {
            let long = vec!["wort"; 60].join(" ");
            let d = match i {
                _ if i % 7 == 3 => String::new(),
                _ if i % 11 == 5 => long,
                _ => format!("satz {i}"),
            };
            de.push_str(&format!("{d}\n"));
            en.push_str(&format!("sentence {i}\n"));
        }
        let path = dir.join(ARCHIVE);
        let gz = GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, text) in [
            ("training/europarl-v7.fr-en.en", "other pair\n".to_string()),
            ("training/europarl-v7.de-en.de", de),
            ("training/europarl-v7.de-en.en", en),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    const SMALL: Plan = Plan {
        train: 50,
        valid: 10,
        test: 5,
        max_words: 50,
    };

    #[test]
    fn prepares_aligned_disjoint_splits() {
        let dir = tempfile::tempdir().unwrap();
        let archive = fixture(dir.path(), 200);
        prepare(&archive, dir.path(), &SMALL).unwrap();
        let c = EUROPARL.at(dir.path());
        let lines = |p: PathBuf| read_lines(&p).unwrap();
        let (tr_de, tr_en) = c.train(("de", "en"));
        let (de, en) = (lines(tr_de), lines(tr_en));
        assert_eq!((de.len(), en.len()), (50, 50));
        // Kept pairs stay aligned; dropped ones (empty, too long) are gone.
        for (d, e) in de.iter().zip(&en) {
            assert_eq!(d.replace("satz", "sentence"), *e);
        }
        assert!(!en.contains(&"sentence 3".to_string()));
        assert!(!en.contains(&"sentence 5".to_string()));
        let (va, te) = (
            lines(c.valid(("de", "en")).1),
            lines(c.test(("de", "en")).1),
        );
        assert_eq!((va.len(), te.len()), (10, 5));
        // The held-out pairs are the last of the file, validation before test.
        assert_eq!(te.last().unwrap(), "sentence 198");
        assert!(va.iter().all(|s| !en.contains(s) && !te.contains(s)));
        assert!(EUROPARL.complete_in(dir.path()));
        // No extraction leftovers.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".part")), "{names:?}");
    }

    #[test]
    fn too_small_an_archive_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let archive = fixture(dir.path(), 40);
        let msg = prepare(&archive, dir.path(), &SMALL)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("usable pairs"), "{msg}");
        assert!(!EUROPARL.complete_in(dir.path()));
    }

    #[test]
    fn an_archive_without_the_pair_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ARCHIVE);
        let gz = GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_cksum();
        tar.append_data(&mut h, "training/europarl-v7.de-en.de", &b"ja\n"[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let msg = prepare(&path, dir.path(), &SMALL).unwrap_err().to_string();
        assert!(msg.contains("europarl-v7.de-en.en"), "{msg}");
        std::fs::write(&path, b"not gzip").unwrap();
        let msg = prepare(&path, dir.path(), &SMALL).unwrap_err().to_string();
        assert!(msg.contains("cannot be read"), "{msg}");
    }
}
