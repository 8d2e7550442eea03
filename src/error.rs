//! The library's one error type. Every variant says what was wrong, where, and what to do.

use std::path::PathBuf;

/// Everything that can go wrong in the library; `anyhow` is used only in `src/bin/`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}. Check that the file exists and is readable.")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}. Check that the folder exists and is writable.")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Line {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{src_path} has {src_lines} lines but {tgt_path} has {tgt_lines}: parallel files must have one sentence per line, line i of one translating line i of the other")]
    LineCountMismatch {
        src_path: PathBuf,
        src_lines: usize,
        tgt_path: PathBuf,
        tgt_lines: usize,
    },
    #[error("{0}")]
    Corpus(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("tokenizer {path}: {msg}")]
    Tokenizer { path: PathBuf, msg: String },
    #[error("tokenizer: {0}")]
    Tokenize(String),
    #[error("download failed: {0}")]
    Download(String),
    #[error("training stopped: {0}")]
    Training(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Read {
            path: path.into(),
            source,
        }
    }

    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }

    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
