//! Training: models, per-tensor precision, the GPU engine and its CPU reference twin,
//! optimizers and checkpoints.

pub mod checkpoint;
pub mod cpu;
pub mod engine;
pub mod export;
pub mod glob;
pub mod gpu;
pub mod layers;
pub mod model;
pub mod model_file;
pub mod plan;
pub mod precision;
pub mod run;
pub mod state;
