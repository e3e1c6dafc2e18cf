//! Running a model file with tract, on the host and on the device alike.

pub mod depthwise;

use crate::modelfile::ModelFile;
use crate::preprocess::Tensor;
use crate::taxonomy::NUM_CLASSES;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_core::transform::ModelTransform;

/// Name of the network input in every dermo model file (the names are the writer's).
pub const INPUT_NAME: &str = crate::onnx::INPUT;
/// Name of the logits output.
pub const LOGITS_NAME: &str = crate::onnx::LOGITS;
/// Name of the optional last-feature-map output (`[N, C, h, w]`).
pub const FEATURES_NAME: &str = crate::onnx::FEATURES;
/// Name of the optional class-activation maps output (`[N, classes, h, w]`).
pub const CLASS_MAPS_NAME: &str = crate::onnx::CLASS_MAPS;
/// Name of the optional pooled block output the OOD rule reads (`[N, C]`).
pub const OOD_FEATURES_NAME: &str = crate::onnx::OOD_FEATURES;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("tract cannot load model {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("input tensor has shape {found:?}, the model expects [N, 3, {size}, {size}]")]
    InputShape { found: [usize; 4], size: usize },
    #[error("input tensor has {found} values, its shape {shape:?} needs {expected}")]
    InputLength {
        shape: [usize; 4],
        found: usize,
        expected: usize,
    },
    #[error("model {path}: its OOD rule reads block {block}, but the file has no {OOD_FEATURES_NAME:?} output (re-export it with `dermo export`)")]
    MissingOodOutput { path: PathBuf, block: usize },
    #[error("tract failed to run the model: {0}")]
    Run(String),
    #[error("model output {name:?} has {found} values, expected {expected}")]
    OutputShape {
        name: &'static str,
        found: usize,
        expected: usize,
    },
}

/// What the network says about a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// `N × NUM_CLASSES` logits, row-major.
    pub logits: Vec<f32>,
    /// `N × C` global-average-pooled last feature map, when the file has a `features` output.
    pub features: Option<Vec<f32>>,
    /// `N × C'` pooled block output, when the file has an `ood_features` output.
    pub ood_features: Option<Vec<f32>>,
    /// The class-activation maps, when the file has a `class_maps` output.
    pub class_maps: Option<ClassMaps>,
}

/// Class-activation maps of a batch: for image `i` and class `k`, the classifier's logit at each
/// cell of the last feature map (`side × side`, row-major, top row first); the map's mean is the
/// logit. What they mean and how to read them: [`crate::maps`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMaps {
    pub side: usize,
    /// `N × NUM_CLASSES × side × side`.
    pub values: Vec<f32>,
}

impl ClassMaps {
    /// Class `k`'s map for image `i`.
    pub fn of(&self, i: usize, k: usize) -> Option<&[f32]> {
        let cells = self.side * self.side;
        let start = (i * NUM_CLASSES + k) * cells;
        self.values.get(start..start + cells)
    }
}

impl Output {
    /// The logits of image `i` of the batch.
    pub fn logits_of(&self, i: usize) -> &[f32] {
        &self.logits[i * NUM_CLASSES..(i + 1) * NUM_CLASSES]
    }

    /// The pooled features of image `i` of the batch.
    pub fn features_of(&self, i: usize) -> Option<&[f32]> {
        self.row(self.features.as_deref()?, i)
    }

    /// What the OOD rule reads for image `i`: the `ood_features` row when the file has that
    /// output, otherwise the pooled last feature map.
    pub fn ood_features_of(&self, i: usize) -> Option<&[f32]> {
        match self.ood_features.as_deref() {
            Some(f) => self.row(f, i),
            None => self.features_of(i),
        }
    }

    fn row<'a>(&self, values: &'a [f32], i: usize) -> Option<&'a [f32]> {
        let n = self.logits.len() / NUM_CLASSES;
        let c = values.len() / n.max(1);
        values.get(i * c..(i + 1) * c)
    }
}

/// How a [`Runtime`] builds and runs its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Threads that share the work of one frame's operators; 1 runs them on the calling thread.
    pub threads: usize,
    /// Which depthwise convolution the plan runs.
    pub depthwise: DepthwiseKernel,
    /// What the plan computes in. Input and outputs stay f32 either way.
    pub arithmetic: Arithmetic,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            threads: 1,
            depthwise: DepthwiseKernel::Dermo,
            arithmetic: Arithmetic::F32,
        }
    }
}

