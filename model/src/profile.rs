//! Where inference time goes: tract's time per plan node, grouped by kind of operator.
//!
//! [`Profiler`] runs the same optimized plan as [`Runtime`] (built by the same code), through
//! tract's own per-node hook: [`SimpleState::run_plan_with_eval`] with a closure that times
//! [`tract_core::plan::eval`] (what a plain run calls for every node). The plain
//! [`Runtime::run`] path is not touched: it runs no hook and reads no clock.
//!
//! # How a node's kind is found
//!
//! tract names the nodes it makes out of an ONNX node after that node: the node itself, or the
//! node's name followed by `.`, `-` or `#` and more (`blocks.3.dw.conv.kernel_c_inner`). A plan
//! node is charged to the ONNX node with the longest such name (its *unit*), so a convolution's
//! padding, packing and bias nodes count with the convolution. When tract fuses a ReLU6 or a
//! residual add into the matrix product before it, it names the product after the activation
//! (`blocks.1.expand.max.prefused`): a product op (`OptMatMul`, a conv op) whose unit is not a
//! convolution counts with the latest convolution feeding that unit, so fused epilogues count
//! with their convolution and the elementwise kind holds only what runs on its own.
//!
//! A unit's kind is read from the tract ops of its nodes in the *typed* graph (the ONNX graph as
//! tract ops, before decluttering, so a convolution is still one `Conv` op with its
//! [`PoolSpec`](tract_core::ops::cnn::PoolSpec)):
//!
//! - **depthwise k×k stride s**: a `Conv` whose group count is its input channel count (> 1);
//!   kernel shape and strides from its pool spec;
//! - **stem**: any other `Conv` whose data input comes from the model input through no other
//!   `Conv` (the default model has two: its OOD trunk has its own stem);
//! - **head**: the classifier — a matrix product that is not a convolution (the dense layer; an
//!   ONNX `Gemm` becomes an `EinSum`), or a `Conv` whose output is a model output (the class-maps
//!   convolution applies the dense layer at every cell) — and the `Conv` upstream of the
//!   classifier's data input through non-`Conv` nodes (the conv that makes the feature map the
//!   classifier reads);
//! - **1×1 conv**: every other `Conv` with a 1×1 kernel and group 1 (expansions, projections);
//! - **conv k×k stride s**: any other `Conv` (none in EfficientNet-Lite0);
//! - **pooling**: a reduction (`Reduce`, global average pooling) or a pooling op (its
//!   normalising `Mul` counts with it);
//! - **quantize/dequantize**: an op whose name says `quantize`, any case (`DequantizeLinear` and
//!   friends);
//! - **elementwise**: binary ops (`Add`, `Mul`, `Max`, `Min`: residual adds, ReLU6 as `Clip`) and
//!   unary element-wise maps (activations), when not fused into a convolution;
//! - **other**: everything else (reshapes, `Flatten`, the model input).
//!
//! The first rule that matches a unit gives its kind. A plan node with no unit (none expected:
//! the model's input is one) is classified by its own optimized op with the last four rules.

use crate::modelfile::ModelFile;
use crate::preprocess::Tensor;
use crate::runtime::{self, Output, Runtime, RuntimeError, RuntimeOptions};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::Reduce;

/// The kind of operator a plan node's time is charged to. The order is the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    /// The first convolution.
    Stem,
    /// 1×1, group-1 convolutions other than the head's.
    Pointwise,
    /// Depthwise convolutions, by kernel shape and strides.
    Depthwise {
        kernel: [usize; 2],
        stride: [usize; 2],
    },
    /// Any other convolution.
    Conv {
        kernel: [usize; 2],
        stride: [usize; 2],
    },
    /// The last 1×1 convolution and the classifier.
    Head,
    Pooling,
    Elementwise,
    Quantize,
    Other,
}

impl OpKind {
    /// The kinds every table lists, with or without nodes (depthwise and other convolutions are
    /// listed as the model has them).
    pub const ALWAYS: [OpKind; 7] = [
        OpKind::Stem,
        OpKind::Pointwise,
        OpKind::Head,
        OpKind::Pooling,
        OpKind::Elementwise,
        OpKind::Quantize,
        OpKind::Other,
    ];

