//! Experiments made of several training runs. `nmt experiment depth` trains one model per
//! LSTM depth under equal settings and compares them (Sutskever et al. 2014: deeper is better);
//! `nmt experiment compare` puts several such sweeps side by side (a sweep run in sittings
//! on several machines as one).

pub mod compare;
pub mod compare_plot;
pub mod depth;
pub mod depth_plot;
pub mod results;
pub mod sittings;
pub mod sweep;
