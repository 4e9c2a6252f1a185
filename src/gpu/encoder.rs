//! A command encoder whose consecutive dispatches share one compute pass and whose kernel
//! parameters share reused uniform chunks.

use super::context::GpuContext;
use super::error::GpuError;
use super::memory::Ledger;
use super::param_ring::{ParamArena, ParamSlot};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A command encoder that keeps a compute pass open across dispatches (on lavapipe a pass
/// of its own costs a dispatch about 40-70 us more); anything else recorded on it (copies,
/// clears, timestamps) first ends the open pass. Under `LOWP_PROFILE` every dispatch gets
/// its own pass, which carries its timestamps. Its dispatches' parameters are written into
/// uniform chunks leased from the context (`gpu::param_ring`) and uploaded when it is
/// submitted with [`Encoder::submit`]; an encoder dropped unsubmitted records nothing.
pub struct Encoder {
    pass: Option<wgpu::ComputePass<'static>>,
    enc: wgpu::CommandEncoder,
    queue: wgpu::Queue,
    params: ParamArena,
    /// The context's ledger, which holds its cached bind groups.
    ledger: Arc<Ledger>,
    /// What the dispatches now being recorded compute (a GEMM view's family and size), for
    /// the profile's labels.
    view: Option<String>,
}

impl Encoder {
    /// A new encoder on `ctx`'s device.
    pub fn new(ctx: &GpuContext) -> Encoder {
        Encoder {
            pass: None,
            enc: ctx.device.create_command_encoder(&Default::default()),
            queue: ctx.queue.clone(),
            params: ParamArena::new(&ctx.params),
            ledger: ctx.ledger.clone(),
            view: None,
        }
    }

    /// Names what the next dispatches compute in the profile's labels (None: their grids).
    pub fn set_view(&mut self, view: Option<String>) {
        self.view = view;
    }

    /// What [`Encoder::set_view`] last named.
    pub fn view(&self) -> Option<&str> {
        self.view.as_deref()
    }

    /// The cached bind group of `pipeline` with these (binding, buffer, offset) and
    /// (binding, texture view) entries, or the one `make` creates (then cached).
    pub fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        (entries, views): super::bind_cache::Entries,
        make: impl FnOnce() -> Result<wgpu::BindGroup, GpuError>,
    ) -> Result<wgpu::BindGroup, GpuError> {
        self.ledger
            .binds
            .get((pipeline.clone(), entries, views), make)
    }

    /// Places one dispatch's parameters in this encoder's uniform chunks.
    pub fn params<P: bytemuck::Pod>(&mut self, value: &P) -> ParamSlot {
        self.params.push(bytemuck::bytes_of(value))
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

    /// Submits what was recorded so far (the parameters uploaded first) and waits for it to
    /// run; recording goes on in a new command encoder. (A host-timed profile runs each
    /// dispatch alone this way; what ran stays done even if the encoder is then dropped.)
    pub fn run_recorded(&mut self, ctx: &GpuContext) -> Result<(), GpuError> {
        self.pass = None;
        self.params.upload(&self.queue);
        let next = ctx.device.create_command_encoder(&Default::default());
        let done = std::mem::replace(&mut self.enc, next);
        self.queue.submit([done.finish()]);
        ctx.wait()
    }

    /// Ends the open pass (if any), uploads the kernel parameters and submits the commands
    /// to the queue; the parameter chunks go back to the context for the next encoder.
    pub fn submit(mut self) -> wgpu::SubmissionIndex {
        self.pass = None;
        self.params.upload(&self.queue);
        let index = self.queue.submit([self.enc.finish()]);
        self.ledger.binds.submitted();
        index
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