    /// A name for tables.
    pub fn label(&self) -> String {
        match self {
            OpKind::Stem => "stem (first conv)".into(),
            OpKind::Pointwise => "1×1 conv".into(),
            OpKind::Depthwise {
                kernel: k,
                stride: s,
            } => {
                format!("depthwise {} stride {}", kernel(k, "×"), stride(s, "×"))
            }
            OpKind::Conv {
                kernel: k,
                stride: s,
            } => {
                format!("conv {} stride {}", kernel(k, "×"), stride(s, "×"))
            }
            OpKind::Head => "head (last 1×1 conv + classifier)".into(),
            OpKind::Pooling => "pooling".into(),
            OpKind::Elementwise => "elementwise (add/mul/activation/clip)".into(),
            OpKind::Quantize => "quantize/dequantize".into(),
            OpKind::Other => "other".into(),
        }
    }

    /// A short ASCII key, for `KEY_ms=` fields (`scripts/bench` and `bench/ort_profile.py` use
    /// the same keys).
    pub fn key(&self) -> String {
        match self {
            OpKind::Stem => "stem".into(),
            OpKind::Pointwise => "conv1x1".into(),
            OpKind::Depthwise {
                kernel: k,
                stride: s,
            } => {
                format!("dw{}s{}", kernel(k, "x"), stride(s, "x"))
            }
            OpKind::Conv {
                kernel: k,
                stride: s,
            } => {
                format!("conv{}s{}", kernel(k, "x"), stride(s, "x"))
            }
            OpKind::Head => "head".into(),
            OpKind::Pooling => "pooling".into(),
            OpKind::Elementwise => "elementwise".into(),
            OpKind::Quantize => "quant".into(),
            OpKind::Other => "other".into(),
        }
    }
}

/// A kernel shape, `3×3`.
fn kernel(v: &[usize; 2], sep: &str) -> String {
    format!("{}{sep}{}", v[0], v[1])
}

/// Strides, `2` when both are equal, else `2×1`.
fn stride(v: &[usize; 2], sep: &str) -> String {
    match v[0] == v[1] {
        true => v[0].to_string(),
        false => format!("{}{sep}{}", v[0], v[1]),
    }
}

/// One node of the plan, as the profile charges it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanNode {
    /// tract's node id (index in the optimized model).
    pub id: usize,
    pub name: String,
    /// The optimized op's name (`OptMatMul`, `DepthWiseConv`, …).
    pub op: String,
    /// The ONNX node it was made from, when one is found.
    pub unit: Option<String>,
    pub kind: OpKind,
}

/// Times the optimized plan node by node; see the module documentation.
#[derive(Debug)]
pub struct Profiler {
    runtime: Runtime,
    nodes: Vec<PlanNode>,
    /// Time spent evaluating each node, by node id, since the last [`Profiler::reset`].
    node_time: Vec<Duration>,
    /// Wall time of the plan runs (state set-up, every node, outputs).
    run_time: Duration,
    frames: usize,
}

impl Profiler {
    /// Builds the plan exactly as [`Runtime::with_options`] does, and the kind of each of its
    /// nodes.
    pub fn new(model: &ModelFile, options: RuntimeOptions) -> Result<Self, RuntimeError> {
        let typed = runtime::typed(model)?;
        let units = unit_kinds(&typed.model, &typed.node_names);
        let runtime = Runtime::from_typed(model, typed, options)?;
        let plan = runtime.plan();
        let graph = plan.model();
        let nodes = plan
            .order_without_consts()
            .iter()
            .map(|&id| {
                let node = graph.node(id);
                let mut unit = unit_of(&node.name, &units.kinds);
                // A product op named after an activation or add it absorbed computes the
                // convolution that feeds that unit.
                if let Some(conv) = unit
                    .filter(|_| is_product(node.op().name().as_ref()))
                    .and_then(|u| units.fed_by.get(u))
                {
                    unit = Some(conv.as_str());
                }
                let kind = match unit {
                    Some(u) => units.kinds[u],
                    None => role_kind(op_role(node)),
                };
                PlanNode {
                    id,
                    name: node.name.clone(),
                    op: node.op().name().to_string(),
                    unit: unit.map(str::to_string),
                    kind,
                }
            })
            .collect();
        let node_count = graph.nodes().len();
        Ok(Profiler {
            runtime,
            nodes,
            node_time: vec![Duration::ZERO; node_count],
            run_time: Duration::ZERO,
            frames: 0,
        })
    }

    /// The input side length `S`.
    pub fn input_size(&self) -> usize {
        self.runtime.input_size()
    }

    /// The nodes the plan evaluates, in its order (constants are not evaluated).
    pub fn nodes(&self) -> &[PlanNode] {
        &self.nodes
    }

