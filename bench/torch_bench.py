#!/usr/bin/python3
"""torch_bench.py - the PyTorch side of the benchmark suite: the networks of bench/models/*.model
written in PyTorch, timed on synthetic data exactly as bench/deepsky_bench.c times deepsky.

    /usr/bin/python3 bench/torch_bench.py MODEL --threads N --batch B [--warmup S] [--time S]
                                          [--infer-time S] [--infer-batches B1,B2,...]
                                          [--min-iters K]

Prints one JSON line. bench/run.py runs it alternately with deepsky_bench. Threads: OpenMP
and intra-op threads are set to N (torch.set_num_threads); OpenBLAS is held to one thread
(OPENBLAS_NUM_THREADS=1, set before torch loads it) so that it does not fight torch's own
threads. Fast paths stay on (oneDNN convolutions, inference_mode, set_to_none gradients).
BENCH_T0 in the environment is the wall-clock time just before the runner started this
process; startup_s runs from then until the first training step starts (torch imported, the
model built, the data in memory), first_step_s until that step has ended.
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

POOL_BATCHES = 4


def build(name):
    """(model, input shape per sample, classes or 0, target shape per sample)."""
    if name == "mlp":
        m = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                          nn.ReLU(), nn.Linear(128, 10))
        return m, (1, 28, 28), 10, ()
    if name == "lenet":
        m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10))
        return m, (1, 28, 28), 10, ()
    if name in ("galaxy", "galaxy_bn"):
        bn = name == "galaxy_bn"
        layers, c = [], 1
        for f in (32, 64, 128):
            layers.append(nn.Conv2d(c, f, 3, padding="same"))
            if bn:
                layers.append(nn.BatchNorm2d(f))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            c = f
        layers += [nn.Flatten(), nn.Linear(128 * 8 * 8, 128), nn.ReLU(), nn.Dropout(0.5),
                   nn.Linear(128, 2)]
        return nn.Sequential(*layers), (1, 64, 64), 0, (2,)
    if name == "spectra":
        m = nn.Sequential(nn.Conv1d(1, 16, 7), nn.ReLU(), nn.MaxPool1d(4),
                          nn.Conv1d(16, 32, 7), nn.ReLU(), nn.MaxPool1d(4),
                          nn.Conv1d(32, 64, 7), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
                          nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
        return m, (1, 4096), 0, (3,)
    raise SystemExit(f"torch_bench: unknown model '{name}'")


def count_macs(model, in_shape):
    """Multiply-adds per sample of the convolution and dense layers (one forward pass)."""
    macs = []

    def hook(mod, inp, out):
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            k = 1
            for s in mod.kernel_size:
                k *= s
            macs.append(out.numel() * (mod.in_channels // mod.groups) * k)
        elif isinstance(mod, nn.Linear):
            macs.append(out.numel() * mod.in_features)

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    with torch.inference_mode():
        model(torch.zeros((1,) + in_shape))
    for h in hs:
        h.remove()
    return sum(macs)


def main():
    t0_wall = float(os.environ.get("BENCH_T0", time.time()))
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--time", type=float, default=2.0)
    ap.add_argument("--infer-time", type=float, default=1.0)
    ap.add_argument("--infer-batches", default="")
    ap.add_argument("--min-iters", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    name = os.path.splitext(os.path.basename(a.model))[0]
    torch.manual_seed(1234)
    model, in_shape, classes, y_shape = build(name)
    B = a.batch
    xs = torch.randn((POOL_BATCHES, B) + in_shape)
    if classes:
        ys = torch.randint(0, classes, (POOL_BATCHES, B))
        loss_fn = nn.CrossEntropyLoss()
    else:
        ys = torch.randn((POOL_BATCHES, B) + y_shape)
        loss_fn = nn.MSELoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step(i):
        k = i % POOL_BATCHES
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[k]), ys[k])
        loss.backward()
        opt.step()
        return loss

    startup = time.time() - t0_wall
    step(0)
    first_step = time.time() - t0_wall
    i = 1
    t_warm = time.perf_counter() + a.warmup
    while True:
        step(i)
        i += 1
        if time.perf_counter() >= t_warm:
            break
    timed = 0
    ts = time.perf_counter()
    te = ts + a.time
    while True:
        loss = step(i)
        i += 1
        timed += 1
        tn = time.perf_counter()
        if tn >= te and timed >= a.min_iters:
            break
    train_sps = timed * B / (tn - ts)
    last_loss = float(loss)
    rss_train = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    infer = {}
    model.eval()
    with torch.inference_mode():
        for ib in [int(s) for s in a.infer_batches.split(",") if s]:
            x = torch.randn((ib,) + in_shape)
            model(x)
            tw = time.perf_counter() + a.warmup / 2
            while time.perf_counter() < tw:
                model(x)
            calls = 0
            ts = time.perf_counter()
            te = ts + a.infer_time
            while True:
                model(x)
                calls += 1
                tn = time.perf_counter()
                if tn >= te and calls >= a.min_iters:
                    break
            infer[str(ib)] = {"samples_per_s": calls * ib / (tn - ts),
                              "latency_ms": 1e3 * (tn - ts) / calls}

    print(json.dumps({
        "framework": "torch", "model": a.model, "threads": torch.get_num_threads(),
        "batch": B, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "startup_s": startup, "first_step_s": first_step, "train_steps": timed, "train_samples_per_s": train_sps,
        "loss": last_loss, "rss_start_kb": rss_start, "peak_rss_kb": rss_train,
        "infer": infer, "macs_per_sample": count_macs(model, in_shape),
        "torch_version": torch.__version__}))
    return 0 if last_loss == last_loss else 1


if __name__ == "__main__":
    sys.exit(main())
