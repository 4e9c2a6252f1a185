//! A command encoder whose consecutive dispatches share one compute pass.

use super::context::GpuContext;
use std::ops::{Deref, DerefMut};

/// A command encoder that keeps a compute pass open across dispatches (on lavapipe a pass
/// of its own costs a dispatch about 40-70 us more); anything else recorded on it (copies,
/// clears, timestamps) first ends the open pass. Under `LOWP_PROFILE` every dispatch gets
/// its own pass, which carries its timestamps.
pub struct Encoder {
    pass: Option<wgpu::ComputePass<'static>>,
    enc: wgpu::CommandEncoder,
}

impl Encoder {
    /// A new encoder on `ctx`'s device.
    pub fn new(ctx: &GpuContext) -> Encoder {
        Encoder {
            pass: None,
            enc: ctx.device.create_command_encoder(&Default::default()),
        }
    }

    /// The compute pass a dispatch is recorded in: the open one, or a new one (always a new
    /// one when the dispatch carries timestamp writes, which belong to a whole pass).
    pub fn compute_pass(
        &mut self,
        label: &str,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> &mut wgpu::ComputePass<'static> {
        if timestamps.is_some() {
            self.pass = None;
        }
        if self.pass.is_none() {
            let pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: timestamps,
            });
            self.pass = Some(pass.forget_lifetime());
        }
        self.pass.as_mut().expect("a pass was just opened")
    }

    /// Ends the open pass (if any) and finishes the command buffer.
    pub fn finish(mut self) -> wgpu::CommandBuffer {
        self.pass = None;
        self.enc.finish()
    }
}

impl Deref for Encoder {
    type Target = wgpu::CommandEncoder;

    fn deref(&self) -> &wgpu::CommandEncoder {
        &self.enc
    }
}

impl DerefMut for Encoder {
    /// The encoder itself, for recording outside a compute pass: the open pass ends first.
    fn deref_mut(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        &mut self.enc
    }
}