/// The floating-point type a plan's operators compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    /// f32 everywhere: the numbers of the export's parity checks.
    F32,
    /// Weights and activations in f16 (tract's `f32_to_f16` translation, after decluttering), but
    /// for the depthwise convolutions: tract 0.23.9 has no f16 depthwise kernel (its scalar
    /// fallback cost more than f16 saved), so they stay f32, with a conversion on each side, and
    /// dermo's kernel runs them. Only worth trying on a core with native f16 arithmetic (aarch64
    /// FEAT_FP16, e.g. a Raspberry Pi 5's Cortex-A76; a Pi 4's A72 has none), where tract runs its
    /// f16 kernels; elsewhere tract emulates f16 and is many times slower. Measured: not faster
    /// on the Pi 5's CPU model (bench/results.md, section `arm`).
    F16,
}

impl Arithmetic {
    /// `f32` or `f16`, as configs and benchmarks write it.
    pub fn name(self) -> &'static str {
        match self {
            Arithmetic::F32 => "f32",
            Arithmetic::F16 => "f16",
        }
    }

    /// Whether this core computes f16 natively: aarch64 with FEAT_FP16 (the kernel's `fphp` and
    /// `asimdhp` capabilities). Always false elsewhere.
    pub fn native_f16() -> bool {
        #[cfg(target_arch = "aarch64")]
        {
            std::arch::is_aarch64_feature_detected!("fp16")
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            false
        }
    }
}

/// The depthwise convolution a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthwiseKernel {
    /// [`depthwise::DepthwiseConv`], in place of tract's own wherever it applies.
    Dermo,
    /// tract's own, for comparison (`dermo-scope bench --tract-depthwise`).
    Tract,
}

impl DepthwiseKernel {
    /// `dermo` or `tract`, as the benchmarks print it.
    pub fn name(self) -> &'static str {
        match self {
            DepthwiseKernel::Dermo => "dermo",
            DepthwiseKernel::Tract => "tract",
        }
    }
}

/// An optimized tract plan for `[1, 3, S, S]` input.
#[derive(Debug)]
pub struct Runtime {
    plan: TypedRunnableModel,
    /// What the plan computes in: with f16 the input is converted on the way in and every output
    /// on the way out.
    arithmetic: Arithmetic,
    /// The thread pool the plan's operators share, when there is more than one thread.
    pool: Option<Arc<rayon::ThreadPool>>,
    size: usize,
    has_features: bool,
    has_class_maps: bool,
    has_ood_features: bool,
}

type TypedRunnableModel = Arc<tract_onnx::tract_core::model::TypedRunnableModel>;

/// A model file as tract's typed graph, before decluttering: for `[1, 3, S, S]` input, with the
/// outputs the file has. [`Runtime`] optimizes it; [`crate::profile`] also reads its ops.
pub(crate) struct Typed {
    pub model: TypedModel,
    /// The names of the file's ONNX nodes, in the file's order.
    pub node_names: Vec<String>,
    size: usize,
    has_features: bool,
    has_class_maps: bool,
    has_ood_features: bool,
}

/// Reads `model` into tract's typed graph (what [`Runtime::new`] then optimizes).
pub(crate) fn typed(model: &ModelFile) -> Result<Typed, RuntimeError> {
    let size = model.input_size() as usize;
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_read(&mut model.bytes.as_slice())
        .map_err(|e| load_error(model, e))?;
    let has_output = |name: &str| {
        proto
            .graph
            .as_ref()
            .is_some_and(|g| g.output.iter().any(|o| o.name == name))
    };
    let has_features = has_output(FEATURES_NAME);
    let has_class_maps = has_output(CLASS_MAPS_NAME);
    let has_ood_features = has_output(OOD_FEATURES_NAME);
    let ood_block = model
        .metadata
        .calibration
        .ood
        .as_ref()
        .and_then(|o| o.block);
    if let (Some(block), false) = (ood_block, has_ood_features) {
        return Err(RuntimeError::MissingOodOutput {
            path: model.path.clone(),
            block,
        });
    }
    let mut outputs = vec![LOGITS_NAME];
    outputs.extend(has_features.then_some(FEATURES_NAME));
    outputs.extend(has_class_maps.then_some(CLASS_MAPS_NAME));
    outputs.extend(has_ood_features.then_some(OOD_FEATURES_NAME));
    let node_names = proto
        .graph
        .as_ref()
        .map(|g| g.node.iter().map(|n| n.name.clone()).collect())
        .unwrap_or_default();
    let typed = onnx
        .model_for_proto_model(&proto)
        .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, size, size]).into()))
        .and_then(|m| m.with_outputs_by_name(&outputs))
        .and_then(|m| m.into_typed())
        .map_err(|e| load_error(model, e))?;
    Ok(Typed {
        model: typed,
        node_names,
        size,
        has_features,
        has_class_maps,
        has_ood_features,
    })
}

