//! Linear-model SGD on the GPU over samples stored packed (ZipML): level indices at `bits`
//! bits and one up bit per sample (with the f32 rows beside them where the hinge refetches),
//! or f32 values; the twin of `reference::linear`.

use crate::format::pack;
use crate::gpu::Encoder;
use crate::gpu::buffers::{read_u32, upload_f32, upload_u32, zeroed};
use crate::gpu::dispatch::record;
use crate::gpu::memory::DeviceBuffer;
use crate::gpu::params::LinearParams;
use crate::gpu::{GpuContext, GpuError};
use crate::levels::{Estimator, Loss, QuantizedMatrix, Samples, step_spec};
use crate::ops::quantize::{check_len, record_fake_quantize, scale_words};
use crate::quant::QuantSpec;

/// Rows a batch may hold: a kernel loops over them, and llvmpipe ends a loop after 65,535.
pub const MAX_BATCH: usize = 65_535;

/// The up bits of `q` packed as kernel `mode` reads them, and their width per value: the
/// samples' up bits, or for refetching (mode 3) the up bit and then whether the value lies
/// strictly between two levels.
fn up_words(q: &QuantizedMatrix, mode: u32) -> (Vec<u32>, u32) {
    let mut ups: Vec<u32> = q.up().iter().map(|&c| c as u32).collect();
    let mut s = q.samples() as u32;
    if mode == 3 {
        ups.iter_mut()
            .zip(q.inside())
            .for_each(|(u, &inside)| *u = (*u & 1) | (inside as u32) << 1);
        s = 2;
    }
    (pack(&ups, s), s)
}

/// A linear model's data, targets and weights on the GPU.
pub struct GpuLinear<'c> {
    ctx: &'c GpuContext,
    base: LinearParams,
    rows: usize,
    features: DeviceBuffer,
    lower: DeviceBuffer,
    up: DeviceBuffer,
    levels: DeviceBuffer,
    target: DeviceBuffer,
    poly: DeviceBuffer,
    w: DeviceBuffer,
    res: DeviceBuffer,
    fetched: DeviceBuffer,
    rounding: Option<StepRounding>,
    /// `update`'s gradient output where nothing is rounded (never written then).
    spare: DeviceBuffer,
}

/// The gradient's and the model's rounding through formats each step, with their buffers.
struct StepRounding {
    model: Option<QuantSpec>,
    grad: Option<QuantSpec>,
    seed: u64,
    /// The step's gradient, then the step's weights before their rounding.
    grad_out: DeviceBuffer,
    next: DeviceBuffer,
    rounded_grad: DeviceBuffer,
    scales: DeviceBuffer,
    stats: DeviceBuffer,
}

