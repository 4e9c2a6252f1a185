//! Sweeps: grids of trainings as one command. A grid file's runs (the product of its axes),
//! each with a stable id, split into shards; the results of finished runs, merged into one
//! table; the Pareto frontier of two of their measures. The command line runs the grid.

pub mod grid;
pub mod pareto;
pub mod results;
