//! Errors from the GPU layer.

/// What went wrong talking to the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter at all.
    #[error(
        "no GPU adapter found (backends tried: {backends}). On a machine without a GPU, install Mesa's lavapipe software Vulkan driver (Debian/Ubuntu: `apt-get install -y mesa-vulkan-drivers libvulkan1`) and set WGPU_BACKEND=vulkan"
    )]
    NoAdapter {
        /// The backends that were searched.
        backends: String,
    },
    /// WGPU_ADAPTER_NAME matched no adapter.
    #[error("WGPU_ADAPTER_NAME={wanted:?} matches no adapter; available: {available}")]
    AdapterNotFound {
        /// The requested name.
        wanted: String,
        /// Names of the adapters that exist.
        available: String,
    },
    /// The adapter refused to open a device.
    #[error("could not open a device on {adapter}: {reason}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },
    /// A tensor or buffer is larger than this device allows.
    #[error("{what} needs {bytes} bytes, more than this device's limit of {limit} bytes")]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Bytes needed.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
    /// Mapping a buffer for reading failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
    /// wgpu reported a validation or device error.
    #[error("GPU error: {0}")]
    Device(String),
    /// The arguments of an operation do not fit together.
    #[error("{0}")]
    Invalid(String),
}
