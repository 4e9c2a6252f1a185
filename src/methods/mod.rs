//! Research methods that drive the engine: linear models at low precision (ZipML).

pub mod linear;
