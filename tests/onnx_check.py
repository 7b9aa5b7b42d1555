#!/usr/bin/env python3
"""onnx_check.py - runs an ONNX file exported by deepsky in independent runtimes and compares
the outputs with deepsky's (tests/test_onnx.c drives it).

    onnx_check.py --runtime ort|opencv MODEL.onnx --input NAME=X.npy ... --expect NAME=Y.npy ...

ort: onnx's checker (full check, with shape inference) then onnxruntime. opencv: OpenCV's dnn
(cv2.dnn.readNetFromONNX). Prints one line per output: "<runtime> <name> max_abs=... rel=...",
where rel = max |got - want| / max |want|; fails (exit 1) when rel > --tol. Exit 77 (skip) with
the reason on stderr when the runtime cannot be imported, or OpenCV cannot read the model (an
op it does not support)."""
import argparse
import sys

SKIP = 77


def pairs(items):
    out = []
    for it in items:
        name, _, path = it.partition("=")
        out.append((name, path))
    return out


def run_ort(path, feeds, names):
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        print(f"onnx or onnxruntime not importable: {e}", file=sys.stderr)
        sys.exit(SKIP)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(names, feeds)


def run_opencv(path, feeds, names):
    try:
        import cv2
    except ImportError as e:
        print(f"cv2 not importable: {e}", file=sys.stderr)
        sys.exit(SKIP)
    try:
        net = cv2.dnn.readNetFromONNX(path)
        for k, v in feeds.items():
            net.setInput(v, k)
        outs = net.forward(names)
    except cv2.error as e:
        msg = " ".join(str(e).split())
        print(f"OpenCV {cv2.__version__} dnn cannot run it: {msg[-300:]}", file=sys.stderr)
        sys.exit(SKIP)
    return outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--runtime", choices=["ort", "opencv"], required=True)
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    import numpy as np
    feeds = {n: np.load(p).astype(np.float32) for n, p in pairs(a.input)}
    want = [(n, np.load(p)) for n, p in pairs(a.expect)]
    names = [n for n, _ in want]
    run = run_ort if a.runtime == "ort" else run_opencv
    got = run(a.model, feeds, names)
    bad = 0
    for (name, w), g in zip(want, got):
        g = np.asarray(g, dtype=np.float64).reshape(w.shape)
        diff = float(np.max(np.abs(g - w))) if w.size else 0.0
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        rel = diff / scale if scale > 0 else diff
        ok = rel <= a.tol and np.all(np.isfinite(g))
        bad += not ok
        print(f"{a.runtime} {name} shape={list(w.shape)} max_abs={diff:.3g} rel={rel:.3g}"
              f"{'' if ok else ' FAIL'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
