//! EfficientNet-Lite0 as a `tch` module, built from [`dermo_model::arch::ArchSpec`].
//!
//! Variable names follow the ImageNet state dict (`_conv_stem.weight`, `_bn0.*`,
//! `_blocks.N._expand_conv.weight`, …, `_conv_head.weight`, `_bn1.*`, `_fc.*`), so the pretrained
//! weights load 1:1 and a checkpoint is a plain state dict the ONNX writer can read. Padding is the
//! symmetric `k/2` of `dermo_model::arch::padding` — the same as the ONNX writer; the ImageNet test
//! (`host/tests/train/train_imagenet.rs`) shows the weights are right with it.
//!
//! The network is split at block boundaries so that partial fine-tuning can compute the frozen
//! prefix (stem + first K blocks) once and train only the rest.

use dermo_model::arch::{padding, ArchSpec, Block};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Convolution (no bias) followed by BatchNorm; `relu6` says whether ReLU6 follows.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        conv_path: nn::Path,
        bn_path: nn::Path,
        spec: &ArchSpec,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
    ) -> ConvBn {
        let cfg = nn::ConvConfig {
            stride: stride as i64,
            padding: padding(kernel) as i64,
            groups: groups as i64,
            bias: false,
            ws_init: nn::Init::Kaiming {
                dist: nn::init::NormalOrUniform::Normal,
                fan: nn::init::FanInOut::FanOut,
                non_linearity: nn::init::NonLinearity::ReLU,
            },
            ..Default::default()
        };
        let bn_cfg = nn::BatchNormConfig {
            eps: spec.bn_eps,
            momentum: spec.bn_momentum,
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        };
        ConvBn {
            conv: nn::conv2d(conv_path, cin as i64, cout as i64, kernel as i64, cfg),
            bn: nn::batch_norm2d(bn_path, cout as i64, bn_cfg),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&xs.apply(&self.conv), train)
    }
}

/// ReLU6 as libtorch's own `relu6` (hardtanh): its backward is one fused kernel that keeps the
/// input's memory layout, where `clamp`'s is a chain of comparisons and a `where` (PyTorch's
/// reference step ran 1.3× slower with `clamp`; bench/results.md, section train).
fn relu6(xs: Tensor) -> Tensor {
    xs.relu6()
}

/// One inverted-residual block: 1×1 expand → depthwise k×k → 1×1 project (+ identity skip).
#[derive(Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    skip: bool,
    /// Probability of dropping the residual branch for a sample in training (stochastic depth,
    /// "drop connect" in EfficientNet); 0 keeps it always. Only blocks with a skip use it.
    drop_rate: f64,
}

