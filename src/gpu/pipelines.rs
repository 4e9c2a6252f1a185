//! A cache of compiled compute pipelines, keyed by kernel, entry point, constants and the
//! operand formats compiled in.

use super::shader::assemble_specialised;
use super::specialise::Specialisation;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Kernel, entry point, constants, specialisation.
type Key = (String, String, String, Vec<u32>);

/// A pipeline (or the error that making it raised), or the slot it is being compiled into.
type Slot = Arc<OnceLock<Result<Arc<wgpu::ComputePipeline>, String>>>;

/// Compiled pipelines, built on first use; contexts forked from one device share them, and
/// a thread asking for a pipeline another thread is compiling waits for it.
#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<Key, Slot>>,
}

impl PipelineCache {
    /// The pipeline of `entry` in `kernel` with the given overridable constants and
    /// operand formats, compiled the first time it is asked for (a validation error in
    /// compiling it is returned then and on every later ask).
    pub fn get(
        &self,
        device: &wgpu::Device,
        (kernel, entry, constants): (&str, &str, &[(&str, f64)]),
        spec: &Specialisation,
    ) -> Result<Arc<wgpu::ComputePipeline>, String> {
        let key = (
            kernel.to_string(),
            entry.to_string(),
            format!("{constants:?}"),
            spec.key(),
        );
        let slot = self.map.lock().unwrap().entry(key).or_default().clone();
        slot.get_or_init(|| {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let t0 = std::time::Instant::now();
            let src = assemble_specialised(kernel, spec)
                .unwrap_or_else(|| panic!("no kernel named {kernel}"));
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            });
            if std::env::var_os("LOWP_TRACE_PIPELINES").is_some() {
                let secs = t0.elapsed().as_secs_f64();
                eprintln!("lowp: compiled {kernel}/{entry} {constants:?} {spec:?} in {secs:.3} s");
            }
            match pollster::block_on(scope.pop()) {
                Some(e) => Err(e.to_string()),
                None => Ok(Arc::new(p)),
            }
        })
        .clone()
    }
}
