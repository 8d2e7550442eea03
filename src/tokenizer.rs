//! Subword tokenizers with HF `tokenizers`: byte-level BPE trained on a corpus (any text
//! round-trips exactly, no unknown characters) or a given tokenizer.json, with the special
//! ids every run relies on checked.

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::config::{BOS_ID, EOS_ID, PAD_ID, UNK_ID};
use crate::error::{Error, Result};

/// The special tokens, in id order: pad 0, bos 1, eos 2, unk 3.
pub const SPECIALS: [(&str, u32); 4] = [
    ("<pad>", PAD_ID),
    ("<s>", BOS_ID),
    ("</s>", EOS_ID),
    ("<unk>", UNK_ID),
];

/// A tokenizer whose special ids are known to match `SPECIALS`.
#[derive(Clone)]
pub struct SubwordTokenizer {
    inner: Tokenizer,
}

impl SubwordTokenizer {
    /// Trains a byte-level BPE with up to `vocab_size` entries on `lines`.
    pub fn train<S: AsRef<str> + Send>(
        lines: impl Iterator<Item = S> + Send,
        vocab_size: usize,
    ) -> Result<Self> {
        let specials = SPECIALS
            .iter()
            .map(|(t, _)| AddedToken::from(t.to_string(), true))
            .collect();
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        let mut tok = Tokenizer::new(BPE::default());
        tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tok.with_decoder(Some(ByteLevel::default()));
        tok.train(&mut trainer, lines)
            .map_err(|e| Error::Tokenize(format!("training BPE failed: {e}")))?;
        Self::checked(tok, Path::new("<trained>"))
    }

    /// Loads a tokenizer.json and checks its special tokens.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Tokenizer {
                path: path.to_path_buf(),
                msg: "not found: give the path of a tokenizer.json file".into(),
            });
        }
        let tok = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            msg: format!("is not a valid tokenizer.json: {e}"),
        })?;
        Self::checked(tok, path)
    }

    fn checked(inner: Tokenizer, path: &Path) -> Result<Self> {
        for (token, id) in SPECIALS {
            if inner.token_to_id(token) != Some(id) {
                return Err(Error::Tokenizer {
                    path: path.to_path_buf(),
                    msg: format!(
                        "special token {token} must have id {id} (nmt expects <pad>=0 <s>=1 </s>=2 <unk>=3), found {:?}",
                        inner.token_to_id(token)
                    ),
                });
            }
        }
        Ok(SubwordTokenizer { inner })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| Error::write(path, std::io::Error::other(e.to_string())))
    }

    /// True when both tokenizers map text to the same ids (their definitions are equal).
    pub fn same_as(&self, other: &SubwordTokenizer) -> bool {
        match (self.inner.to_string(false), other.inner.to_string(false)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Subword ids of `text`, no BOS/EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenize(format!("cannot encode {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| Error::Tokenize(format!("cannot decode {ids:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_bpe_round_trips_text_and_keeps_special_ids() {
        let lines = [
            "Ein Mann fährt Fahrrad.",
            "Zwei Hunde spielen im Schnee!",
            "Ein Kind – mit „Hut“ – läuft.",
        ];
        let tok = SubwordTokenizer::train(lines.iter().cycle().take(30), 300).unwrap();
        for line in lines.iter().chain(["Unbekannte Wörter: 東京 😀"].iter()) {
            let ids = tok.encode(line).unwrap();
            assert!(!ids.contains(&UNK_ID));
            assert_eq!(&tok.decode(&ids).unwrap(), line);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok.json");
        tok.save(&path).unwrap();
        let back = SubwordTokenizer::from_file(&path).unwrap();
        assert_eq!(
            back.encode(lines[0]).unwrap(),
            tok.encode(lines[0]).unwrap()
        );
    }

    #[test]
    fn bad_tokenizer_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let msg = SubwordTokenizer::from_file(&missing)
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("nope.json") && msg.contains("not found"),
            "{msg}"
        );
        let junk = dir.path().join("junk.json");
        std::fs::write(&junk, "{not json").unwrap();
        let msg = SubwordTokenizer::from_file(&junk)
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("junk.json") && msg.contains("not a valid"),
            "{msg}"
        );
    }
}
