//! Kernel parameters from reused uniform chunks: an encoder writes each dispatch's
//! parameters at the next aligned offset of a chunk it leases from its context's ring,
//! uploads the chunks when it is submitted, and returns them; the next encoder reuses them
//! in the same order, so a training step's dispatches see the same (chunk, offset) each step
//! and their bind groups can be cached (`gpu::bind_cache`).

use super::memory::{DeviceBuffer, Ledger, Purpose};
use std::sync::{Arc, Mutex};

/// Bytes of one chunk of parameters (256 dispatches at 256-byte offsets).
pub const CHUNK: u64 = 64 * 1024;

/// Free chunks a ring keeps for the next encoders (1 MiB); an encoder that needed more
/// returns the rest to the device.
const KEPT: usize = 16;

/// The context's free chunks.
pub struct ParamRing {
    device: wgpu::Device,
    ledger: Arc<Ledger>,
    align: u64,
    free: Mutex<Vec<DeviceBuffer>>,
}

/// Where one dispatch's parameters are: a chunk, the offset and the bytes bound.
pub struct ParamSlot {
    /// The chunk.
    pub buffer: DeviceBuffer,
    /// Offset of the parameters in it.
    pub offset: u64,
    /// Bytes bound (the parameters rounded up to 16).
    pub size: u64,
}

/// The chunks one encoder has leased and what it wrote into them, not yet uploaded.
pub struct ParamArena {
    ring: Arc<ParamRing>,
    chunks: Vec<(DeviceBuffer, Vec<u8>)>,
    /// Bytes of each chunk already uploaded.
    uploaded: Vec<usize>,
}

impl ParamRing {
    /// An empty ring on `device`, its chunks counted in `ledger` as kernel parameters.
    pub fn new(device: &wgpu::Device, ledger: &Arc<Ledger>) -> Arc<ParamRing> {
        let align = device.limits().min_uniform_buffer_offset_alignment.max(16) as u64;
        Arc::new(ParamRing {
            device: device.clone(),
            ledger: ledger.clone(),
            align,
            free: Mutex::default(),
        })
    }

    fn lease(&self) -> DeviceBuffer {
        if let Some(b) = self.free.lock().unwrap().pop() {
            return b;
        }
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel parameters"),
            size: CHUNK,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        DeviceBuffer::track(b, Purpose::Parameters, &self.ledger)
    }
}

impl ParamArena {
    /// An arena leasing from `ring`.
    pub fn new(ring: &Arc<ParamRing>) -> ParamArena {
        ParamArena {
            ring: ring.clone(),
            chunks: Vec::new(),
            uploaded: Vec::new(),
        }
    }

    /// Places `bytes` (one dispatch's parameters) in a leased chunk.
    pub fn push(&mut self, bytes: &[u8]) -> ParamSlot {
        let size = (bytes.len() as u64).next_multiple_of(16).max(16);
        assert!(size <= CHUNK, "kernel parameters of {size} bytes");
        let align = self.ring.align;
        let fits = |data: &Vec<u8>| (data.len() as u64).next_multiple_of(align) + size <= CHUNK;
        if !self.chunks.last().is_some_and(|(_, d)| fits(d)) {
            self.chunks.push((self.ring.lease(), Vec::new()));
        }
        let (buffer, data) = self.chunks.last_mut().expect("a chunk was just leased");
        let offset = (data.len() as u64).next_multiple_of(align);
        data.resize(offset as usize, 0);
        data.extend_from_slice(bytes);
        data.resize((offset + size) as usize, 0);
        ParamSlot {
            buffer: buffer.clone(),
            offset,
            size,
        }
    }

    /// Queues the upload of what was written since the last upload (before the next
    /// submission's commands run).
    pub fn upload(&mut self, queue: &wgpu::Queue) {
        for (i, (buffer, data)) in self.chunks.iter().enumerate() {
            let done = self.uploaded.get(i).copied().unwrap_or(0);
            if data.len() > done {
                queue.write_buffer(buffer, done as u64, &data[done..]);
            }
        }
        self.uploaded = self.chunks.iter().map(|(_, d)| d.len()).collect();
    }
}

impl Drop for ParamArena {
    /// Returns the chunks, last leased first back, so that the next encoder leases them in
    /// the same order.
    fn drop(&mut self) {
        let mut free = self.ring.free.lock().unwrap();
        free.extend(self.chunks.drain(..).rev().map(|(b, _)| b));
        if free.len() > KEPT {
            // The chunks leased first stay (at the end, leased first again).
            let extra = free.len() - KEPT;
            free.drain(..extra);
        }
    }
}
