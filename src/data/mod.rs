//! Data on disk: .npy arrays (and, later, the training data sets).

pub mod npy;
