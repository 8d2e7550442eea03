//! Requests arriving together share one beam search: a job queue drained by one search
//! thread, which waits a short window for more jobs before each search (up to a cap on
//! sentences), groups them by model and settings, and answers each job with its own rows.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::config::SearchConfig;
use crate::inference::{Translation, Translator};

/// What a job's sender gets back: one n-best list per text, or why there is none.
pub type JobResult = Result<Vec<Vec<Translation>>, JobError>;

#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// The job waited past its deadline and was dropped unsearched.
    Expired,
    /// The search itself failed (a bug or a tensor failure): the message.
    Failed(String),
}

/// One request's texts, to be translated by model `model` with `search`.
pub struct Job {
    pub model: usize,
    pub texts: Vec<String>,
    pub search: SearchConfig,
    /// After this the answer is no longer wanted (the request timed out).
    pub deadline: Instant,
    pub reply: oneshot::Sender<JobResult>,
}

impl Job {
    /// Sends `result` (the requester may have given up: then it is dropped) and takes the
    /// job off the queue depth.
    fn answer(self, result: JobResult, metrics: &Metrics) {
        metrics
            .queue_depth
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.reply.send(result);
    }
}

/// How jobs are gathered into one search.
#[derive(Debug, Clone)]
pub struct Batching {
    /// How long to wait for more jobs after the first.
    pub window: Duration,
    /// Stop gathering once this many sentences are waiting.
    pub max_rows: usize,
}

/// Runs searches until every sender of `jobs` is gone (the server shut down), then returns.
pub fn run(
    translators: &mut [Translator],
    jobs: Receiver<Job>,
    batching: &Batching,
    metrics: &Arc<Metrics>,
) {
    while let Ok(first) = jobs.recv() {
        let mut rows = first.texts.len();
        let mut gathered = vec![first];
        let until = Instant::now() + batching.window;
        while rows < batching.max_rows {
            let job = match jobs.try_recv() {
                Ok(job) => job,
                Err(_) => {
                    match jobs.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            rows += job.texts.len();
            gathered.push(job);
        }
        search_together(translators, gathered, metrics);
    }
}

/// Translates `jobs`, one search per (model, settings) group, and answers each job.
fn search_together(translators: &mut [Translator], jobs: Vec<Job>, metrics: &Metrics) {
    let now = Instant::now();
    let (live, expired): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.deadline > now);
    for job in expired {
        job.answer(Err(JobError::Expired), metrics);
    }
    let mut groups: Vec<Vec<Job>> = Vec::new();
    for job in live {
        match groups
            .iter_mut()
            .find(|g| g[0].model == job.model && g[0].search == job.search)
        {
            Some(group) => group.push(job),
            None => groups.push(vec![job]),
        }
    }
    for group in groups {
        let translator = &mut translators[group[0].model];
        translator.search = group[0].search.clone();
        let texts: Vec<String> = group.iter().flat_map(|j| j.texts.iter().cloned()).collect();
        let result = translator.translate_nbest(&texts);
        metrics.batch(texts.len());
        let mut answers = match result {
            Ok(all) => all.into_iter(),
            Err(e) => {
                for job in group {
                    job.answer(Err(JobError::Failed(e.to_string())), metrics);
                }
                continue;
            }
        };
        for job in group {
            let mine: Vec<Vec<Translation>> = answers.by_ref().take(job.texts.len()).collect();
            job.answer(Ok(mine), metrics);
        }
    }
}
