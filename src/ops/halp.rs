//! HALP's inner loop on the GPU (and SGD, LP-SGD, SVRG, LP-SVRG's): the twin of
//! `reference::halp`, bit for bit. The rows, the centre, the iterate, each row's factors at
//! the centre and the full gradient stay on the device; an epoch's steps are one submission.

use crate::glm::{Glm, InnerSteps, Rows};
use crate::gpu::Encoder;
use crate::gpu::buffers::{read_u32, upload_f32, upload_u32, zeroed};
use crate::gpu::dispatch::{record, record_tiled};
use crate::gpu::memory::DeviceBuffer;
use crate::gpu::params::HalpParams;
use crate::gpu::specialise::Specialisation;
use crate::gpu::{GpuContext, GpuError};

/// Rows a kernel may loop over in one dispatch: llvmpipe ends a loop after 65,535.
pub const MAX_LOOP: usize = 65_535;

/// Batches up to this many rows run many steps per dispatch in the epoch kernel's one
/// workgroup; larger ones a dispatch per phase of each step (many workgroups).
pub const EPOCH_BATCH: usize = 64;

/// Invocations of the epoch kernel's workgroup on an adapter (WGSL's `EPOCH_WG`): a CPU
/// adapter runs a workgroup on one core, where 8 (one SIMD group) avoids switching between
/// groups at every barrier (measured 2.5-4x faster than 64 on llvmpipe); a GPU takes 64.
fn epoch_workgroup(ctx: &GpuContext) -> u32 {
    match ctx.info.device_type {
        wgpu::DeviceType::Cpu => 8,
        _ => 64,
    }
}

/// Steps the epoch kernel takes in one dispatch (below llvmpipe's loop limit).
const STEPS_PER_DISPATCH: usize = 60_000;

/// A generalised linear model's rows and state on the GPU.
pub struct GpuHalp<'c> {
    ctx: &'c GpuContext,
    base: HalpParams,
    rows: usize,
    x: DeviceBuffer,
    y: DeviceBuffer,
    centre: DeviceBuffer,
    iter: DeviceBuffer,
    res: DeviceBuffer,
    cres: DeviceBuffer,
    full: DeviceBuffer,
    sat: DeviceBuffer,
}

impl<'c> GpuHalp<'c> {
    /// Uploads the rows and targets for the objective `glm`, with zero state.
    pub fn new(ctx: &'c GpuContext, rows: &Rows, glm: &Glm) -> Result<GpuHalp<'c>, GpuError> {
        let (n, d, m) = (rows.y.len(), rows.cols, glm.outputs());
        if n == 0 || d == 0 || rows.x.len() != n * d {
            return Err(GpuError::Invalid(format!(
                "{} features for {n} rows of {d}",
                rows.x.len()
            )));
        }
        if d > MAX_LOOP || m > MAX_LOOP {
            return Err(GpuError::Invalid(format!(
                "{d} features and {m} outputs: a kernel loops over at most {MAX_LOOP}"
            )));
        }
        let task = match glm {
            Glm::Lsq => 0,
            Glm::Logistic { .. } => 1,
            Glm::Softmax { .. } => 2,
            Glm::Svm { .. } => {
                return Err(GpuError::Invalid(
                    "HALP's kernels take least squares, logistic and softmax regression".into(),
                ));
            }
        };
        let base = HalpParams {
            cols: d as u32,
            outputs: m as u32,
            l2: match glm.l2() {
                0.0 => 0,
                l2 => l2.to_bits(),
            },
            task,
            ..Default::default()
        };
        Ok(GpuHalp {
            ctx,
            base,
            rows: n,
            x: upload_f32(ctx, "halp rows", rows.x)?,
            y: upload_f32(ctx, "halp targets", rows.y)?,
            centre: zeroed(ctx, "halp centre", d * m)?,
            iter: zeroed(ctx, "halp iterate", d * m)?,
            res: zeroed(ctx, "halp batch factors", MAX_LOOP.min(n) * m)?,
            cres: zeroed(ctx, "halp centre factors", n * m)?,
            full: zeroed(ctx, "halp full gradient", d * m)?,
            sat: zeroed(ctx, "halp saturations", 1)?,
        })
    }

    /// The storage bindings `entry` reads or writes (each entry point's layout holds only
    /// those).
    fn bindings<'b>(
        &'b self,
        entry: &str,
        order: &'b wgpu::Buffer,
    ) -> Vec<(u32, &'b wgpu::Buffer)> {
        let used: &[u32] = match entry {
            "factors" => &[1, 2, 3, 4, 5, 6, 7],
            "full_grad" => &[1, 4, 7, 8],
            "epoch" => &[1, 2, 3, 4, 5, 6, 7, 8, 9],
            _ => &[1, 3, 4, 5, 6, 7, 8, 9],
        };
        [
            (1, &*self.x),
            (2, &*self.y),
            (3, order),
            (4, &*self.centre),
            (5, &*self.iter),
            (6, &*self.res),
            (7, &*self.cres),
            (8, &*self.full),
            (9, &*self.sat),
        ]
        .into_iter()
        .filter(|(b, _)| used.contains(b))
        .collect()
    }

    fn weights(&self) -> usize {
        (self.base.cols * self.base.outputs) as usize
    }