/// The pool of `threads` threads, none for one.
///
/// With a pool, tract splits every matrix product over the threads however small it is. Its own
/// default runs products of fewer than 64 output panels on one thread; in EfficientNet-Lite's late
/// blocks (12×12 and 6×6 planes) that is most 1×1 convolutions, and splitting them too took a
/// two-thread frame of the default model from 7.8 to 6.9 ms on the development machine
/// (bench/results.md, section infer). The setting is tract's, for the whole process; runs on one
/// thread never read it, and tract's split gives the same bits for any number of threads.
fn thread_pool(threads: usize) -> TractResult<Option<Arc<rayon::ThreadPool>>> {
    if threads <= 1 {
        return Ok(None);
    }
    tract_linalg::multithread::set_threading_panel_threshold(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("dermo-infer-{i}"))
        .build()?;
    Ok(Some(Arc::new(pool)))
}

fn load_error(model: &ModelFile, e: TractError) -> RuntimeError {
    RuntimeError::Load {
        path: model.path.clone(),
        message: format!("{e:#}"),
    }
}

impl Runtime {
    /// Builds the plan for the model's own input size (from its metadata), one thread.
    pub fn new(model: &ModelFile) -> Result<Self, RuntimeError> {
        Self::with_options(model, RuntimeOptions::default())
    }

    /// [`Runtime::new`], with the thread count and kernels of `options`.
    pub fn with_options(model: &ModelFile, options: RuntimeOptions) -> Result<Self, RuntimeError> {
        Self::from_typed(model, typed(model)?, options)
    }

