"""peer_common.py - what the peer scripts share: the model-file reader, the layer and
multiply-add counts, the synthetic data, and the timing protocol of bench/deepsky_bench.c.

The peers (torch_bench.py, tf_bench.py, jax_bench.py) build their networks from the same
bench/models/*.model files that deepsky reads, through read_model(), so that the layer shapes
cannot drift apart; bench/run.py checks that every framework counts the same trainable
parameters. A peer script calls run(name, version, make_peer): make_peer(spec, args, data)
returns an object with

    params              trainable parameters (int)
    train_step(k)       one training step (forward, backward, optimizer) on pool batch k;
                        returns a handle to the loss of that step, which may be still pending
    loss_value(h)       the loss of a handle as a float (after the timing)
    sync(h)             waits until the step of handle h has finished (asynchronous peers)
    infer(x)            returns a function running one forward pass in inference mode on the
                        NCHW float32 array x and returning once the output is computed

run() then times exactly as deepsky_bench does (first step, warm-up, timed training window,
inference at each batch size after a warm-up), checks that the loss fell, and prints one JSON
line. Asynchronous peers (JAX) keep at most one step in flight: step i is dispatched before
step i-1 is waited for, and the window closes only when its last step has finished.

This file uses the standard library only, except make_data and read_fashion (numpy), so that
bench/run.py can import it to count multiply-adds.
"""
import argparse
import collections
import json
import math
import os
import resource
import sys
import time

POOL_BATCHES = 4       # distinct synthetic batches cycled through while training
CHECK_STEPS = 4        # the loss check compares the first and the last CHECK_STEPS steps
MIN_STEPS = 12         # training steps at least (warm-up included), so that the two differ


class ModelError(Exception):
    pass


def _int_list(s, n, where, lo=1):
    """'3' or '3x5' -> a tuple of n ints, each at least lo."""
    try:
        v = tuple(int(x) for x in s.split("x"))
    except ValueError:
        raise ModelError(f"{where}: '{s}' is not a size") from None
    if len(v) == 1:
        v = v * n
    if len(v) != n or min(v) < lo:
        raise ModelError(f"{where}: '{s}' is not {n} size(s) of at least {lo}")
    return v


def _req(o, key, where):
    if key not in o:
        raise ModelError(f"{where}: option '{key}' is required")
    return o[key]


def _parse_line(line):
    words = line.split()
    opts = {}
    for w in words[1:]:
        k, eq, v = w.partition("=")
        if not eq:
            opts.setdefault("_args", []).append(w)
        else:
            opts[k] = v
    return words[0], opts


def _take(opts, allowed, where):
    extra = set(opts) - set(allowed) - {"name"}
    if extra:
        raise ModelError(f"{where}: option(s) {', '.join(sorted(extra))} not supported by the "
                         f"peer scripts")


