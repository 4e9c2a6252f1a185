//! The device-memory ledger: every buffer and texture lowp creates is counted here, by what
//! it holds, from its creation until its last handle is dropped. (wgpu may keep a dropped
//! buffer until the GPU has run the commands that use it; its own count,
//! `wgpu_memory_bytes`, sees that, its allocators' rounding and its internal buffers.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a device buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Packed tensor codes and their scales.
    Tensor,
    /// A trainer's working buffers beside its packed tensors (pending f32 gradient sums,
    /// f32 per-channel vectors, an optimizer step's new values before they replace the old).
    Working,
    /// Pooled temporaries (split-K partials, chunked sums, accumulator state).
    Temporary,
    /// Kernel parameters (uniform buffers).
    Parameters,
    /// Host-readable staging buffers for readback.
    Staging,
    /// Anything else: inputs uploaded for one operation, labels, statistics.
    Other,
}

impl Purpose {
    /// Every purpose, in report order.
    pub const ALL: [Purpose; 6] = [
        Purpose::Tensor,
        Purpose::Working,
        Purpose::Temporary,
        Purpose::Parameters,
        Purpose::Staging,
        Purpose::Other,
    ];

    /// The purpose's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Tensor => "tensors",
            Purpose::Working => "working buffers",
            Purpose::Temporary => "temporaries",
            Purpose::Parameters => "kernel parameters",
            Purpose::Staging => "staging",
            Purpose::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize // declared in `ALL` order
    }
}

/// Live and peak bytes of the buffers a context has created, by purpose.
#[derive(Default)]
pub struct Ledger {
    live: [AtomicU64; 6],
    total: AtomicU64,
    buffers: AtomicU64,
    peak: AtomicU64,
    /// The context's cached bind groups, which forget a buffer when it is dropped here.
    pub(crate) binds: super::bind_cache::BindCache,
}

/// A snapshot of a ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Live bytes by purpose, in `Purpose::ALL` order.
    pub live: [u64; 6],
    /// Live buffers and textures.
    pub buffers: u64,
    /// The largest total held at once so far.
    pub peak: u64,
}

impl MemoryReport {
    /// Live bytes of every purpose together.
    pub fn total(&self) -> u64 {
        self.live.iter().sum()
    }

    /// Live bytes of one purpose.
    pub fn of(&self, p: Purpose) -> u64 {
        self.live[p.index()]
    }

    /// What was added since `before` (live bytes and buffers; the peak is this one's).
    pub fn since(&self, before: &MemoryReport) -> MemoryReport {
        let mut live = [0; 6];
        for (i, l) in live.iter_mut().enumerate() {
            *l = self.live[i].saturating_sub(before.live[i]);
        }
        MemoryReport {
            live,
            buffers: self.buffers.saturating_sub(before.buffers),
            peak: self.peak,
        }
    }
}

impl Ledger {
    fn add(&self, p: Purpose, bytes: u64) {
        self.live[p.index()].fetch_add(bytes, Ordering::SeqCst);
        self.buffers.fetch_add(1, Ordering::SeqCst);
        let total = self.total.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(total, Ordering::SeqCst);
    }

    fn sub(&self, p: Purpose, bytes: u64) {
        self.live[p.index()].fetch_sub(bytes, Ordering::SeqCst);
        self.total.fetch_sub(bytes, Ordering::SeqCst);
        self.buffers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Starts the peak afresh from what is held now.
    pub fn reset_peak(&self) {
        let total = self.total.load(Ordering::SeqCst);
        self.peak.store(total, Ordering::SeqCst);
    }

    /// What is held now, and the peak.
    pub fn report(&self) -> MemoryReport {
        let mut live = [0; 6];
        for (l, a) in live.iter_mut().zip(&self.live) {
            *l = a.load(Ordering::SeqCst);
        }
        MemoryReport {
            live,
            buffers: self.buffers.load(Ordering::SeqCst),
            peak: self.peak.load(Ordering::SeqCst),
        }
    }
}

struct Tracked {
    buffer: wgpu::Buffer,
    purpose: Purpose,
    ledger: Arc<Ledger>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ledger.binds.forget(&self.buffer);
        self.ledger.sub(self.purpose, self.buffer.size());
    }
}

/// A device buffer counted in its context's ledger until its last clone is dropped.
#[derive(Clone)]
pub struct DeviceBuffer(Arc<Tracked>);

impl DeviceBuffer {
    /// Counts `buffer` under `purpose` in `ledger`.
    pub(crate) fn track(buffer: wgpu::Buffer, purpose: Purpose, ledger: &Arc<Ledger>) -> Self {
        ledger.add(purpose, buffer.size());
        DeviceBuffer(Arc::new(Tracked {
            buffer,
            purpose,
            ledger: ledger.clone(),
        }))
    }

    /// What the buffer holds.
    pub fn purpose(&self) -> Purpose {
        self.0.purpose
    }
}

impl std::ops::Deref for DeviceBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.0.buffer
    }
}

/// A 2-D texture counted in its context's ledger until its last clone is dropped, with the
/// view its kernels bind.
#[derive(Clone)]
pub struct DeviceTexture(Arc<TrackedTexture>);

struct TrackedTexture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    bytes: u64,
    purpose: Purpose,
    ledger: Arc<Ledger>,
}

impl Drop for TrackedTexture {
    fn drop(&mut self) {
        self.ledger.binds.forget_texture(&self.view);
        self.ledger.sub(self.purpose, self.bytes);
    }
}

impl DeviceTexture {
    /// Counts `texture` (of `bytes` texel data) under `purpose` in `ledger`.
    pub(crate) fn track(
        texture: wgpu::Texture,
        bytes: u64,
        purpose: Purpose,
        ledger: &Arc<Ledger>,
    ) -> Self {
        ledger.add(purpose, bytes);
        let view = texture.create_view(&Default::default());
        DeviceTexture(Arc::new(TrackedTexture {
            texture,
            view,
            bytes,
            purpose,
            ledger: ledger.clone(),
        }))
    }

    /// The view of the whole texture.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.0.view
    }

    /// The texture's width and height in texels.
    pub fn size(&self) -> (u32, u32) {
        (self.0.texture.width(), self.0.texture.height())
    }

    /// Bytes of texel data.
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }
}

/// Bytes wgpu itself reports allocated for buffers and textures on `device` (the backend's
/// allocations, alignment included, every buffer wgpu holds, its own among them).
pub fn wgpu_memory_bytes(device: &wgpu::Device) -> u64 {
    let hal = device.get_internal_counters().hal;
    (hal.buffer_memory.read().max(0) + hal.texture_memory.read().max(0)) as u64
}
