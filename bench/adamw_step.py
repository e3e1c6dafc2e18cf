#!/usr/bin/env python3
"""One AdamW update over EfficientNet-Lite0's 149 parameter tensors, three ways, on CPU.

- textbook: the expression dermo's optimizer spelled out before 2026-12-03 (eight temporaries a tensor);
- in-place: dermo's optimizer now (host/src/train/optim.rs: lerp_, addcdiv_; two temporaries);
- torch: torch.optim.AdamW as a PyTorch user gets it on CPU (its single-tensor loop).
The same libtorch kernels run under tch, so the gap carries over to `dermo train`.
Usage: adamw_step.py [--threads N]; prints ms per update, best of 5 blocks of 10, two rounds.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import EfficientNetLite0  # noqa: E402

B1, B2, EPS, LR, WD = 0.9, 0.999, 1e-8, 1e-4, 1e-2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ps = [p.detach().clone() for p in EfficientNetLite0(7).parameters()]
    gs = [torch.randn_like(p) for p in ps]
    ms = [torch.zeros_like(p) for p in ps]
    vs = [torch.zeros_like(p) for p in ps]

    def textbook(t):
        for p, g, m, v in zip(ps, gs, ms, vs):
            if p.dim() > 1:
                p.mul_(1 - LR * WD)
            m.mul_(B1)
            m += g * (1 - B1)
            v.mul_(B2)
            v += g.square() * (1 - B2)
            denom = (v / (1 - B2**t)).sqrt() + EPS
            p -= (m / denom) * (LR / (1 - B1**t))

    def in_place(t):
        for p, g, m, v in zip(ps, gs, ms, vs):
            if p.dim() > 1:
                p.mul_(1 - LR * WD)
            m.lerp_(g, 1 - B1)
            v.lerp_(g.square(), 1 - B2)
            scale = -(1 - B1**t) / LR
            d = v.sqrt()
            d.mul_(scale / (1 - B2**t) ** 0.5)
            d.add_(scale * EPS)
            p.addcdiv_(m, d)

    opt = torch.optim.AdamW([p.requires_grad_() for p in ps], lr=LR, weight_decay=WD)
    for p, g in zip(ps, gs):
        p.grad = g

    def torch_adamw(_t):
        opt.step()

    print(f"{len(ps)} tensors, {sum(p.numel() for p in ps)} parameters, {torch.get_num_threads()} threads")
    for name, f in [("textbook", textbook), ("in-place", in_place), ("torch.optim.AdamW", torch_adamw)] * 2:
        with torch.no_grad():
            for t in range(1, 4):
                f(t)
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for t in range(1, 11):
                    f(t)
                best = min(best, (time.perf_counter() - t0) / 10)
        print(f"{name}: {best * 1e3:.2f} ms per update")


if __name__ == "__main__":
    main()
