//! Training: per-tensor precision, and (to come) models, scheduler, optimizers, checkpoints.

pub mod cpu;
pub mod glob;
pub mod gpu;
pub mod model;
pub mod plan;
pub mod precision;
