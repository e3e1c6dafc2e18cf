#!/usr/bin/env python3
"""PyTorch-eager reference for `scripts/bench`: training throughput of EfficientNet-Lite0.

Builds the same network as the Rust trainer (dermo_host::train::net: symmetric k/2 padding,
ReLU6, BN eps 1e-3, no squeeze-excite), loads the same ImageNet weights, swaps in a 7-way head
and times full fine-tune steps (forward, cross-entropy, backward, AdamW step) on CPU, or on a CUDA GPU
(`--device cuda`, with `--fp16` for fp16 autocast and loss scaling, as `dermo train` does there).
Prints one line: impl=pytorch-eager images_per_s=... batch=... size=... steps=... threads=...
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# (expand, kernel, stride, in, out, repeats) — mirrors dermo_model::arch::ArchSpec::efficientnet_lite0.
STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    def __init__(self, e, k, s, cin, cout):
        super().__init__()
        hidden = cin * e
        self.has_expand = e != 1
        self.skip = s == 1 and cin == cout
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, k, s, k // 2, groups=hidden, bias=False)
        self._bn1 = bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = bn(cout)

    def forward(self, x):
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = bn(32)
        blocks = []
        for e, k, s, cin, cout, r in STAGES:
            for i in range(r):
                blocks.append(MBConv(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


def load_pretrained(model, path, keep_fc):
    from safetensors.torch import load_file

    sd = load_file(path)
    if not keep_fc:
        sd = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("_fc.") or k.endswith("num_batches_tracked") for k in missing), missing


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="ImageNet safetensors (DERMO_PRETRAINED)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6, help="timed steps (after warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--channels-last", action="store_true", help="model and batch in channels_last")
    ap.add_argument("--bf16", action="store_true", help="forward under torch.autocast('cpu', bfloat16)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the steps run")
    ap.add_argument("--fp16", action="store_true", help="CUDA: forward under fp16 autocast, loss scaling")
    a = ap.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
    model = EfficientNetLite0(7)
    load_pretrained(model, a.weights, keep_fc=False)
    model = model.to(a.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2)
    x = torch.randn(a.batch, 3, a.size, a.size, device=a.device)
    y = torch.randint(0, 7, (a.batch,), device=a.device)
    scaler = torch.amp.GradScaler("cuda", enabled=a.fp16)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        if a.device == "cuda":
            with torch.autocast("cuda", dtype=torch.float16, enabled=a.fp16):
                logits = model(x)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = time.perf_counter() - t0
    print(
        f"impl=pytorch-eager images_per_s={a.batch * a.steps / dt:.3f} batch={a.batch} size={a.size} "
        f"steps={a.steps} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"channels_last={a.channels_last} bf16={a.bf16} device={a.device} fp16={a.fp16}"
    )

if __name__ == "__main__":
    main()
