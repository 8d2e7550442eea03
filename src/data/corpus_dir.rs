//! A known corpus on disk: one folder with `{split}.{lang}.gz` for each split and language,
//! whichever corpus (Multi30k, the Europarl subset) it came from.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What a known corpus has: its name, its splits and its languages.
#[derive(Debug)]
pub struct KnownCorpus {
    /// The name `--corpus` spells.
    pub name: &'static str,
    /// The split names: training, validation, test (e.g. train, val, test_2016_flickr).
    pub splits: [&'static str; 3],
    /// The languages every split has.
    pub langs: &'static [&'static str],
    /// Downloads (or prepares) the corpus into a folder, checking what is already there.
    pub fetch: fn(&Path) -> Result<CorpusDir>,
}

impl KnownCorpus {
    /// The corpus in `dir`.
    pub fn at(&'static self, dir: &Path) -> CorpusDir {
        CorpusDir {
            dir: dir.to_path_buf(),
            corpus: self,
        }
    }

    /// Finds the corpus: `$NMT_CORPORA/NAME/` when that variable is set, else `cache`
    /// (normally corpora/NAME), fetching it there when `cache` does not hold it.
    pub fn locate(&'static self, cache: &Path) -> Result<CorpusDir> {
        if let Some(root) = std::env::var_os("NMT_CORPORA") {
            let dir = PathBuf::from(root).join(self.name);
            if self.complete_in(&dir) {
                return Ok(self.at(&dir));
            }
            return Err(Error::Corpus(format!(
                "NMT_CORPORA is set, but {} does not hold every {} file ({}): point NMT_CORPORA at the folder that contains {}/, or unset it to use {}",
                dir.display(),
                self.name,
                self.file_names().join(", "),
                self.name,
                cache.display()
            )));
        }
        if self.complete_in(cache) {
            return Ok(self.at(cache));
        }
        (self.fetch)(cache)
    }

    /// Parses "de-en" into ("de", "en"), checking both are languages of this corpus.
    pub fn pair(&self, pair: &str) -> Result<(String, String)> {
        let parts: Vec<&str> = pair.split('-').collect();
        match parts.as_slice() {
            [a, b] if a != b && self.langs.contains(a) && self.langs.contains(b) => {
                Ok((a.to_string(), b.to_string()))
            }
            _ => Err(Error::Config(format!(
                "--pair `{pair}` is not a {} pair: use two of {} joined by '-', e.g. {}-{}",
                self.name,
                self.langs.join(", "),
                self.langs[0],
                self.langs[1]
            ))),
        }
    }

    /// Every file name of the prepared corpus, e.g. train.de.gz.
    pub fn file_names(&self) -> Vec<String> {
        self.splits
            .iter()
            .flat_map(|s| self.langs.iter().map(move |l| format!("{s}.{l}.gz")))
            .collect()
    }

    /// Whether `dir` holds every file of the prepared corpus.
    pub fn complete_in(&self, dir: &Path) -> bool {
        self.file_names().iter().all(|f| dir.join(f).is_file())
    }
}

/// The folder a known corpus lives in, with every file present.
#[derive(Debug, Clone)]
pub struct CorpusDir {
    pub dir: PathBuf,
    pub corpus: &'static KnownCorpus,
}

impl CorpusDir {
    /// The file of `split` in `lang`, e.g. ("val", "de") -> DIR/val.de.gz.
    pub fn file(&self, split: &str, lang: &str) -> PathBuf {
        self.dir.join(format!("{split}.{lang}.gz"))
    }

    /// The (source, target) files of split number `i` (0 training, 1 validation, 2 test).
    fn split(&self, i: usize, (s, t): (&str, &str)) -> (PathBuf, PathBuf) {
        let name = self.corpus.splits[i];
        (self.file(name, s), self.file(name, t))
    }

    /// The (source, target) files of the training split.
    pub fn train(&self, pair: (&str, &str)) -> (PathBuf, PathBuf) {
        self.split(0, pair)
    }

    /// The (source, target) files of the validation split.
    pub fn valid(&self, pair: (&str, &str)) -> (PathBuf, PathBuf) {
        self.split(1, pair)
    }

    /// The (source, target) files of the test split.
    pub fn test(&self, pair: (&str, &str)) -> (PathBuf, PathBuf) {
        self.split(2, pair)
    }
}