def read_model(path):
    """The sequential network of a deepsky model file, as a dict:
    input (C, spatial...), layers (dicts, each with its output shape 'out'), loss ('mse' or
    'xent'), classes (0 for regression), lr, schedule ('constant' or 'cosine'). Only what the
    bench networks use is accepted; anything else is an error naming the file and line."""
    shape, layers, loss, lr, schedule = None, [], None, 1e-3, "constant"
    with open(path) as f:
        lines = f.readlines()
    for no, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, o = _parse_line(line)
        where = f"{path}:{no}: {kind}"
        if kind == "input":
            _take(o, ("shape",), where)
            shape = tuple(int(x) for x in _req(o, "shape", where).split("x"))
            continue
        if shape is None:
            raise ModelError(f"{where}: a layer before the input line")
        cur = layers[-1]["out"] if layers else shape
        if kind in ("conv1d", "conv2d"):
            _take(o, ("filters", "kernel", "stride", "padding", "activation"), where)
            nd = int(kind[4])
            if len(cur) != nd + 1:
                raise ModelError(f"{where}: input of shape {cur} is not {nd}-D with channels")
            k = _int_list(_req(o, "kernel", where), nd, where)
            s = _int_list(o.get("stride", "1"), nd, where)
            pad = o.get("padding", "valid")
            if pad == "same":
                if any(x != 1 for x in s) or any(x % 2 == 0 for x in k):
                    raise ModelError(f"{where}: padding=same needs stride 1 and odd kernels")
                p = tuple(x // 2 for x in k)
            elif pad == "valid":
                p = (0,) * nd
            else:
                p = _int_list(pad, nd, where, lo=0)
            act = o.get("activation", "linear")
            if act not in ("relu", "linear"):
                raise ModelError(f"{where}: activation '{act}' not supported by the peer scripts")
            f = int(_req(o, "filters", where))
            out = (f,) + tuple((n + 2 * pp - kk) // ss + 1
                               for n, pp, kk, ss in zip(cur[1:], p, k, s))
            layers.append(dict(kind="conv", nd=nd, cin=cur[0], filters=f, kernel=k, stride=s,
                               pad=p, relu=act == "relu", out=out))
        elif kind == "maxpool":
            _take(o, ("size", "stride"), where)
            nd = len(cur) - 1
            size = _int_list(o.get("size", "2"), nd, where)
            stride = _int_list(o["stride"], nd, where) if "stride" in o else size
            out = (cur[0],) + tuple((n - k) // s + 1 for n, k, s in zip(cur[1:], size, stride))
            layers.append(dict(kind="maxpool", nd=nd, size=size, stride=stride, out=out))
        elif kind == "flatten":
            _take(o, (), where)
            layers.append(dict(kind="flatten", out=(math.prod(cur),)))
        elif kind == "dense":
            _take(o, ("units", "activation"), where)
            if len(cur) != 1:
                raise ModelError(f"{where}: input of shape {cur}: flatten it first")
            act = o.get("activation", "linear")
            if act not in ("relu", "linear"):
                raise ModelError(f"{where}: activation '{act}' not supported by the peer scripts")
            u = int(_req(o, "units", where))
            layers.append(dict(kind="dense", fin=cur[0], units=u, relu=act == "relu", out=(u,)))
        elif kind == "dropout":
            _take(o, ("rate",), where)
            layers.append(dict(kind="dropout", rate=float(o.get("rate", "0.5")), out=cur))
        elif kind in ("batchnorm", "batch_normalization"):
            _take(o, ("momentum", "eps"), where)
            layers.append(dict(kind="batchnorm", nd=len(cur) - 1, channels=cur[0],
                               momentum=float(o.get("momentum", "0.1")),
                               eps=float(o.get("eps", "1e-5")), out=cur))
        elif kind == "relu":
            _take(o, (), where)
            layers.append(dict(kind="relu", out=cur))
        elif kind == "globalavgpool":
            _take(o, (), where)
            layers.append(dict(kind="globalavgpool", nd=len(cur) - 1, out=(cur[0],)))
        elif kind == "loss":
            args = o.pop("_args", [])
            if args == ["mse"]:
                _take(o, (), where)
                loss = "mse"
            elif args in (["categorical_crossentropy"], ["sparse_categorical_crossentropy"]):
                _take(o, ("from_logits",), where)
                if o.get("from_logits") != "true":
                    raise ModelError(f"{where}: the peer scripts need from_logits=true")
                loss = "xent"
            else:
                raise ModelError(f"{where}: loss {' '.join(args)} not supported by the peers")
        elif kind == "optimizer":
            args = o.pop("_args", [])
            _take(o, ("lr", "schedule"), where)
            if args != ["adam"]:
                raise ModelError(f"{where}: optimizer {' '.join(args)}: the peers run adam")
            lr = float(o.get("lr", "1e-3"))
            schedule = o.get("schedule", "constant")
            if schedule not in ("constant", "cosine"):
                raise ModelError(f"{where}: schedule {schedule}: the peers run constant or "
                                 f"cosine (over the run, to 0)")
        else:
            raise ModelError(f"{where}: layer not supported by the peer scripts")
    if shape is None or not layers or loss is None:
        raise ModelError(f"{path}: needs an input line, layers and a loss line")
    out = layers[-1]["out"]
    return dict(name=os.path.splitext(os.path.basename(path))[0], input=shape, layers=layers,
                loss=loss, classes=out[0] if loss == "xent" else 0, targets=out, lr=lr,
                schedule=schedule)


def read_fashion(folder, split):
    """Fashion-MNIST's gzipped IDX files <folder>/<split>-{images-idx3,labels-idx1}-ubyte.gz
    read as a user of numpy reads them (gzip, then the bytes after the header): images as
    uint8 [N, 28, 28], labels as uint8 [N]. split: 'train' or 't10k'."""
    import gzip
    import numpy as np

    def idx(name):
        with gzip.open(os.path.join(folder, f"{split}-{name}-ubyte.gz"), "rb") as f:
            raw = f.read()
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return idx("images-idx3"), idx("labels-idx1")


def count_params(spec):
    """Trainable parameters: weights and biases, batch-norm scale and shift."""
    n = 0
    for L in spec["layers"]:
        if L["kind"] == "conv":
            n += L["filters"] * (L["cin"] * math.prod(L["kernel"]) + 1)
        elif L["kind"] == "dense":
            n += L["units"] * (L["fin"] + 1)
        elif L["kind"] == "batchnorm":
            n += 2 * L["channels"]
    return n


def count_macs(spec):
    """Multiply-adds per sample of the convolution and dense layers (one forward pass)."""
    n = 0
    for L in spec["layers"]:
        if L["kind"] == "conv":
            n += math.prod(L["out"]) * L["cin"] * math.prod(L["kernel"])
        elif L["kind"] == "dense":
            n += L["units"] * L["fin"]
    return n


def make_data(spec, batch, seed=1234):
    """POOL_BATCHES synthetic batches, NCHW float32: N(0, 1) inputs; class indices (int64) or
    N(0, 1) targets."""
    import numpy as np
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((POOL_BATCHES, batch) + spec["input"], dtype=np.float32)
    if spec["classes"]:
        ys = rng.integers(0, spec["classes"], (POOL_BATCHES, batch), dtype=np.int64)
    else:
        ys = rng.standard_normal((POOL_BATCHES, batch) + spec["targets"], dtype=np.float32)
    return xs, ys


def parse_args(prog):
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--time", type=float, default=2.0)
    ap.add_argument("--infer-time", type=float, default=1.0)
    ap.add_argument("--infer-batches", default="")
    ap.add_argument("--min-iters", type=int, default=3)
    return ap


def _rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _train(peer, a):
    """First step, warm-up, timed window. Returns (startup, first_step, timed steps,
    samples/s, handles of the first and of the last CHECK_STEPS losses)."""
    t0_wall = float(os.environ.get("BENCH_T0", time.time()))
    first, last = [], collections.deque(maxlen=CHECK_STEPS)

    def step(i):
        h = peer.train_step(i % POOL_BATCHES)
        if last:
            peer.sync(last[-1])       # at most one step in flight
        last.append(h)
        if len(first) < CHECK_STEPS:
            first.append(h)
        return h

    startup = time.time() - t0_wall
    peer.sync(step(0))
    first_step = time.time() - t0_wall
    i = 1
    t_warm = time.perf_counter() + a.warmup
    while True:
        step(i)
        i += 1
        if time.perf_counter() >= t_warm and i + a.min_iters >= MIN_STEPS:
            break
    peer.sync(last[-1])
    timed = 0
    ts = time.perf_counter()
    te = ts + a.time
    while True:
        step(i)
        i += 1
        timed += 1
        if time.perf_counter() >= te and timed >= a.min_iters:
            break
    peer.sync(last[-1])
    tn = time.perf_counter()
    return startup, first_step, timed, timed * a.batch / (tn - ts), first, list(last)


def _infer(peer, spec, a):
    import numpy as np
    rng = np.random.default_rng(99)
    out = {}
    for ib in [int(s) for s in a.infer_batches.split(",") if s]:
        fn = peer.infer(rng.standard_normal((ib,) + spec["input"], dtype=np.float32))
        fn()
        tw = time.perf_counter() + a.warmup / 2
        while time.perf_counter() < tw:
            fn()
        calls = 0
        ts = time.perf_counter()
        te = ts + a.infer_time
        while True:
            fn()
            calls += 1
            tn = time.perf_counter()
            if tn >= te and calls >= a.min_iters:
                break
        out[str(ib)] = {"samples_per_s": calls * ib / (tn - ts),
                        "latency_ms": 1e3 * (tn - ts) / calls}
    return out


def check_loss(prog, name, first, last):
    """The mean loss of the last CHECK_STEPS steps (one per pool batch) must be finite and
    below that of the first CHECK_STEPS: else the network is not learning and its speed
    means nothing."""
    m0, m1 = sum(first) / len(first), sum(last) / len(last)
    if not (math.isfinite(m0) and math.isfinite(m1)) or not m1 < m0:
        sys.stderr.write(f"{prog}: {name}: the loss did not fall: mean of the first "
                         f"{len(first)} steps {m0:.6g}, of the last {len(last)} {m1:.6g} "
                         f"(first {first}, last {last})\n")
        sys.exit(1)
    return m0, m1


def run(prog, framework, version, make_peer, argv=None):
    a = parse_args(prog).parse_args(argv)
    rss_start = _rss_kb()
    try:
        spec = read_model(a.model)
    except (ModelError, OSError, KeyError, ValueError) as e:
        sys.exit(f"{prog}: {e}")
    xs, ys = make_data(spec, a.batch)
    peer = make_peer(spec, a, xs, ys)
    startup, first_step, timed, sps, first, last = _train(peer, a)
    rss_train = _rss_kb()
    infer = _infer(peer, spec, a)
    first = [peer.loss_value(h) for h in first]
    last = [peer.loss_value(h) for h in last]
    m0, m1 = check_loss(prog, spec["name"], first, last)
    print(json.dumps({
        "framework": framework, "version": version, "model": a.model, "threads": a.threads,
        "batch": a.batch, "params": int(peer.params), "startup_s": startup,
        "first_step_s": first_step, "train_steps": timed, "train_samples_per_s": sps,
        "loss": last[-1], "loss_first_mean": m0, "loss_last_mean": m1,
        "rss_start_kb": rss_start, "peak_rss_kb": rss_train, "infer": infer,
        "macs_per_sample": count_macs(spec)}))
    return 0