impl MbConv {
    fn new(p: &nn::Path, spec: &ArchSpec, b: &Block) -> MbConv {
        let hidden = b.hidden_channels();
        let expand = b.has_expand().then(|| {
            ConvBn::new(
                p / "_expand_conv",
                p / "_bn0",
                spec,
                b.in_channels,
                hidden,
                1,
                1,
                1,
            )
        });
        let depthwise = ConvBn::new(
            p / "_depthwise_conv",
            p / "_bn1",
            spec,
            hidden,
            hidden,
            b.kernel,
            b.stride,
            hidden,
        );
        let project = ConvBn::new(
            p / "_project_conv",
            p / "_bn2",
            spec,
            hidden,
            b.out_channels,
            1,
            1,
            1,
        );
        MbConv {
            expand,
            depthwise,
            project,
            skip: b.has_skip(),
            drop_rate: 0.0,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = match &self.expand {
            Some(e) => relu6(e.forward_t(xs, train)),
            None => xs.shallow_clone(),
        };
        let h = relu6(self.depthwise.forward_t(&h, train));
        let h = self.project.forward_t(&h, train);
        if !self.skip {
            return h;
        }
        if train && self.drop_rate > 0.0 {
            // One keep/drop draw per sample, scaled so the expected output is unchanged.
            let keep = 1.0 - self.drop_rate;
            let n = h.size()[0];
            let mask = Tensor::ones([n, 1, 1, 1], (h.kind(), h.device())).bernoulli_p(keep);
            h * (mask / keep) + xs
        } else {
            h + xs
        }
    }
}

/// EfficientNet-Lite built from an [`ArchSpec`]; the classifier head has `spec.num_classes` outputs.
#[derive(Debug)]
pub struct EfficientNetLite {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    head: ConvBn,
    fc: nn::Linear,
    /// Dropout probability applied to the pooled features before `_fc` in training.
    pub dropout: f64,
}

impl EfficientNetLite {
    /// Creates the network's variables under `p` (normally the var store's root).
    pub fn new(p: &nn::Path, spec: &ArchSpec) -> EfficientNetLite {
        let stem = ConvBn::new(
            p / "_conv_stem",
            p / "_bn0",
            spec,
            3,
            spec.stem_channels,
            3,
            2,
            1,
        );
        let blocks_path = p / "_blocks";
        let blocks = spec
            .blocks()
            .iter()
            .map(|b| MbConv::new(&(&blocks_path / b.index), spec, b))
            .collect();
        let head = ConvBn::new(
            p / "_conv_head",
            p / "_bn1",
            spec,
            spec.last_block_channels(),
            spec.head_channels,
            1,
            1,
            1,
        );
        let fc = nn::linear(
            p / "_fc",
            spec.head_channels as i64,
            spec.num_classes as i64,
            Default::default(),
        );
        EfficientNetLite {
            stem,
            blocks,
            head,
            fc,
            dropout: 0.0,
        }
    }

    /// Stochastic depth as in EfficientNet: block `i` of `n` drops its residual branch with
    /// probability `rate · i / n` in training (the deepest blocks most often).
    pub fn set_drop_connect(&mut self, rate: f64) {
        let n = self.blocks.len() as f64;
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.drop_rate = rate * i as f64 / n;
        }
    }

    /// Number of MBConv blocks (16 for Lite0).
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Stem and the first `k` blocks: the part partial fine-tuning freezes and caches.
    pub fn prefix_t(&self, xs: &Tensor, k: usize, train: bool) -> Tensor {
        let mut h = relu6(self.stem.forward_t(xs, train));
        for b in &self.blocks[..k.min(self.blocks.len())] {
            h = b.forward_t(&h, train);
        }
        h
    }

    /// Blocks `k..` and the head conv, from the output of block `k − 1` (or of the stem when
    /// `k == 0`) to the last feature map `[N, 1280, h, w]`.
    pub fn suffix_features_t(&self, h: &Tensor, k: usize, train: bool) -> Tensor {
        let mut h = h.shallow_clone();
        for b in &self.blocks[k.min(self.blocks.len())..] {
            h = b.forward_t(&h, train);
        }
        relu6(self.head.forward_t(&h, train))
    }

    /// The last feature map `[N, 1280, h, w]` of a normalized `[N, 3, S, S]` batch.
    pub fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = self.prefix_t(xs, 0, train);
        self.suffix_features_t(&h, 0, train)
    }

    /// Global average pooling of a feature map: `[N, 1280]`.
    pub fn pooled(features: &Tensor) -> Tensor {
        features.mean_dim(&[2i64, 3][..], false, features.kind())
    }

    /// Logits from pooled features (dropout in training, then `_fc`).
    pub fn classify_t(&self, pooled: &Tensor, train: bool) -> Tensor {
        pooled.dropout(self.dropout, train).apply(&self.fc)
    }

    /// Class-activation maps `[N, num_classes, h, w]` of a last feature map: `_fc` applied at
    /// every cell, so each map's mean is its logit (what the model file's `class_maps` output
    /// computes; `dermo_model::maps`).
    pub fn class_maps_t(&self, features: &Tensor) -> Tensor {
        let bias = self.fc.bs.as_ref().map(|b| b.view([1, -1, 1, 1]));
        let maps = Tensor::einsum("kc,nchw->nkhw", &[&self.fc.ws, features], None::<i64>);
        match bias {
            Some(b) => maps + b,
            None => maps,
        }
    }

    /// Logits `[N, num_classes]` of a normalized `[N, 3, S, S]` batch.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.classify_t(&Self::pooled(&self.features_t(xs, train)), train)
    }
}

