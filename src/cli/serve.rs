//! `nmt serve`: its flags, and the models loaded for the server.

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::loading::translator;
use super::SearchArgs;
use crate::serve::api::Limits;
use crate::serve::batcher::Batching;
use crate::serve::{serve, ServeConfig, ServedModel};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model folder written by `nmt train`, or a Hub repo id org/name[@revision]; repeat to
    /// serve several (a request picks one by this name with "model"; the first is the default).
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: a free one, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// How long the search thread waits for more requests to search together, in ms.
    #[arg(long, default_value_t = 5)]
    pub batch_window_ms: u64,
    /// Texts one request may hold.
    #[arg(long, default_value_t = 64)]
    pub max_texts: usize,
    /// Characters one text may hold.
    #[arg(long, default_value_t = 2000)]
    pub max_text_chars: usize,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// A request not answered in this many seconds gets 503.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_s: f64,
    /// Default search settings (a request's fields override them); --batch-size caps the
    /// sentences searched together.
    #[command(flatten)]
    pub search: SearchArgs,
}

pub fn run(a: ServeArgs) -> Result<()> {
    if a.max_texts == 0 || a.max_text_chars == 0 || a.max_body_bytes == 0 {
        usage!("--max-texts, --max-text-chars and --max-body-bytes must be at least 1");
    }
    if !(a.timeout_s > 0.0 && a.timeout_s <= 86_400.0) {
        usage!(
            "--timeout-s must be above 0 and at most 86400, got {}",
            a.timeout_s
        );
    }
    if a.batch_window_ms > 10_000 {
        usage!(
            "--batch-window-ms must be at most 10000, got {}",
            a.batch_window_ms
        );
    }
    let models = a
        .model
        .iter()
        .map(|m| {
            Ok(ServedModel {
                name: m.clone(),
                translator: translator(std::slice::from_ref(m), &a.search, 1)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cfg = ServeConfig {
        host: a.host,
        port: a.port,
        limits: Limits {
            max_texts: a.max_texts,
            max_text_chars: a.max_text_chars,
        },
        max_body_bytes: a.max_body_bytes,
        timeout: Duration::from_secs_f64(a.timeout_s),
        batching: Batching {
            window: Duration::from_millis(a.batch_window_ms),
            max_rows: a.search.batch_size,
        },
    };
    serve(models, cfg, |addr| {
        eprintln!("nmt: serving on http://{addr} (POST /v1/translate; a page to try it at /)");
    })?;
    Ok(())
}
