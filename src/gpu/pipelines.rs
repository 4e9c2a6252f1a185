//! A cache of compiled compute pipelines, keyed by kernel, entry point, constants and the
//! operand formats compiled in.

use super::shader::assemble_specialised;
use super::specialise::Specialisation;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Kernel, entry point, constants, specialisation.
type Key = (String, String, String, Vec<u32>);

/// Compiled pipelines, built on first use.
#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<Key, Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    /// The pipeline of `entry` in `kernel` with the given overridable constants and
    /// operand formats, compiled the first time it is asked for.
    pub fn get(
        &self,
        device: &wgpu::Device,
        (kernel, entry, constants): (&str, &str, &[(&str, f64)]),
        spec: &Specialisation,
    ) -> Arc<wgpu::ComputePipeline> {
        let key = (
            kernel.to_string(),
            entry.to_string(),
            format!("{constants:?}"),
            spec.key(),
        );
        if let Some(p) = self.map.lock().unwrap().get(&key) {
            return p.clone();
        }
        let src = assemble_specialised(kernel, spec)
            .unwrap_or_else(|| panic!("no kernel named {kernel}"));
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let p = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            }),
        );
        self.map.lock().unwrap().insert(key, p.clone());
        p
    }
}
