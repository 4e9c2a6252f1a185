//! Training: per-tensor precision, and (to come) models, scheduler, optimizers, checkpoints.

pub mod glob;
pub mod precision;
