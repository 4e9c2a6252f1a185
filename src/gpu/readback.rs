//! Reading small GPU results back without stalling: each submission's results are copied
//! into their own staging buffer and mapped asynchronously; the host collects the ones the
//! GPU has finished, in submission order, while later work is still running.

use super::buffers::staging;
use super::encoder::Encoder;
use super::memory::DeviceBuffer;
use super::{GpuContext, GpuError};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// How long a finished submission's results may take to arrive: on a device that several
/// contexts share ([`GpuContext::fork`]), another thread's poll may be the one that runs the
/// callback marking them mapped, just after this thread saw the device idle.
const ARRIVAL: std::time::Duration = std::time::Duration::from_secs(10);

const PENDING: u8 = 0;
const MAPPED: u8 = 1;
const FAILED: u8 = 2;

struct InFlight {
    tag: u64,
    buffer: DeviceBuffer,
    state: Arc<AtomicU8>,
    submission: wgpu::SubmissionIndex,
}

/// Results of earlier submissions on their way back to the host, oldest first.
#[derive(Default)]
pub struct Readback {
    in_flight: VecDeque<InFlight>,
}

impl Readback {
    /// Records copies of `sources` (buffer, words) into one new staging buffer, word after word.
    pub fn stage(
        ctx: &GpuContext,
        enc: &mut Encoder,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> DeviceBuffer {
        let words: usize = sources.iter().map(|(_, n)| n).sum();
        let st = staging(ctx, 4 * words as u64);
        let mut at = 0u64;
        for (buf, n) in sources {
            let bytes = 4 * *n as u64;
            enc.copy_buffer_to_buffer(buf, 0, &st, at, bytes);
            at += bytes;
        }
        st
    }

    /// Starts mapping a staging buffer whose copies were just submitted (as `submission`),
    /// labelled `tag`.
    pub fn push(&mut self, tag: u64, buffer: DeviceBuffer, submission: wgpu::SubmissionIndex) {
        let state = Arc::new(AtomicU8::new(PENDING));
        let flag = state.clone();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            flag.store(if r.is_ok() { MAPPED } else { FAILED }, Ordering::Release);
        });
        self.in_flight.push_back(InFlight {
            tag,
            buffer,
            state,
            submission,
        });
    }

    /// Waits until at most `depth` submissions are on their way (the host may run ahead of
    /// the GPU by that many), and returns the results that arrived, oldest first.
    pub fn limit(
        &mut self,
        ctx: &GpuContext,
        depth: usize,
    ) -> Result<Vec<(u64, Vec<u32>)>, GpuError> {
        let mut out = self.poll(ctx)?;
        while self.in_flight.len() > depth {
            let index = self.in_flight[self.in_flight.len() - depth - 1]
                .submission
                .clone();
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map_err(|e| GpuError::Device(e.to_string()))?;
            ctx.check()?;
            let unmapped = "a finished submission's results were not mapped";
            out.extend(self.collect_until(ctx, depth, unmapped)?);
        }
        Ok(out)
    }

    /// Submissions still on their way.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is on its way.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The results that have arrived, oldest first, without waiting for the rest.
    pub fn poll(&mut self, ctx: &GpuContext) -> Result<Vec<(u64, Vec<u32>)>, GpuError> {
        ctx.device
            .poll(wgpu::PollType::Poll)
            .map_err(|e| GpuError::Device(e.to_string()))?;
        ctx.check()?;
        self.collect()
    }

    /// Waits for every result on its way and returns them, oldest first.
    pub fn wait_all(&mut self, ctx: &GpuContext) -> Result<Vec<(u64, Vec<u32>)>, GpuError> {
        if self.in_flight.is_empty() {
            return Ok(Vec::new());
        }
        ctx.wait()?;
        let late = "a mapped result did not arrive after the device went idle";
        self.collect_until(ctx, 0, late)
    }

    /// Collects the results of finished submissions until at most `left` are on their way,
    /// polling while another thread may still be delivering them; `what` after ARRIVAL.
    fn collect_until(
        &mut self,
        ctx: &GpuContext,
        left: usize,
        what: &str,
    ) -> Result<Vec<(u64, Vec<u32>)>, GpuError> {
        let start = std::time::Instant::now();
        let mut out = self.collect()?;
        while self.in_flight.len() > left {
            if start.elapsed() > ARRIVAL {
                return Err(GpuError::Readback(what.into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            out.extend(self.poll(ctx)?);
        }
        Ok(out)
    }

    fn collect(&mut self) -> Result<Vec<(u64, Vec<u32>)>, GpuError> {
        let mut out = Vec::new();
        while let Some(f) = self.in_flight.front() {
            match f.state.load(Ordering::Acquire) {
                PENDING => break,
                FAILED => {
                    return Err(GpuError::Readback(format!(
                        "mapping the results of submission {} failed",
                        f.tag
                    )));
                }
                _ => {}
            }
            let f = self.in_flight.pop_front().unwrap();
            let words = {
                let view = f
                    .buffer
                    .get_mapped_range(..)
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                bytemuck::cast_slice::<u8, u32>(&view).to_vec()
            };
            f.buffer.unmap();
            out.push((f.tag, words));
        }
        Ok(out)
    }
}
