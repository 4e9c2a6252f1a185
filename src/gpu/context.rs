//! The device context: adapter choice, device, queue, capabilities and pipeline cache.

use super::dispatch::WORKGROUP;
use super::error::GpuError;
use super::memory::{DeviceBuffer, DeviceTexture, Ledger, Purpose};
use super::param_ring::ParamRing;
use super::pipelines::PipelineCache;
use super::specialise::PANEL_TEXELS;
use super::tiles::Tiles;
use std::sync::{Arc, Mutex};

/// An open GPU device with everything the ops need.
pub struct GpuContext {
    /// The chosen adapter.
    pub adapter: wgpu::Adapter,
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter name, backend, type and driver.
    pub info: wgpu::AdapterInfo,
    /// WGSL language extensions the instance offers (e.g. packed 4x8 integer dot products).
    pub wgsl_features: wgpu::WgslLanguageFeatures,
    pub(crate) pipelines: Arc<PipelineCache>,
    /// Uniform chunks the encoders place kernel parameters in.
    pub(crate) params: Arc<ParamRing>,
    max_groups_x: u32,
    tiles: Tiles,
    f16_staging: bool,
    vector_loads: bool,
    gemm_panels: bool,
    thin_panels: bool,
    /// Views of 9 to 16 rows and at most 256 columns run as `thin`'s tall tiles (see
    /// [`GpuContext::narrow_tall`]).
    narrow_tall: bool,
    /// Weight gradients of 17 to 32 rows run as 16-row blocks of tall tiles (see
    /// [`GpuContext::tall_blocks`]).
    tall_blocks: bool,
    /// Weight gradients of at most 16 rows read their inputs through sliding windows (see
    /// [`GpuContext::windows`]).
    windows: bool,
    tap_sums: bool,
    segments: bool,
    /// Whether a training step counts each logged rounding in its log slot's own buffer
    /// (see [`GpuContext::slot_stats`]).
    slot_stats: bool,
    /// Submissions a trainer may have on their way (see [`GpuContext::in_flight`]).
    in_flight: usize,
    /// The most workgroups of a kernel that loops over its work items (None: one item an
    /// invocation; see [`GpuContext::item_groups`]).
    item_groups: Option<u32>,
    /// Lanes of a looping kernel's workgroup that walk a run of items together (see
    /// [`GpuContext::run_lanes`]).
    run_lanes: u32,
    specialise: bool,
    /// The device runs subgroup operations (read once, asked on every dispatch).
    subgroups: bool,
    /// Soft-float multiplies and adds through f64 (see [`GpuContext::f64_softfloat`]).
    f64_softfloat: bool,
    /// And with the device's own f32 <-> f64 conversions (see
    /// [`GpuContext::f64_subnormals`]).
    f64_subnormals: bool,
    /// The panel kernels broadcast A's values across subgroups of 8 (see
    /// [`GpuContext::broadcast_lanes`]).
    broadcast_lanes: bool,
    /// The panel kernels keep their panels in textures (see
    /// [`GpuContext::panel_textures`]).
    panel_textures: bool,
    panel_words: usize,
    scratch: Mutex<std::collections::HashMap<&'static str, DeviceBuffer>>,
    scratch_textures: Mutex<std::collections::HashMap<&'static str, DeviceTexture>>,
    uniforms: Mutex<std::collections::HashMap<Vec<u8>, DeviceBuffer>>,
    /// Every buffer made on this device, counted by purpose.
    pub ledger: Arc<Ledger>,
    /// Kernel timings, when `LOWP_PROFILE` is set and the device has timestamps.
    pub profiler: Option<super::profile::Profiler>,
    error: Arc<Mutex<Option<String>>>,
}

/// Distinct shared uniform buffers a context keeps (see [`GpuContext::shared_uniform`]).
const SHARED_UNIFORMS: usize = 1024;

/// The f32 words the GEMM panels of one block may take by default (4 MiB).
pub const PANEL_WORDS: usize = 1 << 20;

/// The kind of adapter in words.
fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU adapter",
        wgpu::DeviceType::Other => "other adapter",
    }
}

