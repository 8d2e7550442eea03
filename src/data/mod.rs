//! Getting parallel text into batches: reading corpus files, the Multi30k lookup, batching.

pub mod batch;
pub mod corpus;
pub mod multi30k;
