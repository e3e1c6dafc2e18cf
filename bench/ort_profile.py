"""ONNX Runtime's own per-node profile of a dermo model file, grouped by kind of operator with the
rules of `dermo-scope bench --profile` (model/src/profile.rs), for `scripts/bench profile`.

usage: ort_profile.py --input INPUT.f32 --size S [--frames N] [--warmup W] [--threads T] MODEL.onnx

Runs W untimed and N timed frames on the same input, batch 1, with SessionOptions.enable_profiling
(otherwise as bench/ort_latency.py: CPU provider, default graph optimizations), then reads the JSON
trace: each `*_kernel_time` node event of the timed runs is charged to the ONNX node it comes from
(the node of that name, else the longest node name it starts with: ORT's fused and re-laid-out
nodes keep the original name as a prefix; a Conv that ORT named after the activation or add it
absorbed, `blocks.1.dw_nchwc`, counts with the Conv that feeds that node), and that node's kind is read from its op_type and
attributes:

- depthwise k×k stride s: Conv with group == input channels > 1 (kernel_shape, strides);
- stem: any other Conv whose data input comes from the graph input through no other Conv;
- head: the classifier (Gemm / MatMul, or a Conv whose output is a graph output: the class maps)
  and the Conv upstream of the classifier's data input (through non-Conv nodes);
- 1×1 conv: every other 1×1, group-1 Conv; conv k×k stride s: any other Conv;
- pooling: GlobalAveragePool, AveragePool, MaxPool, Reduce*;
- quantize/dequantize: QuantizeLinear, DequantizeLinear and other *Quantize* ops;
- elementwise: Add, Mul, Sub, Div, Clip, Relu, Sigmoid, Max, Min, …;
- other: everything else.

An event with no ONNX node (ORT's own layout nodes, e.g. ReorderInput) is grouped by its op_name
with the last four rules. Prints a table, then one line `frames=… total_ms=… operators_ms=…
KEY_ms=… KEY_nodes=… other_ops=…` with dermo-scope's keys (other_ops: the op names counted as
other); total_ms is the mean `model_run` event.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Clip", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Max", "Min", "Exp", "Neg", "Abs", "Sqrt", "Pow", "Erf", "Gelu",
    "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "Sum",
}
POOL = {"GlobalAveragePool", "AveragePool", "MaxPool", "GlobalMaxPool", "QLinearGlobalAveragePool",
        "QLinearAveragePool"}
DENSE = {"Gemm", "MatMul", "QLinearMatMul", "MatMulInteger", "QGemm"}
CONV = {"Conv", "QLinearConv", "ConvInteger", "FusedConv"}


def label(kind):
    name = kind[0]
    if name in ("dw", "conv"):
        (kh, kw), (sh, sw) = kind[1], kind[2]
        stride = str(sh) if sh == sw else f"{sh}×{sw}"
        return f"{'depthwise' if name == 'dw' else 'conv'} {kh}×{kw} stride {stride}"
    return {
        "stem": "stem (first conv)",
        "conv1x1": "1×1 conv",
        "head": "head (last 1×1 conv + classifier)",
        "pooling": "pooling",
        "elementwise": "elementwise (add/mul/activation/clip)",
        "quant": "quantize/dequantize",
        "other": "other",
    }[name]


def key(kind):
    name = kind[0]
    if name in ("dw", "conv"):
        (kh, kw), (sh, sw) = kind[1], kind[2]
        stride = str(sh) if sh == sw else f"{sh}x{sw}"
        return f"{name}{kh}x{kw}s{stride}"
    return name


# The table's order: dermo_model::profile::OpKind's.
ORDER = ["stem", "conv1x1", "dw", "conv", "head", "pooling", "elementwise", "quant", "other"]
ALWAYS = [("stem",), ("conv1x1",), ("head",), ("pooling",), ("elementwise",), ("quant",), ("other",)]


def sort_key(kind):
    return (ORDER.index(kind[0]),) + tuple(tuple(x) for x in kind[1:])


def op_only_kind(op_type):
    if op_type in POOL or op_type.startswith("Reduce"):
        return ("pooling",)
    if "quantize" in op_type.lower():
        return ("quant",)
    if op_type in ELEMENTWISE:
        return ("elementwise",)
    return ("other",)


def unit_kinds(graph):
    """The kind of every ONNX node, by name, from its op_type and attributes."""
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    # A weight behind a DequantizeLinear (int8 files) has the shape of its quantized initializer.
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in shapes:
            shapes[n.output[0]] = shapes[n.input[0]]
    outputs = {o.name for o in graph.output}

    def attrs(n):
        return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}

    def conv(n):
        if n.op_type not in CONV:
            return None
        a = attrs(n)
        w = shapes.get(n.input[3] if n.op_type == "QLinearConv" else n.input[1], [])
        kernel = list(a.get("kernel_shape", w[2:4] or [1, 1]))
        stride = list(a.get("strides", [1, 1]))
        group = int(a.get("group", 1))
        input_channels = w[1] * group if len(w) > 1 else 0
        return kernel, stride, group, input_channels

    def depthwise(c):
        return c[2] > 1 and c[2] == c[3]

    def pointwise(c):
        return c[0] == [1, 1] and c[2] == 1

    def classifier(n, c):
        return bool(outputs.intersection(n.output)) if c else n.op_type in DENSE

    nodes = list(graph.node)
    convs = [conv(n) for n in nodes]
    made_by = {o: i for i, n in enumerate(nodes) for o in n.output}
    inputs = {i.name for i in graph.input}

    def upstream_conv(i):
        """The first Conv upstream of node i's data input, through non-Conv nodes; -1: the input."""
        x = nodes[i].input[0]
        while True:
            if x in inputs:
                return -1
            if x not in made_by:
                return None
            if convs[made_by[x]]:
                return made_by[x]
            x = nodes[made_by[x]].input[0]

    heads = {upstream_conv(i) for i, (n, c) in enumerate(zip(nodes, convs)) if classifier(n, c)}
    kinds = {}
    fed_by = {}
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    for i, (n, c) in enumerate(zip(nodes, convs)):
        if not c:
            # The latest convolution among its inputs: what a fused conv named after it computes.
            feeding = [producer[x] for x in n.input if x in producer and convs[producer[x]]]
            if feeding:
                fed_by[n.name] = nodes[max(feeding)].name
        if c:
            if depthwise(c):
                kind = ("dw", tuple(c[0]), tuple(c[1]))
            elif upstream_conv(i) == -1:
                kind = ("stem",)
            elif i in heads or classifier(n, c):
                kind = ("head",)
            elif pointwise(c):
                kind = ("conv1x1",)
            else:
                kind = ("conv", tuple(c[0]), tuple(c[1]))
        elif classifier(n, c):
            kind = ("head",)
        else:
            kind = op_only_kind(n.op_type)
        kinds[n.name] = kind
    return kinds, fed_by


