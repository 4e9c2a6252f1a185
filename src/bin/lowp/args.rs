//! Argument types shared by the commands.

use lowp::format::Format;
use lowp::quant::Rounding;

/// Where the work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The GPU kernels (through wgpu).
    Gpu,
    /// The CPU reference emulator.
    Cpu,
}

/// Parses a format for clap.
pub fn format(s: &str) -> Result<Format, String> {
    s.parse::<Format>().map_err(|e| e.to_string())
}

/// Parses a rounding mode for clap.
pub fn rounding(s: &str) -> Result<Rounding, String> {
    s.parse::<Rounding>().map_err(|e| e.to_string())
}

/// Opens the GPU, or says how to get one or to use the CPU reference instead.
pub fn gpu() -> Result<lowp::gpu::GpuContext, String> {
    lowp::gpu::GpuContext::new()
        .map_err(|e| format!("{e}; or run on the CPU reference with --device cpu"))
}