impl<'c> GpuLinear<'c> {
    /// Uploads the samples (packed as they are stored) and targets, with zero weights, to
    /// train the objective `loss`.
    pub fn new(
        ctx: &'c GpuContext,
        samples: &Samples,
        targets: &[f32],
        loss: &Loss,
    ) -> Result<GpuLinear<'c>, GpuError> {
        let cols = samples.cols();
        let rows = targets.len();
        let one = || upload_u32(ctx, "unused", &[0]);
        let mut base = LinearParams {
            cols: cols as u32,
            ..Default::default()
        };
        let poly = match loss {
            Loss::Lsq => one()?,
            Loss::Logistic { l2, poly } => {
                base.l2 = if *l2 == 0.0 { 0 } else { l2.to_bits() };
                base.task = 1;
                match poly {
                    Some(p) => {
                        base.task = 2;
                        base.degree = p.len().saturating_sub(1) as u32;
                        upload_f32(ctx, "polynomial", p)?
                    }
                    None => one()?,
                }
            }
            Loss::Hinge { l2 } => {
                base.l2 = if *l2 == 0.0 { 0 } else { l2.to_bits() };
                base.task = 3;
                one()?
            }
        };
        let (features, lower, up, levels) = match samples {
            Samples::Fp32(x, _) => (
                upload_f32(ctx, "linear features", x)?,
                one()?,
                one()?,
                one()?,
            ),
            Samples::Quantized(q, _) | Samples::Refetch(q, _) => {
                let bits = q.index_bits();
                let per_col = 1usize << bits;
                let full = match samples {
                    Samples::Refetch(_, x) => {
                        base.mode = 3;
                        upload_f32(ctx, "linear features", x)?
                    }
                    Samples::Quantized(_, Estimator::Naive) => {
                        base.mode = 1;
                        one()?
                    }
                    _ => {
                        base.mode = 2;
                        one()?
                    }
                };
                base.bits = bits;
                base.per_col = per_col as u32;
                let codes: Vec<u32> = q.lower().iter().map(|&c| c as u32).collect();
                let (ups, s) = up_words(q, base.mode);
                base.samples = s;
                let mut table = Vec::with_capacity(cols * per_col);
                for l in q.levels() {
                    let v = l.values();
                    table.extend((0..per_col).map(|j| v[j.min(v.len() - 1)]));
                }
                (
                    full,
                    upload_u32(ctx, "level indices", &pack(&codes, bits))?,
                    upload_u32(ctx, "up bits", &ups)?,
                    upload_f32(ctx, "levels", &table)?,
                )
            }
        };
        Ok(GpuLinear {
            ctx,
            base,
            rows,
            features,
            lower,
            up,
            levels,
            target: upload_f32(ctx, "targets", targets)?,
            poly,
            w: zeroed(ctx, "weights", cols)?,
            res: zeroed(ctx, "residuals", MAX_BATCH.min(rows.max(1)))?,
            fetched: zeroed(ctx, "refetch flags", MAX_BATCH.min(rows.max(1)) + 1)?,
            rounding: None,
            spare: zeroed(ctx, "unused", 1)?,
        })
    }

    /// Replaces the samples' up bits with those of `q` (the same values drawn again, as
    /// resampling does every epoch; the level indices stay).
    pub fn set_up_bits(&mut self, q: &QuantizedMatrix) -> Result<(), GpuError> {
        let (ups, s) = up_words(q, self.base.mode);
        if self.base.mode == 0 || s != self.base.samples || 4 * ups.len() as u64 > self.up.size() {
            return Err(GpuError::Invalid(
                "new samples must be drawn for the same values and estimator".into(),
            ));
        }
        self.ctx
            .queue
            .write_buffer(&self.up, 0, bytemuck::cast_slice(&ups));
        Ok(())
    }

    /// Rounds each step's gradient through `grad` and the weights after it through `model`
    /// (either may be None), their random bits from `seed` (`levels::step_spec`).
    pub fn set_rounding(
        &mut self,
        model: Option<QuantSpec>,
        grad: Option<QuantSpec>,
        seed: u64,
    ) -> Result<(), GpuError> {
        if model.is_none() && grad.is_none() {
            self.rounding = None;
            self.base.rounded = 0;
            return Ok(());
        }
        let d = self.base.cols as usize;
        let mut words = 1;
        for spec in model.iter().chain(&grad) {
            check_len(spec, d)?;
            words = words.max(scale_words(spec, d));
        }
        let ctx = self.ctx;
        self.rounding = Some(StepRounding {
            model,
            grad,
            seed,
            grad_out: zeroed(ctx, "gradient", d)?,
            next: zeroed(ctx, "next weights", d)?,
            rounded_grad: zeroed(ctx, "rounded gradient", d)?,
            scales: zeroed(ctx, "rounding scales", words)?,
            stats: zeroed(ctx, "rounding stats", 4)?,
        });
        self.base.rounded = 1;
        Ok(())
    }

    /// Bytes of sample data held on the device.
    pub fn sample_bytes(&self) -> u64 {
        match self.base.mode {
            0 => self.features.size(),
            3 => self.features.size() + self.lower.size() + self.up.size(),
            _ => self.lower.size() + self.up.size(),
        }
    }

    /// One epoch of SGD: the rows in `order`, `batch` at a time, step size `lr`, the first
    /// step numbered `step0` (the rounding's random streams); submitted as one command
    /// buffer and waited for. Returns the rows read again at full precision.
    pub fn epoch(
        &mut self,
        order: &[usize],
        batch: usize,
        lr: f32,
        step0: u64,
    ) -> Result<u64, GpuError> {
        let held = MAX_BATCH.min(self.rows.max(1));
        if batch == 0 || batch.min(order.len()) > held || order.iter().any(|&i| i >= self.rows) {
            return Err(GpuError::Invalid(format!(
                "a batch of {batch} rows over {} (at most {held} a batch)",
                self.rows
            )));
        }
        let idx: Vec<u32> = order.iter().map(|&i| i as u32).collect();
        let order_buf = upload_u32(self.ctx, "row order", &idx)?;
        let mut enc = Encoder::new(self.ctx);
        let cols = self.base.cols;
        let bindings = [
            (1, &*self.features),
            (2, &*self.lower),
            (3, &*self.up),
            (4, &*self.levels),
            (5, &*self.target),
            (6, &*order_buf),
            (7, &*self.w),
            (8, &*self.res),
            (9, &*self.poly),
            (10, &*self.fetched),
        ];
        self.ctx.queue.write_buffer(&self.fetched, 0, &[0; 4]);
        // `update` reads every binding but the targets and the polynomial (and writes the
        // gradient out where it is rounded).
        let mut update: Vec<_> = bindings
            .iter()
            .filter(|(b, _)| *b != 5 && *b != 9)
            .copied()
            .collect();
        update.push((
            11,
            self.rounding
                .as_ref()
                .map_or(&*self.spare, |r| &*r.grad_out),
        ));
        for start in (0..order.len()).step_by(batch) {
            let len = batch.min(order.len() - start);
            let p = LinearParams {
                batch_start: start as u32,
                batch_len: len as u32,
                lr: lr.to_bits(),
                inv: (1.0 / len as f32).to_bits(),
                ..self.base
            };
            record(
                self.ctx, &mut enc, "linear", "residual", len as u32, p, &bindings,
            )?;
            record(self.ctx, &mut enc, "linear", "update", cols, p, &update)?;
            if let Some(r) = &self.rounding {
                let step = step0 + (start / batch) as u64;
                self.record_rounded_step(&mut enc, r, p, step)?;
            }
        }
        enc.submit();
        self.ctx.wait()?;
        Ok(read_u32(self.ctx, &self.fetched, 1)?[0] as u64)
    }

    /// Records the rest of a step whose gradient `update` wrote out: the gradient rounded
    /// through its format, the step, and the weights rounded through theirs.
    fn record_rounded_step(
        &self,
        enc: &mut Encoder,
        r: &StepRounding,
        p: LinearParams,
        step: u64,
    ) -> Result<(), GpuError> {
        let (ctx, d) = (self.ctx, self.base.cols as usize);
        let round = |enc: &mut Encoder, from, to, spec: &QuantSpec, which| {
            enc.clear_buffer(&r.stats, 0, None);
            let spec = step_spec(spec, r.seed, step, which);
            record_fake_quantize(ctx, enc, (from, to), d, &spec, &r.scales, &r.stats)
        };
        let gradient = match &r.grad {
            Some(spec) => {
                round(enc, &r.grad_out, &r.rounded_grad, spec, 0)?;
                &r.rounded_grad
            }
            None => &r.grad_out,
        };
        let apply = [(7, &*self.w), (11, &*r.next), (12, &**gradient)];
        record(ctx, enc, "linear", "apply", d as u32, p, &apply)?;
        match &r.model {
            Some(spec) => round(enc, &r.next, &self.w, spec, 1),
            None => {
                enc.copy_buffer_to_buffer(&r.next, 0, &self.w, 0, 4 * d as u64);
                Ok(())
            }
        }
    }

    /// The weights.
    pub fn weights(&self) -> Result<Vec<f32>, GpuError> {
        Ok(read_u32(self.ctx, &self.w, self.base.cols as usize)?
            .into_iter()
            .map(f32::from_bits)
            .collect())
    }
}