def is_product(op_name):
    return any(p in op_name for p in ("Conv", "MatMul", "Gemm"))


def unit_of(name, kinds):
    if name in kinds:
        return name
    best = None
    for k in kinds:
        if name.startswith(k) and (best is None or len(k) > len(best)):
            best = k
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trace", help="keep ORT's JSON trace here")
    ap.add_argument("model")
    a = ap.parse_args()
    x = np.fromfile(a.input, dtype="<f4").reshape(1, 3, a.size, a.size)
    kinds, fed_by = unit_kinds(onnx.load(a.model).graph)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(os.path.dirname(a.trace or a.input) or ".", "ort_profile")
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    for _ in range(a.warmup + a.frames):
        sess.run(None, {"input": x})
    trace = sess.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    if a.trace:
        os.replace(trace, a.trace)
    else:
        os.remove(trace)

    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    timed = runs[-a.frames:]
    if len(timed) != a.frames:
        sys.exit(f"ort_profile.py: {len(runs)} model_run events in the trace, expected {a.warmup + a.frames}")
    start = timed[0]["ts"]
    total_ms = sum(e["dur"] for e in timed) / 1e3 / a.frames

    us = {}
    nodes = {}
    ops = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
            continue
        name = e["name"][: -len("_kernel_time")]
        op_name = e.get("args", {}).get("op_name", "")
        unit = unit_of(name, kinds)
        if unit in fed_by and is_product(op_name):
            unit = fed_by[unit]
        kind = kinds[unit] if unit else op_only_kind(op_name)
        us[kind] = us.get(kind, 0) + e["dur"]
        nodes.setdefault(kind, set()).add(name)
        ops.setdefault(kind, set()).add(op_name)

    groups = sorted(set(ALWAYS) | set(us) | {k for k in kinds.values() if k[0] == "dw"},
                    key=sort_key)
    width = max(24, *(len(label(k)) for k in groups))
    print(f"ONNX Runtime {ort.__version__} per-node time: {a.model}, {a.frames} frames "
          f"(mean per frame), {a.threads} thread(s)")
    print(f"{'kind':{width}}  {'nodes':>5}  {'ms/frame':>9}  {'share':>8}")
    line = []
    other_ops = ",".join(sorted(ops.get(("other",), ()))) or "-"
    ops = 0.0
    count = 0
    for k in groups:
        ms = us.get(k, 0) / 1e3 / a.frames
        n = len(nodes.get(k, ()))
        ops += ms
        count += n
        print(f"{label(k):{width}}  {n:>5}  {ms:>9.3f}  {100 * ms / total_ms:>6.1f} %")
        line.append(f"{key(k)}_ms={ms:.3f} {key(k)}_nodes={n}")
    print(f"{'sum of operators':{width}}  {count:>5}  {ops:>9.3f}  {100 * ops / total_ms:>6.1f} %")
    print(f"{'total (model_run)':{width}}  {'':>5}  {total_ms:>9.3f}  {100.0:>6.1f} %")
    print(f"frames={a.frames} total_ms={total_ms:.3f} operators_ms={ops:.3f} " + " ".join(line)
          + f" other_ops={other_ops} ort={ort.__version__}")


if __name__ == "__main__":
    main()
