//! nmt: a stacked-LSTM encoder-decoder translator (Sutskever, Vinyals & Le 2014) on Candle.
//!
//! ```text
//! corpus files --data::corpus--> sentence pairs --tokenizer--> id sequences --data::batch--> Batch
//!   --model::Seq2Seq::forward_cpu (CPU; forward_train + Candle autograd elsewhere)--> summed loss
//!   --backward--> optim (clip, step) --train-->
//!   checkpoint::save_model --> DIR/{model.safetensors, config.json, src/tgt_tokenizer.json, train.log}
//!
//! DIR --checkpoint::load--> Seq2Seq --inference (search::beam via the Scorer trait)-->
//!   tokenizer::decode --> text;  evaluation: BLEU / chrF (sacrebleu's), perplexity
//! ```
//!
//! # Layers
//!
//! A module may use only modules of lower layers (never its own layer or a higher one), so
//! no imports run in circles; `tests/layering.rs` reads this table and checks every
//! `crate::` path in `src/` against it. docs/architecture.md says what each layer is for.
//!
//! ```text
//! layer 0: error
//! layer 1: config, rng, atomic_file, tensor_data, device, core_latency, kernels, metrics
//! layer 2: tokenizer, run_log
//! layer 3: data, search, loss, optim
//! layer 4: model
//! layer 5: checkpoint
//! layer 6: hub, card, inference
//! layer 7: evaluation, plot, train
//! layer 8: experiment, bench, serve
//! layer 9: cli
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

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
pub mod serve;
pub mod tensor_data;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