    /// Optimizes the typed graph of `model` into the plan.
    pub(crate) fn from_typed(
        model: &ModelFile,
        typed: Typed,
        options: RuntimeOptions,
    ) -> Result<Self, RuntimeError> {
        let mut graph = typed
            .model
            .into_decluttered()
            .map_err(|e| load_error(model, e))?;
        if options.arithmetic == Arithmetic::F16 {
            FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), |node| {
                !depthwise::is_depthwise(node)
            })
            .transform(&mut graph)
            .map_err(|e| load_error(model, e))?;
        }
        if options.depthwise == DepthwiseKernel::Dermo {
            depthwise::substitute(&mut graph).map_err(|e| load_error(model, e))?;
        }
        let plan = graph
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| load_error(model, e))?;
        Ok(Runtime {
            plan,
            arithmetic: options.arithmetic,
            pool: thread_pool(options.threads).map_err(|e| load_error(model, e))?,
            size: typed.size,
            has_features: typed.has_features,
            has_class_maps: typed.has_class_maps,
            has_ood_features: typed.has_ood_features,
        })
    }

    /// The optimized plan.
    pub(crate) fn plan(&self) -> &TypedRunnableModel {
        &self.plan
    }

    /// The input side length `S`.
    pub fn input_size(&self) -> usize {
        self.size
    }

    /// Runs every image of an `[N, 3, S, S]` batch.
    pub fn run(&self, input: &Tensor) -> Result<Output, RuntimeError> {
        self.run_with(input, |plan, inputs| plan.run(inputs))
    }

    /// [`Runtime::run`], with `exec` running the plan on each image's inputs (the profiler times
    /// it node by node).
    pub(crate) fn run_with(
        &self,
        input: &Tensor,
        mut exec: impl FnMut(&TypedRunnableModel, TVec<TValue>) -> TractResult<TVec<TValue>> + Send,
    ) -> Result<Output, RuntimeError> {
        let [n, c, h, w] = input.shape;
        if c != 3 || h != self.size || w != self.size {
            return Err(RuntimeError::InputShape {
                found: input.shape,
                size: self.size,
            });
        }
        let per_image = c * h * w;
        if input.data.len() != n * per_image {
            return Err(RuntimeError::InputLength {
                shape: input.shape,
                found: input.data.len(),
                expected: n * per_image,
            });
        }
        let mut logits = Vec::with_capacity(n * NUM_CLASSES);
        let mut features = self.has_features.then(Vec::new);
        let mut ood_features = self.has_ood_features.then(Vec::new);
        let mut class_maps = self.has_class_maps.then(|| ClassMaps {
            side: 0,
            values: Vec::new(),
        });
        // A whole frame runs on one of the pool's threads, so the others stay awake from one
        // operator to the next (handing each operator over from outside the pool cost more than
        // the second thread saved: 16.4 against 13.7 ms a frame).
        let mut exec = |plan: &TypedRunnableModel, inputs: TVec<TValue>| match &self.pool {
            Some(pool) => pool.install(|| {
                multithread_tract_scope(Executor::MultiThread(pool.clone()), || exec(plan, inputs))
            }),
            None => exec(plan, inputs),
        };
        for image in input.data.chunks_exact(per_image) {
            let x = tract_ndarray::Array4::from_shape_vec((1, c, h, w), image.to_vec())
                .expect("length checked above");
            let out = self
                .in_arithmetic(tract_onnx::prelude::Tensor::from(x))
                .and_then(|x| exec(&self.plan, tvec!(x.into())))
                .and_then(|out| self.outputs_in_f32(out))
                .map_err(|e| RuntimeError::Run(format!("{e:#}")))?;
            let l = f32_slice(&out[0])?;
            if l.len() != NUM_CLASSES {
                return Err(RuntimeError::OutputShape {
                    name: LOGITS_NAME,
                    found: l.len(),
                    expected: NUM_CLASSES,
                });
            }
            logits.extend_from_slice(l);
            let mut next = out[1..].iter();
            if let Some(f) = features.as_mut() {
                f.extend(global_average_pool(
                    next.next().expect("one output per name"),
                )?);
            }
            if let Some(m) = class_maps.as_mut() {
                let t = next.next().expect("one output per name");
                m.side = *t.shape().last().unwrap_or(&0);
                let v = f32_slice(t)?;
                let expected = NUM_CLASSES * m.side * m.side;
                if t.shape() != [1, NUM_CLASSES, m.side, m.side] {
                    return Err(RuntimeError::OutputShape {
                        name: CLASS_MAPS_NAME,
                        found: v.len(),
                        expected,
                    });
                }
                m.values.extend_from_slice(v);
            }
            if let Some(f) = ood_features.as_mut() {
                f.extend_from_slice(f32_slice(next.next().expect("one output per name"))?);
            }
        }
        Ok(Output {
            logits,
            features,
            ood_features,
            class_maps,
        })
    }

    /// An f32 input tensor in the plan's arithmetic.
    fn in_arithmetic(
        &self,
        x: tract_onnx::prelude::Tensor,
    ) -> TractResult<tract_onnx::prelude::Tensor> {
        match self.arithmetic {
            Arithmetic::F32 => Ok(x),
            Arithmetic::F16 => x.cast_to::<f16>().map(|t| t.into_owned()),
        }
    }

    /// The plan's outputs as f32 tensors.
    fn outputs_in_f32(&self, out: TVec<TValue>) -> TractResult<TVec<TValue>> {
        match self.arithmetic {
            Arithmetic::F32 => Ok(out),
            Arithmetic::F16 => out
                .iter()
                .map(|t| Ok(t.cast_to::<f32>()?.into_owned().into_tvalue()))
                .collect(),
        }
    }
}

/// Runs an fp32 model file with chosen intermediate tensors as outputs, to measure the activation
/// ranges an int8-full export needs (names from `onnx::activation_range_names`).
#[derive(Debug)]
pub struct ActivationProbe {
    plan: TypedRunnableModel,
    names: Vec<String>,
    size: usize,
}