/// Whether a variable belongs to the frozen prefix (stem and the first `k` blocks).
pub fn in_prefix(name: &str, k: usize) -> bool {
    if name.starts_with("_conv_stem.") || name.starts_with("_bn0.") {
        return true;
    }
    name.strip_prefix("_blocks.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i < k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_membership_follows_block_index() {
        assert!(in_prefix("_conv_stem.weight", 0));
        assert!(in_prefix("_bn0.running_mean", 0));
        assert!(in_prefix("_blocks.3._bn0.weight", 4));
        assert!(!in_prefix("_blocks.4._bn0.weight", 4));
        assert!(!in_prefix("_blocks.10._expand_conv.weight", 4));
        assert!(!in_prefix("_bn1.weight", 16));
        assert!(!in_prefix("_fc.weight", 16));
    }

    #[test]
    fn names_and_shapes_match_the_state_dict_layout() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = ArchSpec::efficientnet_lite0(7);
        let net = EfficientNetLite::new(&vs.root(), &spec);
        let vars = vs.variables();
        // 247 ImageNet tensors: 2 fc, 5 + 5 for stem/head, blocks 0 has no expand.
        assert_eq!(vars.len(), 247);
        assert_eq!(vars["_blocks.1._expand_conv.weight"].size(), [96, 16, 1, 1]);
        assert_eq!(
            vars["_blocks.1._depthwise_conv.weight"].size(),
            [96, 1, 3, 3]
        );
        assert_eq!(vars["_fc.weight"].size(), [7, 1280]);
        assert!(!vars.contains_key("_blocks.0._expand_conv.weight"));
        let x = Tensor::zeros([2, 3, 64, 64], (tch::Kind::Float, tch::Device::Cpu));
        let f = net.features_t(&x, false);
        assert_eq!(f.size(), [2, 1280, 2, 2]);
        let h = net.prefix_t(&x, 6, false);
        let split = net.suffix_features_t(&h, 6, false);
        assert!(f.allclose(&split, 1e-5, 1e-5, false));
        assert_eq!(net.forward_t(&x, false).size(), [2, 7]);
    }

    #[test]
    fn drop_connect_drops_whole_residual_branches_in_training_only() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = EfficientNetLite::new(&vs.root(), &ArchSpec::efficientnet_lite0(7));
        net.set_drop_connect(0.8);
        assert_eq!(net.blocks[0].drop_rate, 0.0);
        assert!((net.blocks[8].drop_rate - 0.4).abs() < 1e-12);
        let block = &net.blocks[14]; // 192 → 192, stride 1: has the skip
        assert!(block.skip);
        let x = Tensor::randn([64, 192, 4, 4], (tch::Kind::Float, tch::Device::Cpu));
        let per_sample_change = |y: &Tensor| (y - &x).abs().flatten(1, -1).amax([1], false);
        let y = block.forward_t(&x, true);
        let dropped = i64::try_from(per_sample_change(&y).eq(0.0).sum(tch::Kind::Int64)).unwrap();
        // p = 0.7 per sample: 64 draws land well inside (10, 60).
        assert!((10..60).contains(&dropped), "{dropped} of 64 dropped");
        let eval = block.forward_t(&x, false);
        assert!(eval.equal(&block.forward_t(&x, false)));
        assert_eq!(
            i64::try_from(per_sample_change(&eval).eq(0.0).sum(tch::Kind::Int64)).unwrap(),
            0
        );
    }
}