    /// Runs every image of an `[N, 3, S, S]` batch like [`Runtime::run`], timing each node; each
    /// image counts as one frame.
    pub fn run(&mut self, input: &Tensor) -> Result<Output, RuntimeError> {
        let Profiler {
            runtime,
            node_time,
            run_time,
            frames,
            ..
        } = self;
        runtime.run_with(input, |plan, inputs| {
            let t0 = Instant::now();
            let mut state = plan.spawn()?;
            let out = state.run_plan_with_eval(inputs, |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                node_time[node.id] += t.elapsed();
                out
            });
            *run_time += t0.elapsed();
            *frames += 1;
            out
        })
    }

    /// Forgets the times measured so far (after warm-up frames).
    pub fn reset(&mut self) {
        self.node_time.fill(Duration::ZERO);
        self.run_time = Duration::ZERO;
        self.frames = 0;
    }

    /// Every plan node with its mean milliseconds per frame since the last reset, in plan order.
    pub fn node_times(&self) -> Vec<(&PlanNode, f64)> {
        let frames = self.frames.max(1) as f64;
        self.nodes
            .iter()
            .map(|n| (n, self.node_time[n.id].as_secs_f64() * 1e3 / frames))
            .collect()
    }

    /// Mean time per frame of each kind, over the frames run since the last reset.
    pub fn profile(&self) -> Profile {
        let per_frame = |d: Duration| d.as_secs_f64() * 1e3 / self.frames.max(1) as f64;
        let total_ms = per_frame(self.run_time);
        let mut groups: Vec<GroupTime> = Vec::new();
        let mut kinds: Vec<OpKind> = OpKind::ALWAYS.to_vec();
        kinds.extend(self.nodes.iter().map(|n| n.kind));
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            let nodes: Vec<&PlanNode> = self.nodes.iter().filter(|n| n.kind == kind).collect();
            let ms = per_frame(nodes.iter().map(|n| self.node_time[n.id]).sum());
            groups.push(GroupTime {
                kind,
                label: kind.label(),
                key: kind.key(),
                ms,
                share: if total_ms > 0.0 { ms / total_ms } else { 0.0 },
                nodes: nodes.iter().map(|n| n.id).collect(),
            });
        }
        Profile {
            frames: self.frames,
            total_ms,
            groups,
        }
    }
}

/// Mean time per frame by kind of operator.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub frames: usize,
    /// Wall time of one plan run (every node, plus tract's own work between them).
    pub total_ms: f64,
    /// One per kind, in [`OpKind`] order.
    pub groups: Vec<GroupTime>,
}

/// One kind's share of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct GroupTime {
    pub kind: OpKind,
    pub label: String,
    pub key: String,
    /// Mean milliseconds per frame over its nodes.
    pub ms: f64,
    /// Of [`Profile::total_ms`].
    pub share: f64,
    /// The plan node ids charged to it.
    pub nodes: Vec<usize>,
}

impl Profile {
    /// The sum of the groups: time inside nodes.
    pub fn operators_ms(&self) -> f64 {
        self.groups.iter().map(|g| g.ms).sum()
    }

    /// A plain-text table: kind, nodes, ms per frame, share of the plan run.
    pub fn table(&self) -> String {
        let width = self
            .groups
            .iter()
            .map(|g| g.label.chars().count())
            .max()
            .unwrap_or(0)
            .max(24);
        let mut s = String::new();
        let row = |s: &mut String, label: &str, nodes: &str, ms: f64, share: f64| {
            let pad = width.saturating_sub(label.chars().count());
            let _ = writeln!(
                s,
                "{label}{:pad$}  {nodes:>5}  {ms:>9.3}  {:>6.1} %",
                "",
                share * 100.0
            );
        };
        let _ = writeln!(
            s,
            "{:width$}  {:>5}  {:>9}  {:>8}",
            "kind", "nodes", "ms/frame", "share"
        );
        for g in &self.groups {
            row(&mut s, &g.label, &g.nodes.len().to_string(), g.ms, g.share);
        }
        let nodes: usize = self.groups.iter().map(|g| g.nodes.len()).sum();
        let share = |ms: f64| {
            if self.total_ms > 0.0 {
                ms / self.total_ms
            } else {
                0.0
            }
        };
        let ops = self.operators_ms();
        row(
            &mut s,
            "sum of operators",
            &nodes.to_string(),
            ops,
            share(ops),
        );
        row(
            &mut s,
            "between operators (plan)",
            "",
            self.total_ms - ops,
            share(self.total_ms - ops),
        );
        row(&mut s, "total (plan run)", "", self.total_ms, 1.0);
        s
    }