impl ActivationProbe {
    pub fn new(model: &ModelFile, names: &[String]) -> Result<Self, RuntimeError> {
        let size = model.input_size() as usize;
        let plan = tract_onnx::onnx()
            .model_for_read(&mut model.bytes.as_slice())
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, size, size]).into()))
            .and_then(|m| m.with_outputs_by_name(names))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| RuntimeError::Load {
                path: model.path.clone(),
                message: format!("{e:#}"),
            })?;
        Ok(ActivationProbe {
            plan,
            names: names.to_vec(),
            size,
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every probed tensor for one `[1, 3, S, S]` image, in the order of `names`.
    pub fn run(&self, image: &Tensor) -> Result<Vec<Activation>, RuntimeError> {
        if image.shape != [1, 3, self.size, self.size] {
            return Err(RuntimeError::InputShape {
                found: image.shape,
                size: self.size,
            });
        }
        let x =
            tract_ndarray::Array4::from_shape_vec((1, 3, self.size, self.size), image.data.clone())
                .map_err(|_| RuntimeError::InputLength {
                    shape: image.shape,
                    found: image.data.len(),
                    expected: 3 * self.size * self.size,
                })?;
        let out = self
            .plan
            .run(tvec!(tract_onnx::prelude::Tensor::from(x).into()))
            .map_err(|e| RuntimeError::Run(format!("{e:#}")))?;
        out.iter()
            .map(|v| {
                Ok(Activation {
                    shape: v.shape().to_vec(),
                    data: f32_slice(v)?.to_vec(),
                })
            })
            .collect()
    }

    /// Min-max ranges and per-channel means of every probed tensor over `images`: the default
    /// statistics (the host may pick ranges with histogram estimators instead).
    pub fn statistics<'a>(
        &self,
        images: impl IntoIterator<Item = &'a Tensor>,
    ) -> Result<ActivationStats, RuntimeError> {
        let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); self.names.len()];
        let mut means = ChannelMeans::default();
        for image in images {
            for ((r, a), name) in ranges.iter_mut().zip(self.run(image)?).zip(&self.names) {
                *r = a
                    .data
                    .iter()
                    .fold(*r, |(lo, hi), &v| (lo.min(v), hi.max(v)));
                means.add(name, &a);
            }
        }
        Ok(ActivationStats {
            ranges: self.names.iter().cloned().zip(ranges).collect(),
            channel_means: means.finish(),
        })
    }
}

/// One probed tensor of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Activation {
    /// The mean of each channel (axis 1) over all other axes.
    pub fn channel_means(&self) -> Vec<f32> {
        let channels = self.shape.get(1).copied().unwrap_or(1).max(1);
        let inner: usize = self.shape.iter().skip(2).product();
        let mut sums = vec![0f64; channels];
        for (i, v) in self.data.iter().enumerate() {
            sums[(i / inner.max(1)) % channels] += f64::from(*v);
        }
        let count = (self.data.len() / channels).max(1) as f64;
        sums.iter().map(|s| (s / count) as f32).collect()
    }
}

/// Per-tensor statistics measured on calibration images, for `onnx::write_onnx`
/// (`activation_ranges`) and `onnx::bias_corrected` (`channel_means`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivationStats {
    pub ranges: BTreeMap<String, (f32, f32)>,
    pub channel_means: BTreeMap<String, Vec<f32>>,
}

/// Running per-channel means, each image weighted equally.
#[derive(Debug, Clone, Default)]
pub struct ChannelMeans {
    sums: BTreeMap<String, (Vec<f64>, usize)>,
}

impl ChannelMeans {
    pub fn add(&mut self, name: &str, a: &Activation) {
        let means = a.channel_means();
        let (sum, n) = self
            .sums
            .entry(name.to_string())
            .or_insert_with(|| (vec![0.0; means.len()], 0));
        for (s, m) in sum.iter_mut().zip(means) {
            *s += f64::from(m);
        }
        *n += 1;
    }

    pub fn finish(self) -> BTreeMap<String, Vec<f32>> {
        self.sums
            .into_iter()
            .map(|(k, (sum, n))| {
                (
                    k,
                    sum.iter().map(|s| (s / n.max(1) as f64) as f32).collect(),
                )
            })
            .collect()
    }
}

/// Mean over the spatial axes of a `[1, C, h, w]` feature map.
fn global_average_pool(map: &TValue) -> Result<Vec<f32>, RuntimeError> {
    let shape = map.shape().to_vec();
    let data = f32_slice(map)?;
    let channels = shape.get(1).copied().unwrap_or(0);
    let plane: usize = shape.iter().skip(2).product();
    if shape.len() != 4 || data.len() != channels * plane || plane == 0 {
        return Err(RuntimeError::OutputShape {
            name: FEATURES_NAME,
            found: data.len(),
            expected: channels * plane,
        });
    }
    Ok(data
        .chunks_exact(plane)
        .map(|p| p.iter().sum::<f32>() / plane as f32)
        .collect())
}

fn f32_slice(v: &TValue) -> Result<&[f32], RuntimeError> {
    v.try_as_plain_ram()
        .and_then(|p| p.as_slice::<f32>())
        .map_err(|e| RuntimeError::Run(format!("{e:#}")))
}
