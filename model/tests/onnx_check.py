"""Independent reader for dermo model files: onnx.checker, then ONNX Runtime on a raw f32 input.

usage: onnx_check.py MODEL.onnx INPUT.f32 N C H W
Prints JSON: {"logits": [...], "pooled": [...] | null, "class_maps": [...] | null, "opset": 13,
"ir_version": 8}.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, raw_path = sys.argv[1], sys.argv[2]
    shape = [int(d) for d in sys.argv[3:7]]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    x = np.fromfile(raw_path, dtype="<f4").reshape(shape)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, {"input": x})))
    pooled = None
    if "features" in outs:
        pooled = outs["features"].mean(axis=(2, 3)).reshape(-1).tolist()
    print(json.dumps({
        "logits": outs["logits"].reshape(-1).tolist(),
        "pooled": pooled,
        "class_maps": outs["class_maps"].reshape(-1).tolist() if "class_maps" in outs else None,
        "opset": model.opset_import[0].version,
        "ir_version": model.ir_version,
    }))


if __name__ == "__main__":
    main()