    /// `frames=… total_ms=… operators_ms=…`, then `KEY_ms=… KEY_nodes=…` for every kind, as
    /// `dermo-scope bench` prints its stages.
    pub fn summary_line(&self) -> String {
        let mut s = format!(
            "frames={} total_ms={:.3} operators_ms={:.3}",
            self.frames,
            self.total_ms,
            self.operators_ms()
        );
        for g in &self.groups {
            let _ = write!(
                s,
                " {0}_ms={1:.3} {0}_nodes={2}",
                g.key,
                g.ms,
                g.nodes.len()
            );
        }
        s
    }
}

/// What a single op does, as far as grouping goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Conv {
        kernel: [usize; 2],
        stride: [usize; 2],
        group: usize,
        input_channels: usize,
    },
    Dense,
    Pool,
    Quantize,
    Elementwise,
    Other,
}

fn op_role(node: &TypedNode) -> Role {
    if let Some(conv) = node.op_as::<Conv>() {
        let spec = &conv.pool_spec;
        let two = |v: &[usize]| {
            [
                v.first().copied().unwrap_or(1),
                v.get(1).copied().unwrap_or(1),
            ]
        };
        return Role::Conv {
            kernel: two(&spec.kernel_shape[..]),
            stride: two(&spec.strides()[..]),
            group: conv.group,
            input_channels: spec.input_channels,
        };
    }
    let name = node.op().name();
    if node.op_is::<EinSum>() || name.contains("MatMul") || name.contains("Gemm") {
        return Role::Dense;
    }
    if node.op_is::<Reduce>() || name.contains("Pool") || name.starts_with("Reduce") {
        return Role::Pool;
    }
    if name.to_lowercase().contains("quantize") {
        return Role::Quantize;
    }
    if node.op_is::<TypedBinOp>()
        || node.op_is::<ElementWiseOp>()
        || name.starts_with("OptBin")
        || name.starts_with("Clip")
    {
        return Role::Elementwise;
    }
    Role::Other
}

/// Whether an optimized op is a convolution's or a matrix product's work.
fn is_product(op: &str) -> bool {
    ["MatMul", "Conv", "Im2col", "EinSum"]
        .iter()
        .any(|p| op.contains(p))
}

/// The kind of a node that has no unit: only the op-only rules apply.
fn role_kind(role: Role) -> OpKind {
    match role {
        Role::Pool => OpKind::Pooling,
        Role::Quantize => OpKind::Quantize,
        Role::Elementwise => OpKind::Elementwise,
        _ => OpKind::Other,
    }
}

/// Separators tract puts between an ONNX node's name and what it appends.
const SEPARATORS: &[char] = &['.', '-', '#'];

/// The unit of a node name: the longest of `units` that is the name itself or the start of the
/// name followed by a separator.
fn unit_of<'a, V>(name: &str, units: &'a HashMap<String, V>) -> Option<&'a str> {
    let mut candidate = name;
    loop {
        if let Some((k, _)) = units.get_key_value(candidate) {
            return Some(k.as_str());
        }
        candidate = &candidate[..candidate.rfind(SEPARATORS)?];
    }
}

/// The kind of every ONNX node (by name) from the typed graph, and for a non-convolution unit
/// the convolution unit that feeds it (what a product op named after it computes); the rules are
/// the module's.
struct Units {
    kinds: HashMap<String, OpKind>,
    fed_by: HashMap<String, String>,
}

