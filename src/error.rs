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
    /// A command line that asks for something impossible (a missing or conflicting flag).
    #[error("{0}")]
    Usage(String),
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
    /// The HTTP server failed while running (not a flag the user gave).
    #[error("the server failed: {0}")]
    Server(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of failure the `nmt` binary tells apart by its exit status, so scripts can
/// react to each (docs/reliability.md has the table). A panic exits 101: always a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// The run itself failed: a file could not be written (disk full, permissions), training
    /// diverged, a tensor operation failed.
    Runtime,
    /// The command line or an options file: missing, conflicting or out-of-range flags (clap's
    /// own parse errors exit 2 as well).
    Usage,
    /// Input data: corpora, text to translate or score, references, corpus downloads.
    Data,
    /// A model or run folder: weights, config.json, tokenizers, training checkpoints.
    Checkpoint,
}

impl ExitClass {
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Runtime => 1,
            ExitClass::Usage => 2,
            ExitClass::Data => 3,
            ExitClass::Checkpoint => 4,
        }
    }
}

impl Error {
    /// Which exit status this error gives the binary.
    pub fn exit_class(&self) -> ExitClass {
        match self {
            Error::Config(_) | Error::Usage(_) => ExitClass::Usage,
            Error::Read { .. }
            | Error::Line { .. }
            | Error::LineCountMismatch { .. }
            | Error::Corpus(_)
            | Error::Tokenize(_)
            | Error::Download(_) => ExitClass::Data,
            Error::Checkpoint { .. } | Error::Tokenizer { .. } => ExitClass::Checkpoint,
            Error::Write { .. } | Error::Training(_) | Error::Server(_) | Error::Candle(_) => {
                ExitClass::Runtime
            }
        }
    }

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
