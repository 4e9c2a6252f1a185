//! Time per kernel from timestamp queries around each compute pass (`LOWP_PROFILE=1`), or
//! from the wall clock around each dispatch run alone (`LOWP_PROFILE=host`: on lavapipe the
//! timestamps stop adding up once some kernels read textures).

use super::buffers::{map_read, staging};
use super::context::GpuContext;
use super::encoder::Encoder;
use super::error::GpuError;
use std::collections::HashMap;
use std::sync::Mutex;

/// Timestamp pairs one profile holds before it must be read.
const CAPACITY: u32 = 2048;

/// Kernel time by name, summed over the passes recorded since the last [`Profiler::take`].
pub struct Profiler {
    /// The timestamp queries (None: host-timed).
    queries: Option<wgpu::QuerySet>,
    labels: Mutex<Vec<String>>,
    /// Host-timed dispatches: label and seconds.
    host: Mutex<Vec<(String, f64)>>,
}

/// One kernel's line of a profile.
#[derive(Clone, Debug)]
pub struct ProfileLine {
    /// Kernel and entry point.
    pub kernel: String,
    /// Dispatches recorded.
    pub dispatches: usize,
    /// GPU time they took, in seconds.
    pub seconds: f64,
}

impl Profiler {
    /// A profiler if the device has timestamp queries inside encoders.
    pub fn new(device: &wgpu::Device) -> Option<Profiler> {
        let needed =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        if !device.features().contains(needed) {
            return None;
        }
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * CAPACITY,
        });
        Some(Profiler {
            queries: Some(queries),
            labels: Mutex::default(),
            host: Mutex::default(),
        })
    }

    /// A profiler that times each dispatch on the host: the commands before it run to the
    /// end, then it alone, submitted and waited for (its time includes a submission and a
    /// wait, tens of microseconds on lavapipe).
    pub fn host_timed() -> Profiler {
        Profiler {
            queries: None,
            labels: Mutex::default(),
            host: Mutex::default(),
        }
    }

    /// Another profiler of the same kind on `device`.
    pub fn fork(&self, device: &wgpu::Device) -> Option<Profiler> {
        match self.queries {
            Some(_) => Profiler::new(device),
            None => Some(Profiler::host_timed()),
        }
    }

    /// Whether each dispatch is timed on the host.
    pub fn is_host_timed(&self) -> bool {
        self.queries.is_none()
    }

    /// Adds a host-timed dispatch of `label`.
    pub fn add(&self, label: String, seconds: f64) {
        self.host.lock().unwrap().push((label, seconds));
    }

    /// The timestamp writes for a pass running `label`, or None once the profile is full
    /// (the pass then goes untimed).
    pub fn pass(&self, label: String) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let queries = self.queries.as_ref()?;
        let mut labels = self.labels.lock().unwrap();
        let i = labels.len() as u32;
        if i >= CAPACITY {
            return None;
        }
        labels.push(label);
        Some(wgpu::ComputePassTimestampWrites {
            query_set: queries,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        })
    }

    /// Waits for the work submitted so far, reads its timestamps and starts a new profile;
    /// lines by total time, longest first.
    pub fn take(&self, ctx: &GpuContext) -> Result<Vec<ProfileLine>, GpuError> {
        let Some(queries) = &self.queries else {
            let timed = std::mem::take(&mut *self.host.lock().unwrap());
            return Ok(lines(timed));
        };
        let labels = std::mem::take(&mut *self.labels.lock().unwrap());
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let n = 2 * labels.len() as u32;
        let bytes = 8 * n as u64;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let st = staging(ctx, bytes);
        let mut enc = Encoder::new(ctx);
        enc.resolve_query_set(queries, 0..n, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &st, 0, bytes);
        enc.submit();
        let w = map_read(ctx, &st)?;
        let period = ctx.queue.get_timestamp_period() as f64;
        let tick = |i: usize| (w[2 * i + 1] as u64) << 32 | w[2 * i] as u64;
        let timed = labels.into_iter().enumerate().map(|(i, label)| {
            let ns = tick(2 * i + 1).saturating_sub(tick(2 * i)) as f64 * period;
            (label, ns * 1e-9)
        });
        Ok(lines(timed.collect()))
    }
}

/// Timed dispatches summed by label, longest total first.
fn lines(timed: Vec<(String, f64)>) -> Vec<ProfileLine> {
    let mut by: HashMap<String, (usize, f64)> = HashMap::new();
    for (label, seconds) in timed {
        let e = by.entry(label).or_default();
        e.0 += 1;
        e.1 += seconds;
    }
    let mut lines: Vec<ProfileLine> = by
        .into_iter()
        .map(|(kernel, (dispatches, seconds))| ProfileLine {
            kernel,
            dispatches,
            seconds,
        })
        .collect();
    lines.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    lines
}

/// A profile as a table: kernel, dispatches, milliseconds and share of the total.
pub fn format_profile(lines: &[ProfileLine]) -> String {
    let total: f64 = lines.iter().map(|l| l.seconds).sum();
    let mut s = format!(
        "{:<40} {:>10} {:>10} {:>7}\n",
        "kernel", "dispatches", "ms", "share"
    );
    for l in lines {
        s += &format!(
            "{:<40} {:>10} {:>10.2} {:>6.1}%\n",
            l.kernel,
            l.dispatches,
            l.seconds * 1e3,
            100.0 * l.seconds / total.max(1e-30)
        );
    }
    s += &format!("{:<40} {:>10} {:>10.2}\n", "total", "", total * 1e3);
    s
}