/// The Mesa release (major, minor) in a driver's description, as "Mesa 22.3.6 (LLVM 15.0.6)".
pub fn mesa_version(driver_info: &str) -> Option<(u32, u32)> {
    let rest = &driver_info[driver_info.find("Mesa ")? + 5..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Workgroups a looping kernel takes on a CPU adapter by default: eight per core (llvmpipe
/// runs a thread a core unless LP_NUM_THREADS says otherwise), enough for its threads to
/// share the work evenly.
fn default_item_groups() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    8 * cores as u32
}

/// A line for the capability report where the driver is known to run lowp's kernels slowly.
fn driver_note(driver: &str, driver_info: &str) -> String {
    match mesa_version(driver_info) {
        Some(v) if driver == "llvmpipe" && v < (23, 0) => format!(
            "\nnote: lavapipe {}.{} loads a storage value lane by lane through the stack; \
             training steps ran 1.5-2.6x faster on lavapipe 25.0 on the same host \
             (BENCHMARKS.md, session 26)",
            v.0, v.1
        ),
        _ => String::new(),
    }
}

/// The names of a set of backends, e.g. "vulkan, gl".
fn backend_names(b: wgpu::Backends) -> String {
    let names: Vec<&str> = [
        wgpu::Backend::Vulkan,
        wgpu::Backend::Metal,
        wgpu::Backend::Dx12,
        wgpu::Backend::Gl,
        wgpu::Backend::BrowserWebGpu,
    ]
    .into_iter()
    .filter(|k| b.contains(wgpu::Backends::from(*k)))
    .map(|k| k.to_str())
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// An on/off setting `name` whose value is `value`: "0" off, "1" on, unset or empty
/// `default`; anything else an error that names it.
fn on_off(name: &str, value: Option<&str>, default: bool) -> Result<bool, GpuError> {
    match value {
        Some("0") => Ok(false),
        Some("1") => Ok(true),
        None | Some("") => Ok(default),
        Some(other) => Err(GpuError::Invalid(format!(
            "{name}={other:?}: expected \"0\" (off), \"1\" (on) or unset"
        ))),
    }
}

/// The environment variables a context reads when it is made (and
/// [`GpuContext::with_settings`] may give instead).
const SETTINGS: &[&str] = &[
    "WGPU_ADAPTER_NAME",
    "LOWP_SOFTFLOAT",
    "LOWP_GEMM_F16",
    "LOWP_GEMM_VEC",
    "LOWP_GEMM_TILES",
    "LOWP_GEMM_KERNEL",
    "LOWP_BROADCAST",
    "LOWP_PANEL_TEXTURES",
    "LOWP_SPECIALISE",
    "LOWP_TAP_SUMS",
    "LOWP_SEGMENTS",
    "LOWP_SLOT_STATS",
    "LOWP_IN_FLIGHT",
    "LOWP_NARROW_TALL",
    "LOWP_TALL_BLOCKS",
    "LOWP_WINDOWS",
    "LOWP_ITEM_GROUPS",
    "LOWP_RUN_LANES",
    "LOWP_PROFILE",
];

impl GpuContext {
    /// Opens the adapter named by WGPU_ADAPTER_NAME, else the best one on WGPU_BACKEND's backends.
    pub fn new() -> Result<GpuContext, GpuError> {
        pollster::block_on(Self::open(&[]))
    }

    /// Like [`GpuContext::new`], each setting in `settings` (an environment variable's name
    /// and value, such as `("LOWP_SEGMENTS", "0")`) taken in place of the environment's: two
    /// contexts of one process set differently, to compare them step by step. A name the
    /// context does not read is an error, not ignored.
    pub fn with_settings(settings: &[(&str, &str)]) -> Result<GpuContext, GpuError> {
        pollster::block_on(Self::open(settings))
    }

    async fn open(settings: &[(&str, &str)]) -> Result<GpuContext, GpuError> {
        if let Some((name, _)) = settings.iter().find(|(n, _)| !SETTINGS.contains(n)) {
            return Err(GpuError::Invalid(format!(
                "{name} is not a setting of a GPU context (those are {})",
                SETTINGS.join(", ")
            )));
        }
        let var = |name: &str| match settings.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.to_string()),
            None => std::env::var(name),
        };
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = instance.enumerate_adapters(backends).await;
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter {
                backends: backend_names(backends),
            });
        }
        let names = || {
            adapters
                .iter()
                .map(|a| {
                    let i = a.get_info();
                    format!("{} ({})", i.name, i.backend.to_str())
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let chosen = match var("WGPU_ADAPTER_NAME") {
            Ok(wanted) if !wanted.is_empty() => {
                let w = wanted.to_lowercase();
                adapters
                    .iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&w))
                    .cloned()
                    .ok_or_else(|| GpuError::AdapterNotFound {
                        wanted,
                        available: names(),
                    })?
            }
            _ => adapters
                .iter()
                .min_by_key(|a| {
                    let i = a.get_info();
                    (type_rank(i.device_type), i.backend == wgpu::Backend::Gl)
                })
                .cloned()
                .expect("nonempty"),
        };
        let info = chosen.get_info();
        // Soft-float through f64 on a CPU adapter (LOWP_SOFTFLOAT=f64, f64-built or gate
        // chooses; f64-built: its conversions' subnormals built by hand, without the probe).
        let softfloat_setting = var("LOWP_SOFTFLOAT").ok();
        let f64_softfloat = match softfloat_setting.as_deref() {
            Some(f @ ("f64" | "f64-built"))
                if !chosen.features().contains(wgpu::Features::SHADER_F64) =>
            {
                return Err(GpuError::Invalid(format!(
                    "LOWP_SOFTFLOAT={f}: {} has no f64 in shaders",
                    info.name
                )));
            }
            Some("f64" | "f64-built") => true,
            Some("gate") => false,
            Some(other) if !other.is_empty() => {
                return Err(GpuError::Invalid(format!(
                    "LOWP_SOFTFLOAT={other:?}: expected \"f64\", \"f64-built\" or \"gate\""
                )));
            }
            _ => {
                info.device_type == wgpu::DeviceType::Cpu
                    && chosen.features().contains(wgpu::Features::SHADER_F64)
            }
        };
        let mut wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP;
        if f64_softfloat {
            wanted |= wgpu::Features::SHADER_F64;
        }
        let (device, queue) = chosen
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("lowp"),
                required_features: chosen.features() & wanted,
                required_limits: chosen.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        let error = Arc::new(Mutex::new(None));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let max_groups_x = device.limits().max_compute_workgroups_per_dimension;
        let wgsl_features = instance.wgsl_language_features();
        let f16_staging = device.features().contains(wgpu::Features::SHADER_F16)
            && var("LOWP_GEMM_F16").map_or(true, |v| v != "0");
        let vector_loads = var("LOWP_GEMM_VEC").map_or(true, |v| v != "0");
        let tiles_setting = var("LOWP_GEMM_TILES").ok();
        let tiles =
            Tiles::for_adapter(info.device_type, &device.limits(), tiles_setting.as_deref())?;
        let gemm_panels = match var("LOWP_GEMM_KERNEL").as_deref() {
            Ok("panel") => true,
            Ok("tiled") => false,
            Ok(other) if !other.is_empty() => {
                return Err(GpuError::Invalid(format!(
                    "LOWP_GEMM_KERNEL={other:?}: expected \"panel\" or \"tiled\""
                )));
            }
            _ => info.device_type == wgpu::DeviceType::Cpu,
        };
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        // A CPU adapter runs each load whose address may differ across lanes as a loop over
        // the lanes, loads the same for every lane included: the panel kernels load A's
        // values once per subgroup of 8 and broadcast them, where subgroups are always 8.
        let broadcast_lanes = match var("LOWP_BROADCAST").as_deref() {
            Ok("0") => false,
            Err(_) | Ok("") | Ok("1") => {
                subgroups
                    && info.device_type == wgpu::DeviceType::Cpu
                    && info.subgroup_min_size == 8
                    && info.subgroup_max_size == 8
            }
            Ok(other) => {
                return Err(GpuError::Invalid(format!(
                    "LOWP_BROADCAST={other:?}: expected \"0\" (off), \"1\" (on where the adapter's subgroups are 8 lanes) or unset"
                )));
            }
        };
        // A CPU adapter (llvmpipe) loads a storage value lane by lane through memory and
        // fetches a texel with vector loads: the panels go in textures there.
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        let switch = |name: &str| on_off(name, var(name).ok().as_deref(), cpu);
        let panel_textures = switch("LOWP_PANEL_TEXTURES")?;
        let specialise = var("LOWP_SPECIALISE").map_or(true, |v| v != "0");
        let tap_sums = var("LOWP_TAP_SUMS").map_or(true, |v| v != "0");
        let segments = var("LOWP_SEGMENTS").map_or(true, |v| v != "0");
        let slot_stats = var("LOWP_SLOT_STATS").map_or(true, |v| v != "0");
        // A CPU adapter runs a trainer's steps faster when the host waits for each (a LeNet-5
        // epoch on llvmpipe, 2 cores: about 20% faster than 2 or 3 on their way); a GPU
        // overlaps the host's recording of a step with the last one's kernels.
        let in_flight = match var("LOWP_IN_FLIGHT").as_deref() {
            Err(_) | Ok("") => {
                if cpu {
                    1
                } else {
                    3
                }
            }
            Ok(v) => match v.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => n,
                _ => {
                    return Err(GpuError::Invalid(format!(
                        "LOWP_IN_FLIGHT={v:?}: expected 1 to 64 (submissions a trainer may have on their way) or unset"
                    )));
                }
            },
        };
        // A CPU adapter stores a panel value lane by lane (llvmpipe 22.3: a scalar store a
        // 32-bit channel, each behind a stack round trip): narrow views (weight gradients)
        // gather B in the product rather than store it in a panel first.
        let narrow_tall = switch("LOWP_NARROW_TALL")?;
        // And so weight gradients of 17 to 32 rows gather B once per 16 rows rather than
        // store it in a panel once, and views of 17 to 64 rows that read input rows in
        // segments read them once per 16 rows.
        let tall_blocks = switch("LOWP_TALL_BLOCKS")?;
        // And so weight gradients of at most 16 rows (LeNet-5's, 6 x 25 and 16 x 150) read
        // their inputs in `thin` through sliding windows, a workgroup a K slice of 8 rows.
        let windows = switch("LOWP_WINDOWS")?;
        // On a CPU adapter each invocation costs its setup (llvmpipe 22.3: ~9 ns, as much as
        // two loads): the kernels that loop over their items run a few workgroups a core.
        let item_groups = match var("LOWP_ITEM_GROUPS").as_deref() {
            Err(_) | Ok("") => cpu.then(default_item_groups),
            Ok("0") => None,
            Ok(v) => match v.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(GpuError::Invalid(format!(
                        "LOWP_ITEM_GROUPS={v:?}: expected a number of workgroups (0: one item an invocation) or unset"
                    )));
                }
            },
        };
        // llvmpipe runs each group of SIMD lanes through a whole item loop before the next:
        // each group takes a run of its own, so that its loads stream.
        let simd = info.subgroup_max_size;
        let run_lanes = match var("LOWP_RUN_LANES").as_deref() {
            Err(_) | Ok("") if cpu && simd >= 1 && WORKGROUP.is_multiple_of(simd) => simd,
            Err(_) | Ok("") => WORKGROUP,
            Ok(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 && WORKGROUP.is_multiple_of(n) => n,
                _ => {
                    return Err(GpuError::Invalid(format!(
                        "LOWP_RUN_LANES={v:?}: expected a divisor of {WORKGROUP} (lanes that share a run of items) or unset"
                    )));
                }
            },
        };
        let profiler = match var("LOWP_PROFILE").as_deref() {
            Err(_) | Ok("") | Ok("0") => None,
            Ok("host") => Some(super::profile::Profiler::host_timed()),
            Ok(_) => super::profile::Profiler::new(&device),
        };
        let ledger = Arc::default();
        let mut ctx = GpuContext {
            params: ParamRing::new(&device, &ledger),
            adapter: chosen,
            device,
            queue,
            info,
            wgsl_features,
            pipelines: Arc::default(),
            max_groups_x,
            tiles,
            f16_staging,
            vector_loads,
            gemm_panels,
            thin_panels: true,
            narrow_tall,
            tall_blocks,
            windows,
            tap_sums,
            segments,
            slot_stats,
            in_flight,
            item_groups,
            run_lanes,
            specialise,
            subgroups,
            f64_softfloat,
            f64_subnormals: false,
            broadcast_lanes,
            panel_textures,
            panel_words: PANEL_WORDS,
            scratch: Mutex::default(),
            scratch_textures: Mutex::default(),
            uniforms: Mutex::default(),
            ledger,
            profiler,
            error,
        };
        // Through f64, the device's own conversions where they keep subnormals (lavapipe's
        // soft-float adds and multiplies 5-7x faster than with conversions built by hand);
        // the portable kernels (LOWP_SPECIALISE=0) never take it, so need no probe.
        let built = softfloat_setting.as_deref() == Some("f64-built");
        ctx.f64_subnormals =
            f64_softfloat && specialise && !built && super::f64_probe::keeps_subnormals(&ctx)?;
        Ok(ctx)
    }

    /// Another context on the same device with the same settings: its own buffers, ledger
    /// and profiler, sharing the compiled pipelines (and the device's error slot).
    pub fn fork(&self) -> GpuContext {
        let ledger = Arc::default();
        GpuContext {
            params: ParamRing::new(&self.device, &ledger),
            adapter: self.adapter.clone(),
            device: self.device.clone(),
            queue: self.queue.clone(),
            info: self.info.clone(),
            wgsl_features: self.wgsl_features.clone(),
            pipelines: self.pipelines.clone(),
            max_groups_x: self.max_groups_x,
            tiles: self.tiles,
            f16_staging: self.f16_staging,
            vector_loads: self.vector_loads,
            gemm_panels: self.gemm_panels,
            thin_panels: self.thin_panels,
            narrow_tall: self.narrow_tall,
            tall_blocks: self.tall_blocks,
            windows: self.windows,
            tap_sums: self.tap_sums,
            segments: self.segments,
            slot_stats: self.slot_stats,
            in_flight: self.in_flight,
            item_groups: self.item_groups,
            run_lanes: self.run_lanes,
            specialise: self.specialise,
            subgroups: self.subgroups,
            broadcast_lanes: self.broadcast_lanes,
            f64_softfloat: self.f64_softfloat,
            f64_subnormals: self.f64_subnormals,
            panel_textures: self.panel_textures,
            panel_words: self.panel_words,
            scratch: Mutex::default(),
            scratch_textures: Mutex::default(),
            uniforms: Mutex::default(),
            ledger,
            profiler: self.profiler.as_ref().and_then(|p| p.fork(&self.device)),
            error: self.error.clone(),
        }
    }

    /// Runs f32-accumulating GEMMs with the panel kernel (or the tiled one).
    pub fn with_gemm_panels(mut self, on: bool) -> GpuContext {
        self.gemm_panels = on;
        self
    }

    /// Whether f32-accumulating GEMMs run as decoded panels and a register-tiled product
    /// (the default on CPU adapters) rather than the workgroup-staged tiled kernel.
    pub fn gemm_panels(&self) -> bool {
        self.gemm_panels
    }

    /// Lets the panel kernel gather B in its product for views of at most 8 rows (the
    /// default), or packs B's panel for every view.
    pub fn with_thin_panels(mut self, on: bool) -> GpuContext {
        self.thin_panels = on;
        self
    }

    /// Lets the specialised panel kernels broadcast A's values across subgroups where the
    /// adapter allows it (the default there), or loads them in every lane.
    pub fn with_broadcast_lanes(mut self, on: bool) -> GpuContext {
        self.broadcast_lanes = on && self.broadcast_lanes;
        self
    }

    /// Keeps the panel kernels' panels in textures (`on`, the default on a CPU adapter) or
    /// in storage buffers.
    pub fn with_panel_textures(mut self, on: bool) -> GpuContext {
        self.panel_textures = on;
        self
    }

    /// Whether the panel kernels keep their panels in rgba32float textures (the default on
    /// a CPU adapter, where a texel is fetched with vector loads and a storage value lane
    /// by lane; `LOWP_PANEL_TEXTURES=0` or `1` chooses) rather than storage buffers.
    pub fn panel_textures(&self) -> bool {
        self.panel_textures
    }

    /// Whether the panel kernel gathers B in its product for views of at most 8 rows.
    pub fn thin_panels(&self) -> bool {
        self.thin_panels
    }

    /// Runs views of 9 to 16 rows and at most 256 columns as tall tiles gathering B (`on`,
    /// the default on a CPU adapter), or packs their B panel.
    pub fn with_narrow_tall(mut self, on: bool) -> GpuContext {
        self.narrow_tall = on;
        self
    }

    /// Whether views of 9 to 16 rows and at most 256 columns (a weight gradient's, say) run
    /// as `thin`'s tall tiles, B gathered in the product, one invocation a column group of
    /// four (`LOWP_NARROW_TALL=0` or `1` chooses; on by default on a CPU adapter, which
    /// stores a B panel's values lane by lane), rather than packing B's panel for `main`.
    pub fn narrow_tall(&self) -> bool {
        self.narrow_tall
    }

    /// Runs weight gradients of 17 to 32 rows as 16-row blocks of tall tiles gathering B
    /// (`on`, the default on a CPU adapter), or packs their B panel.
    pub fn with_tall_blocks(mut self, on: bool) -> GpuContext {
        self.tall_blocks = on;
        self
    }

    /// Whether weight gradients of 17 to 32 rows, and views of 17 to 64 rows that read
    /// input rows in segments, run as 16-row blocks of `thin`'s tall tiles, B read in the
    /// product once per block (`LOWP_TALL_BLOCKS=0` or `1` chooses; on by default on a CPU
    /// adapter), rather than packing B's panel for `main`.
    pub fn tall_blocks(&self) -> bool {
        self.tall_blocks
    }

    /// Runs weight gradients of at most 16 rows through sliding windows of their input words
    /// (`on`, the default on a CPU adapter), or packs their B panel.
    pub fn with_windows(mut self, on: bool) -> GpuContext {
        self.windows = on;
        self
    }

    /// Whether weight gradients of at most 16 rows (stride 1 along the width, kernel rows of
    /// at most 8 taps) run as `thin`, each invocation a kernel row's taps, reading one input
    /// word a product through a sliding window (`LOWP_WINDOWS=0` or `1` chooses; on by
    /// default on a CPU adapter), rather than packing B's panel for `main`.
    pub fn windows(&self) -> bool {
        self.windows
    }

    /// Lets a convolution's f32-accumulating backward data pass run as per-tap products
    /// and their sums where that is fewer values than its im2col view (the default), or
    /// runs every such pass as its im2col view.
    pub fn with_tap_sums(mut self, on: bool) -> GpuContext {
        self.tap_sums = on;
        self
    }

    /// Whether a backward data pass may run as per-tap products and their sums
    /// (`LOWP_TAP_SUMS` not `0`).
    pub fn tap_sums(&self) -> bool {
        self.tap_sums
    }

    /// Lets the panel kernel's `thin` read a stride-1 forward convolution's B values from
    /// input rows, each word once per invocation (the default), or gathers every value.
    pub fn with_segments(mut self, on: bool) -> GpuContext {
        self.segments = on;
        self
    }

    /// Whether a training step counts the statistics of each rounding that is not a
    /// gradient's in its log slot's own buffer, copied into the log at the end of the step,
    /// rather than in one shared buffer cleared before and copied after each
    /// (`LOWP_SLOT_STATS` not `0`).
    pub fn slot_stats(&self) -> bool {
        self.slot_stats
    }

    /// Training steps a trainer may have submitted and not yet finished (`LOWP_IN_FLIGHT`;
    /// by default 1 on a CPU adapter, where waiting for each step runs faster, else 3).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether `thin` may read B from input rows (`LOWP_SEGMENTS` not `0`).
    pub fn segments(&self) -> bool {
        self.segments
    }

    /// Caps the workgroups of a kernel that loops over its work items at `groups` (each
    /// invocation then takes every so many items), or (None) gives it one item an invocation.
    pub fn with_item_groups(mut self, groups: Option<u32>) -> GpuContext {
        self.item_groups = groups.map(|g| g.max(1));
        self
    }

    /// The most workgroups a dispatch of a kernel that loops over its items takes (None:
    /// as many as its items need): on a CPU adapter, a few per core (`LOWP_ITEM_GROUPS`).
    pub fn item_groups(&self) -> Option<u32> {
        self.item_groups
    }

    /// Sets how many lanes of a looping kernel's workgroup walk a run of consecutive items
    /// together (a divisor of 256; 256: the whole workgroup, lanes side by side).
    pub fn with_run_lanes(mut self, lanes: u32) -> GpuContext {
        assert!(
            lanes >= 1 && WORKGROUP.is_multiple_of(lanes),
            "run lanes must divide {WORKGROUP}, got {lanes}"
        );
        self.run_lanes = lanes;
        self
    }

    /// Lanes of a looping kernel's workgroup that walk a run of items together: the
    /// subgroup (SIMD) width on a CPU adapter, the whole workgroup elsewhere
    /// (`LOWP_RUN_LANES`).
    pub fn run_lanes(&self) -> u32 {
        self.run_lanes
    }

    /// Compiles kernels for their operands' formats, or runs the generic kernels that read
    /// every format from their parameters.
    pub fn with_specialise(mut self, on: bool) -> GpuContext {
        self.specialise = on;
        self
    }

    /// Whether kernels are compiled for their operands' formats (`LOWP_SPECIALISE` not
    /// `0`): one pipeline per combination of formats, each decode and rounding folded to
    /// its format's arithmetic.
    pub fn specialise(&self) -> bool {
        self.specialise
    }

    /// Whether the device runs subgroup operations (kernels use them to skip soft-float's
    /// integer path a whole subgroup at a time).
    pub fn has_subgroups(&self) -> bool {
        self.subgroups
    }

    /// Whether the specialised panel kernels load A's values once per subgroup and broadcast
    /// them (a CPU adapter whose subgroups are always 8 lanes; `LOWP_BROADCAST=0` turns it
    /// off).
    pub fn broadcast_lanes(&self) -> bool {
        self.broadcast_lanes
    }

    /// Whether specialised kernels compute soft-float's multiplies and adds through f64,
    /// without a branch (the default on a CPU adapter with f64, which runs both sides of
    /// every branch; `LOWP_SOFTFLOAT=f64` or `gate` chooses), rather than taking the
    /// hardware's f32 result where it is exact and an integer path elsewhere. Both give the
    /// same bits. Portable kernels (`LOWP_SPECIALISE=0`) and the entries
    /// [`takes_f64_softfloat`](super::shader::takes_f64_softfloat) refuses keep the latter.
    pub fn f64_softfloat(&self) -> bool {
        self.f64_softfloat
    }

    /// Whether soft-float through f64 takes the device's own f32 <-> f64 conversions, which
    /// a probe when the context opened found keep f32 subnormals (src/gpu/f64_probe.rs;
    /// `LOWP_SOFTFLOAT=f64-built` builds them by hand instead).
    pub fn f64_subnormals(&self) -> bool {
        self.f64_subnormals
    }

    /// Sets the f32 words the panel kernel's two panels may take together (at least 4096).
    pub fn with_panel_words(mut self, words: usize) -> GpuContext {
        self.panel_words = words.max(4096);
        self
    }

    /// The f32 words the panel kernel's two panels may take together.
    pub fn panel_words(&self) -> usize {
        self.panel_words
    }

    /// Caps the workgroups of a dispatch's x dimension (to exercise the 2-D path in tests).
    pub fn with_max_groups_x(mut self, n: u32) -> GpuContext {
        self.max_groups_x = n.clamp(1, self.device.limits().max_compute_workgroups_per_dimension);
        self
    }

    /// Uses other GEMM tile sizes (to test every tiling, or tune one adapter).
    pub fn with_tiles(mut self, tiles: Tiles) -> Result<GpuContext, GpuError> {
        tiles.validate(&self.device.limits())?;
        self.tiles = tiles;
        Ok(self)
    }

    /// Turns the f16 staging of f16-exact GEMM operands on or off (on needs SHADER_F16).
    pub fn with_f16_staging(mut self, on: bool) -> GpuContext {
        self.f16_staging = on && self.device.features().contains(wgpu::Features::SHADER_F16);
        self
    }

    /// Whether tiled GEMMs stage f16-exact operands as f16 (SHADER_F16 present, and
    /// `LOWP_GEMM_F16` not `0`).
    pub fn f16_staging(&self) -> bool {
        self.f16_staging
    }

    /// Turns the vector (16-byte) loads of tiled GEMMs' operands on or off.
    pub fn with_vector_loads(mut self, on: bool) -> GpuContext {
        self.vector_loads = on;
        self
    }

    /// Whether tiled GEMMs read operands in 16-byte groups where their layout allows
    /// (`LOWP_GEMM_VEC` not `0`).
    pub fn vector_loads(&self) -> bool {
        self.vector_loads
    }

    /// A storage buffer of at least `words` words for temporaries of `purpose` (column-sum
    /// chunks, split-K partial sums, ...): one buffer per purpose, reused by every later
    /// call and replaced by a larger one when a call needs more, so a purpose holds as much
    /// as its largest use. Its contents are undefined: a user writes what it reads within
    /// the commands it records, which the queue runs in order (commands already recorded
    /// keep a replaced buffer alive until they have run).
    pub fn scratch(&self, purpose: &'static str, words: usize) -> Result<DeviceBuffer, GpuError> {
        let mut pool = self.scratch.lock().unwrap();
        if let Some(b) = pool.get(purpose)
            && b.size() >= 4 * words.max(1) as u64
        {
            return Ok(b.clone());
        }
        let b = super::buffers::zeroed_as(self, Purpose::Temporary, purpose, words)?;
        pool.insert(purpose, b.clone());
        Ok(b)
    }

    /// An rgba32float texture of at least `texels` texels, [`PANEL_TEXELS`] a row, for
    /// temporaries of `purpose`, written by storage-texture stores and read by texel loads:
    /// pooled like [`GpuContext::scratch`] (one per purpose, replaced by a taller one when
    /// a call needs more). None where the texture would be taller than the device allows.
    pub fn scratch_texture(
        &self,
        purpose: &'static str,
        texels: usize,
    ) -> Result<Option<DeviceTexture>, GpuError> {
        let rows = texels.max(1).div_ceil(PANEL_TEXELS as usize);
        if rows > self.device.limits().max_texture_dimension_2d as usize {
            return Ok(None);
        }
        let mut pool = self.scratch_textures.lock().unwrap();
        if let Some(t) = pool.get(purpose)
            && t.size().1 as usize >= rows
        {
            return Ok(Some(t.clone()));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let texture = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(purpose),
            size: wgpu::Extent3d {
                width: PANEL_TEXELS,
                height: rows as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(format!("{purpose}: {e}")));
        }
        let bytes = 16 * PANEL_TEXELS as u64 * rows as u64;
        let t = DeviceTexture::track(texture, bytes, Purpose::Temporary, &self.ledger);
        pool.insert(purpose, t.clone());
        Ok(Some(t))
    }

    /// The rows of the texture the pool holds for `purpose` (see
    /// [`GpuContext::scratch_texture`]), if it holds one.
    pub fn scratch_texture_rows(&self, purpose: &'static str) -> Option<u32> {
        let pool = self.scratch_textures.lock().unwrap();
        pool.get(purpose).map(|t| t.size().1)
    }

    /// A uniform buffer holding `value`, shared by every call with the same bytes (so that
    /// the bind groups of a step that uses it again can be reused); at most
    /// `SHARED_UNIFORMS` are kept.
    pub fn shared_uniform<T: bytemuck::Pod>(&self, value: &T) -> DeviceBuffer {
        let bytes = bytemuck::bytes_of(value);
        let mut map = self.uniforms.lock().unwrap();
        if let Some(b) = map.get(bytes) {
            return b.clone();
        }
        if map.len() >= SHARED_UNIFORMS {
            map.clear();
        }
        let b = super::buffers::uniform(self, value);
        map.insert(bytes.to_vec(), b.clone());
        b
    }

    /// The bytes of the buffers alive on this device, by purpose, as lowp counts them.
    pub fn memory(&self) -> super::memory::MemoryReport {
        self.ledger.report()
    }

    /// The tile sizes of the tiled GEMM kernels.
    pub fn tiles(&self) -> Tiles {
        self.tiles
    }

    /// Largest number of workgroups a dispatch puts along x.
    pub fn max_groups_x(&self) -> u32 {
        self.max_groups_x
    }

    /// Whether the device can time passes with timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Returns (and clears) the first error wgpu reported since the last check.
    pub fn check(&self) -> Result<(), GpuError> {
        match self.error.lock().unwrap().take() {
            Some(e) => Err(GpuError::Device(e)),
            None => Ok(()),
        }
    }

    /// Waits until the queue is idle.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.check()
    }

    /// A human-readable capability report.
    pub fn report(&self) -> String {
        let f = self.device.features();
        let l = self.device.limits();
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "adapter: {} ({}, {})\ndriver: {} {}{}\nshader-f16: {}\nshader-f64: {}\nsubgroups: {}\ndot4I8Packed (WGSL): {}\ncooperative matrix: {}\ntimestamp queries: {}\nmax storage buffer binding: {} MiB\nmax buffer: {} MiB\nmax workgroups per dimension: {}\nGEMM with f32 sums: {}\nGEMM tiles: {}\nkernels: {}\nper-item kernels: {}; runs of items {} lanes wide (LOWP_RUN_LANES)\ntraining steps on their way: at most {} (LOWP_IN_FLIGHT)",
            self.info.name,
            self.info.backend.to_str(),
            device_type_name(self.info.device_type),
            self.info.driver,
            self.info.driver_info,
            driver_note(&self.info.driver, &self.info.driver_info),
            yes(f.contains(wgpu::Features::SHADER_F16)),
            yes(self.adapter.features().contains(wgpu::Features::SHADER_F64)),
            match (
                f.contains(wgpu::Features::SUBGROUP),
                self.info.subgroup_min_size,
                self.info.subgroup_max_size
            ) {
                (false, _, _) => "no".to_string(),
                (true, lo, hi) if lo == hi => format!("yes, {lo} lanes"),
                (true, lo, hi) => format!("yes, {lo} to {hi} lanes"),
            },
            yes(self
                .wgsl_features
                .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct)),
            yes(self
                .adapter
                .features()
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)),
            yes(f.contains(wgpu::Features::TIMESTAMP_QUERY)),
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroups_per_dimension,
            if self.gemm_panels {
                format!(
                    "decoded panels, 8 x 8 per invocation ({} MiB of panels at most, in {}){}{}{}{}{}",
                    (self.panel_words * 4) >> 20,
                    if self.panel_textures {
                        "textures; LOWP_PANEL_TEXTURES=0: storage buffers"
                    } else {
                        "storage buffers"
                    },
                    if self.broadcast_lanes && self.specialise {
                        ", A's values broadcast across subgroups of 8 (LOWP_BROADCAST=0: off)"
                    } else {
                        ""
                    },
                    if self.segments && self.thin_panels {
                        ", stride-1 convolutions' inputs read in row segments (LOWP_SEGMENTS=0: gathered)"
                    } else {
                        ""
                    },
                    if self.narrow_tall && self.thin_panels {
                        ", views of 9 to 16 rows and at most 256 columns gather B too (LOWP_NARROW_TALL=0: B packed)"
                    } else {
                        ""
                    },
                    if self.tall_blocks && self.thin_panels {
                        ", weight gradients of 17 to 32 rows and segment views of 17 to 64 in 16-row blocks (LOWP_TALL_BLOCKS=0: B packed)"
                    } else {
                        ""
                    },
                    if self.windows && self.thin_panels {
                        ", weight gradients of at most 16 rows read their inputs through sliding windows (LOWP_WINDOWS=0: B packed)"
                    } else {
                        ""
                    }
                )
            } else {
                "tiled, operands staged in workgroup memory".to_string()
            },
            self.tiles,
            match (self.specialise, self.f64_softfloat) {
                (true, true) if self.f64_subnormals =>
                    "compiled for their operands' formats, soft-float through f64 and the device's conversions, which keep subnormals (LOWP_SPECIALISE=0: portable)",
                (true, true) =>
                    "compiled for their operands' formats, soft-float through f64, subnormals built by hand (LOWP_SPECIALISE=0: portable)",
                (true, false) =>
                    "compiled for their operands' formats (LOWP_SPECIALISE=0: portable)",
                _ => "portable, every format read from the parameters (LOWP_SPECIALISE=0)",
            },
            match self.item_groups {
                Some(g) => format!(
                    "at most {g} workgroups, each invocation many items (LOWP_ITEM_GROUPS=0: one item an invocation)"
                ),
                None => "one item an invocation".to_string(),
            },
            self.run_lanes,
            self.in_flight,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{driver_note, mesa_version};

    #[test]
    fn mesa_versions_are_read_from_the_driver_description() {
        assert_eq!(mesa_version("Mesa 22.3.6 (LLVM 15.0.6)"), Some((22, 3)));
        assert_eq!(
            mesa_version("Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)"),
            Some((25, 0))
        );
        assert_eq!(mesa_version("565.57.01"), None);
        assert_eq!(mesa_version("Mesa"), None);
        assert_eq!(mesa_version("Mesa 24"), None);
        assert!(driver_note("llvmpipe", "Mesa 22.3.6 (LLVM 15.0.6)").contains("lavapipe 22.3"));
        assert_eq!(driver_note("llvmpipe", "Mesa 25.0.7 (LLVM 15.0.6)"), "");
        assert_eq!(driver_note("NVIDIA", "565.57.01"), "");
    }
}
