//! Getting parallel text into batches: reading corpus files, the known corpora (Multi30k, a Europarl subset), batching.

pub mod batch;
pub mod corpus;
pub mod corpus_dir;
pub mod download;
pub mod europarl;
pub mod multi30k;