    /// Sets the centre to `w`, caches every row's factors there and returns the full
    /// gradient at it (as the reference's `batch_gradient` over all rows computes it).
    pub fn set_centre(&mut self, w: &[f32]) -> Result<Vec<f32>, GpuError> {
        let dm = self.weights();
        if w.len() != dm {
            return Err(GpuError::Invalid(format!(
                "a centre of {} for {dm}",
                w.len()
            )));
        }
        self.ctx
            .queue
            .write_buffer(&self.centre, 0, bytemuck::cast_slice(w));
        let unused = upload_u32(self.ctx, "unused order", &[0])?;
        let mut enc = Encoder::new(self.ctx);
        let p = HalpParams {
            point: 2,
            ..self.base
        };
        record(
            self.ctx,
            &mut enc,
            "halp",
            "factors",
            self.rows as u32,
            p,
            &self.bindings("factors", &unused),
        )?;
        let inv = (1.0 / self.rows as f32).to_bits();
        for start in (0..self.rows).step_by(MAX_LOOP) {
            let len = MAX_LOOP.min(self.rows - start);
            let p = HalpParams {
                point: 2,
                start: start as u32,
                len: len as u32,
                first: (start == 0) as u32,
                last: (start + len == self.rows) as u32,
                inv,
                ..self.base
            };
            record(
                self.ctx,
                &mut enc,
                "halp",
                "full_grad",
                dm as u32,
                p,
                &self.bindings("full_grad", &unused),
            )?;
        }
        enc.submit();
        self.ctx.wait()?;
        read_f32(self.ctx, &self.full, dm)
    }

    /// Runs one epoch's inner steps from the iterate `start` (recorded as one submission);
    /// the iterate they end at and the values the grid clamped.
    pub fn inner(&mut self, start: &[f32], s: &InnerSteps) -> Result<(Vec<f32>, u64), GpuError> {
        let dm = self.weights();
        let held = MAX_LOOP.min(self.rows);
        if start.len() != dm
            || s.batch == 0
            || s.batch > held
            || s.order.is_empty()
            || s.order.iter().any(|&i| i >= self.rows)
        {
            return Err(GpuError::Invalid(format!(
                "an iterate of {} ({dm} expected), a batch of {} rows (at most {held}) over \
                 an order of {} (rows below {})",
                start.len(),
                s.batch,
                s.order.len(),
                self.rows
            )));
        }
        self.ctx
            .queue
            .write_buffer(&self.iter, 0, bytemuck::cast_slice(start));
        self.ctx.queue.write_buffer(&self.sat, 0, &[0u8; 4]);
        let idx: Vec<u32> = s.order.iter().map(|&i| i as u32).collect();
        let order = upload_u32(self.ctx, "halp row order", &idx)?;
        let (factors, step) = (
            self.bindings("factors", &order),
            self.bindings("step", &order),
        );
        let (bits, scale) = s.grid.map_or((0, 0), |g| (g.bits, g.scale.to_bits()));
        let batches = s.order.len().div_ceil(s.batch);
        let mut enc = Encoder::new(self.ctx);
        let common = HalpParams {
            point: s.offset as u32,
            svrg: s.svrg as u32,
            lr: s.lr.to_bits(),
            bits,
            scale,
            seed_lo: s.seed as u32,
            seed_hi: (s.seed >> 32) as u32,
            ..self.base
        };
        if s.batch <= EPOCH_BATCH {
            let wg = epoch_workgroup(self.ctx) as f64;
            let all = self.bindings("epoch", &order);
            for j0 in (0..s.steps).step_by(STEPS_PER_DISPATCH) {
                let p = HalpParams {
                    steps: STEPS_PER_DISPATCH.min(s.steps - j0) as u32,
                    batch: s.batch as u32,
                    order_len: s.order.len() as u32,
                    j0: j0 as u32,
                    base_lo: s.step0 as u32,
                    base_hi: (s.step0 >> 32) as u32,
                    ..common
                };
                record_tiled(
                    self.ctx,
                    &mut enc,
                    ("halp", "epoch", &[("EPOCH_WG", wg)]),
                    &Specialisation::default(),
                    (1, 1, 1),
                    &p,
                    &all,
                )?;
            }
        }
        for j in (0..s.steps).filter(|_| s.batch > EPOCH_BATCH) {
            let first = (j % batches) * s.batch;
            let len = s.batch.min(s.order.len() - first);
            let counter = (s.step0 + j as u64) * dm as u64;
            let p = HalpParams {
                start: first as u32,
                len: len as u32,
                inv: (1.0 / len as f32).to_bits(),
                base_lo: counter as u32,
                base_hi: (counter >> 32) as u32,
                ..common
            };
            record(
                self.ctx, &mut enc, "halp", "factors", len as u32, p, &factors,
            )?;
            record(self.ctx, &mut enc, "halp", "step", dm as u32, p, &step)?;
        }
        enc.submit();
        self.ctx.wait()?;
        let w = read_f32(self.ctx, &self.iter, dm)?;
        let sat = read_u32(self.ctx, &self.sat, 1)?[0];
        Ok((w, sat as u64))
    }
}

fn read_f32(ctx: &GpuContext, buf: &wgpu::Buffer, n: usize) -> Result<Vec<f32>, GpuError> {
    Ok(read_u32(ctx, buf, n)?
        .into_iter()
        .map(f32::from_bits)
        .collect())
}
