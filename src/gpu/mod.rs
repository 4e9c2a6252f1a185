//! GPU layer: device context, buffers, pipelines, shader assembly and the packed tensor.

pub mod bind_cache;
pub mod buffers;
pub mod context;
pub mod dispatch;
pub mod encoder;
pub mod error;
pub mod f64_probe;
pub mod memory;
pub mod param_ring;
pub mod params;
pub mod pipelines;
pub mod profile;
pub mod readback;
pub mod shader;
pub mod specialise;
pub mod tensor;
pub mod tiles;
pub mod timer;

pub use context::GpuContext;
pub use encoder::Encoder;
pub use error::GpuError;
pub use tensor::Tensor;