fn unit_kinds(typed: &TypedModel, onnx_nodes: &[String]) -> Units {
    let names: HashMap<String, ()> = onnx_nodes.iter().map(|n| (n.clone(), ())).collect();
    let order = typed
        .eval_order()
        .unwrap_or_else(|_| (0..typed.nodes().len()).collect());
    let position: HashMap<usize, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let unit_name = |id: usize| unit_of(&typed.node(id).name, &names).map(str::to_string);
    let is_conv = |id: usize| typed.node(id).op_is::<Conv>();
    // Units in evaluation order (of their first node): roles, whether one of their nodes is a
    // model output, their first node.
    let mut units: Vec<(String, Vec<Role>, bool, Vec<usize>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let outputs: Vec<usize> = typed.outputs.iter().map(|o| o.node).collect();
    for &id in &order {
        let Some(unit) = unit_name(id) else {
            continue;
        };
        let i = *index.entry(unit.clone()).or_insert_with(|| {
            units.push((unit, Vec::new(), false, Vec::new()));
            units.len() - 1
        });
        units[i].1.push(op_role(typed.node(id)));
        units[i].2 |= outputs.contains(&id);
        units[i].3.push(id);
    }
    // The first convolution (or model input) upstream of a node's data input, through nodes that
    // are not convolutions: `Err(())` for a model input.
    let upstream_conv = |id: usize| -> Option<Result<usize, ()>> {
        let mut node = typed.node(id);
        loop {
            let data = node
                .inputs
                .iter()
                .find(|i| typed.outlet_fact(**i).map_or(true, |f| f.konst.is_none()))
                .or(node.inputs.first());
            let Some(outlet) = data else {
                return typed
                    .inputs
                    .iter()
                    .any(|i| i.node == node.id)
                    .then_some(Err(()));
            };
            if is_conv(outlet.node) {
                return Some(Ok(outlet.node));
            }
            node = typed.node(outlet.node);
        }
    };
    let conv_of = |roles: &[Role]| {
        roles.iter().find_map(|r| match *r {
            Role::Conv {
                kernel,
                stride,
                group,
                input_channels,
            } => Some((kernel, stride, group, input_channels)),
            _ => None,
        })
    };
    let depthwise = |group: usize, input_channels: usize| group > 1 && group == input_channels;
    let pointwise = |kernel: [usize; 2], group: usize| kernel == [1, 1] && group == 1;
    let classifier = |roles: &[Role], is_output: bool| {
        conv_of(roles).map_or(roles.contains(&Role::Dense), |_| is_output)
    };
    // The node of each unit that carries its op (its conv, its matrix product), else its first.
    let main_node = |ids: &[usize]| {
        ids.iter()
            .copied()
            .find(|&id| matches!(op_role(typed.node(id)), Role::Conv { .. } | Role::Dense))
            .unwrap_or(ids[0])
    };
    let mut head_convs: Vec<String> = Vec::new();
    for (_, roles, is_output, ids) in &units {
        if classifier(roles, *is_output) {
            if let Some(Ok(conv)) = upstream_conv(main_node(ids)) {
                head_convs.extend(unit_name(conv));
            }
        }
    }
    let mut kinds = HashMap::new();
    let mut fed_by = HashMap::new();
    for (name, roles, is_output, ids) in &units {
        let kind = if let Some((kernel, stride, group, ic)) = conv_of(roles) {
            if depthwise(group, ic) {
                OpKind::Depthwise { kernel, stride }
            } else if upstream_conv(main_node(ids)) == Some(Err(())) {
                OpKind::Stem
            } else if head_convs.contains(name) || classifier(roles, *is_output) {
                OpKind::Head
            } else if pointwise(kernel, group) {
                OpKind::Pointwise
            } else {
                OpKind::Conv { kernel, stride }
            }
        } else if classifier(roles, *is_output) {
            OpKind::Head
        } else if roles.contains(&Role::Pool) {
            OpKind::Pooling
        } else if roles.contains(&Role::Quantize) {
            OpKind::Quantize
        } else if roles.contains(&Role::Elementwise) {
            OpKind::Elementwise
        } else {
            OpKind::Other
        };
        if conv_of(roles).is_none() {
            // The latest convolution among the direct inputs of the unit's nodes.
            let conv = ids
                .iter()
                .flat_map(|&id| typed.node(id).inputs.iter().map(|i| i.node))
                .filter(|&n| is_conv(n))
                .max_by_key(|n| position.get(n).copied().unwrap_or(0));
            if let Some(conv_unit) = conv.and_then(unit_name) {
                fed_by.insert(name.clone(), conv_unit);
            }
        }
        kinds.insert(name.clone(), kind);
    }
    Units { kinds, fed_by }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_belongs_to_the_longest_unit_at_a_separator() {
        let units: HashMap<String, ()> = ["blocks.1.dw", "blocks.1.dw.conv", "blocks.10.dw"]
            .iter()
            .map(|s| (s.to_string(), ()))
            .collect();
        assert_eq!(
            unit_of("blocks.1.dw.conv.kernel_c_inner", &units),
            Some("blocks.1.dw.conv")
        );
        assert_eq!(unit_of("blocks.1.dw.min", &units), Some("blocks.1.dw"));
        assert_eq!(unit_of("blocks.10.dw", &units), Some("blocks.10.dw"));
        assert_eq!(unit_of("blocks.1.dwx", &units), None);
        assert_eq!(unit_of("input", &units), None);
    }

    #[test]
    fn labels_and_keys_name_kernel_and_stride() {
        let dw = OpKind::Depthwise {
            kernel: [5, 5],
            stride: [2, 2],
        };
        assert_eq!(dw.label(), "depthwise 5×5 stride 2");
        assert_eq!(dw.key(), "dw5x5s2");
        assert!(OpKind::Pointwise < dw && dw < OpKind::Head);
    }
}
