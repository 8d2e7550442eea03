//! nmt: a stacked-LSTM encoder-decoder translator (Sutskever, Vinyals & Le 2014) on Candle.
//!
//! ```text
//! corpus files --data::corpus--> sentence pairs --tokenizer--> id sequences --data::batch--> Batch
//!   --model::Seq2Seq::forward_cpu (CPU; forward_train + Candle autograd elsewhere)--> summed loss
//!   --backward--> optim (clip, step) --train-->
//!   checkpoint::save_model --> DIR/{model.safetensors, config.json, src/tgt_tokenizer.json, train.log}
//!
//! DIR --checkpoint::load--> Seq2Seq --search::beam (via the Scorer trait)--> tokenizer::decode
//!   --> text;  metrics: BLEU (sacrebleu 13a), perplexity
//! ```

pub mod atomic_file;
pub mod bench;
pub mod card;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod core_latency;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluation;
pub mod experiment;
pub mod hub;
pub mod inference;
pub mod kernels;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod plot;
pub mod rng;
pub mod run_log;
pub mod search;
pub mod tensor_data;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
