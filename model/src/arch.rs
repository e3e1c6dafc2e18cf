//! EfficientNet-Lite0 as data: the host builds its `tch` module from this spec and the ONNX writer
//! builds its graph from the same spec, so the two can never disagree about the network.
//!
//! Lite variants drop squeeze-and-excitation and use ReLU6 (int8- and CPU-friendly), and keep the
//! stem (32 channels) and head (1280 channels) fixed. Parameter names follow the ImageNet state dict
//! (`_conv_stem.weight`, `_blocks.N._expand_conv.weight`, `_bn0.*`, `_fc.*`).

use serde::{Deserialize, Serialize};

/// One stage of inverted-residual (MBConv) blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub expand_ratio: usize,
    pub kernel: usize,
    pub stride: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub repeats: usize,
}

/// One MBConv block, expanded from its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Position in `_blocks.N`.
    pub index: usize,
    pub expand_ratio: usize,
    pub kernel: usize,
    pub stride: usize,
    pub in_channels: usize,
    pub out_channels: usize,
}

impl Block {
    /// Channels after the 1×1 expansion (equal to `in_channels` when there is no expansion).
    pub fn hidden_channels(&self) -> usize {
        self.in_channels * self.expand_ratio
    }
    /// Whether the block has a 1×1 expansion conv (`_expand_conv`, `_bn0`).
    pub fn has_expand(&self) -> bool {
        self.expand_ratio != 1
    }
    /// Identity skip: only when the block keeps resolution and width.
    pub fn has_skip(&self) -> bool {
        self.stride == 1 && self.in_channels == self.out_channels
    }
    /// The parameter-name prefix of this block, e.g. `_blocks.3.`.
    pub fn prefix(&self) -> String {
        format!("_blocks.{}.", self.index)
    }
}

/// The whole network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchSpec {
    pub name: String,
    pub stem_channels: usize,
    pub head_channels: usize,
    pub stages: Vec<Stage>,
    pub num_classes: usize,
    /// BatchNorm epsilon used in training and folded into the exported convolutions.
    pub bn_eps: f64,
    pub bn_momentum: f64,
}

impl ArchSpec {
    /// EfficientNet-Lite0 with a `num_classes`-way head.
    pub fn efficientnet_lite0(num_classes: usize) -> ArchSpec {
        let s = |e, k, st, i, o, r| Stage {
            expand_ratio: e,
            kernel: k,
            stride: st,
            in_channels: i,
            out_channels: o,
            repeats: r,
        };
        ArchSpec {
            name: "efficientnet-lite0".into(),
            stem_channels: 32,
            head_channels: 1280,
            stages: vec![
                s(1, 3, 1, 32, 16, 1),
                s(6, 3, 2, 16, 24, 2),
                s(6, 5, 2, 24, 40, 2),
                s(6, 3, 2, 40, 80, 3),
                s(6, 5, 1, 80, 112, 3),
                s(6, 5, 2, 112, 192, 4),
                s(6, 3, 1, 192, 320, 1),
            ],
            num_classes,
            bn_eps: 1e-3,
            bn_momentum: 0.01,
        }
    }

    /// The blocks in order; the first block of a stage carries its stride and input width.
    pub fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        for st in &self.stages {
            for r in 0..st.repeats {
                out.push(Block {
                    index: out.len(),
                    expand_ratio: st.expand_ratio,
                    kernel: st.kernel,
                    stride: if r == 0 { st.stride } else { 1 },
                    in_channels: if r == 0 {
                        st.in_channels
                    } else {
                        st.out_channels
                    },
                    out_channels: st.out_channels,
                });
            }
        }
        out
    }

    /// Channels entering the head conv (the last stage's output).
    pub fn last_block_channels(&self) -> usize {
        self.stages
            .last()
            .map(|s| s.out_channels)
            .unwrap_or(self.stem_channels)
    }
}

/// "Same"-style symmetric padding used by every conv of the network: `kernel / 2`.
pub fn padding(kernel: usize) -> usize {
    kernel / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite0_has_sixteen_blocks_and_chains_widths() {
        let a = ArchSpec::efficientnet_lite0(7);
        let b = a.blocks();
        assert_eq!(b.len(), 16);
        assert_eq!(b[0].in_channels, a.stem_channels);
        for w in b.windows(2) {
            assert_eq!(w[0].out_channels, w[1].in_channels);
        }
        assert_eq!(a.last_block_channels(), 320);
        assert_eq!(b.iter().filter(|x| x.stride == 2).count(), 4);
    }
}
