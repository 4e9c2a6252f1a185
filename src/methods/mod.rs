//! Research methods that drive the engine: linear models at low precision (ZipML) and the
//! limits its SGD converges to, and HALP with the low-precision SGD and SVRG it is measured against.

pub mod halp;
pub mod halp_bits;
pub mod linear;
pub mod optimum;
pub mod zipml_limits;
