#!/usr/bin/python3
"""run.py - the benchmark runner: deepsky against PyTorch on the networks of bench/models/.

    /usr/bin/python3 bench/run.py --bin build/bench/deepsky_bench [--quick] [--blocks N]
                                  [--models mlp,lenet,...] [--threads 1,2]

`make bench` and `make bench-quick` run it. It uses the standard library only (PyTorch runs in
the child processes). A block is, for every model and thread count, one deepsky process
(deepsky_bench) and one PyTorch process (torch_bench.py) run one after the other, in an order
that alternates from block to block, so that machine noise hits both alike; every block also
times OpenBLAS sgemm on a 2048x2048 product (the practical peak of the machine) at each thread
count. Each process trains (warm-up, then a timed window), then times inference at the
training batch size, at 256 and at 1, and prints one JSON line.

Ratios are deepsky / PyTorch, taken within each block (the two ran seconds apart) and then
summarized by their minimum, median and maximum over the blocks.

FLOPs: the multiply-adds of the convolution and dense layers, counted from the layer shapes
(torch_bench.py counts them with forward hooks; the parameter counts of both frameworks are
checked to match). A forward pass is 2 x MACs per sample; a training step 3 x the forward
(forward, gradient of the input, gradient of the weights), i.e. 6 x MACs per sample.

Writes bench/RESULTS.md and bench/results.csv (with --quick: RESULTS-quick.md and
results-quick.csv), and prints the tables. With README.md holding the markers
<!-- BENCH:BEGIN --> and <!-- BENCH:END -->, a full run also puts the summary table between them.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"

# name, training batch size, description
MODELS = [
    ("mlp", 64, "MLP 784-256-128-10, ReLU, softmax cross-entropy"),
    ("lenet", 64, "LeNet-5 on 1x28x28 (conv 6@5x5 pad 2, pool, conv 16@5x5, pool, 120-84-10)"),
    ("galaxy", 32, "galaxy CNN 1x64x64: 3 x (conv 3x3 same 32/64/128 + ReLU + max pool 2), "
                   "dense 128, dropout 0.5, dense 2, MSE"),
    ("galaxy_bn", 32, "the galaxy CNN with batch norm after each convolution"),
    ("spectra", 64, "1-D CNN on 1x4096: conv1d 16@7, pool 4, conv1d 32@7, pool 4, conv1d 64@7, "
                    "global average pool, dense 64, dense 3, MSE"),
]
INFER_BATCH = 256
SGEMM_SIZE = 2048

FULL = dict(blocks=5, warmup=0.4, time=1.5, infer_time=0.6, min_iters=3, sgemm_time=0.6)
QUICK = dict(blocks=2, warmup=0.0, time=0.2, infer_time=0.05, min_iters=1, sgemm_time=0.1)


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def pkg_version(name):
    return sh(["dpkg-query", "-W", "-f=${Version}", name]) or "?"


def machine_info():
    model, flags, ncpu = "?", set(), 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k == "model name":
                    model = v.strip()
                    ncpu += 1
                elif k == "flags" and not flags:
                    flags = set(v.split())
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    simd = [x for x in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                        "avx512_bf16") if x in flags]
    cc = sh(["cc", "--version"]).splitlines()
    return {
        "cpu": model, "cores": ncpu or os.cpu_count(), "simd": " ".join(simd) or "none",
        "memory": mem, "kernel": platform.release(),
        "openblas": pkg_version("libopenblas0-openmp"),
        "torch_pkg": pkg_version("python3-torch"),
        "cc": cc[0] if cc else "?",
    }


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def run_child(cmd, threads, torch):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    if torch:
        env["OPENBLAS_NUM_THREADS"] = "1"   # torch's own threads do the parallel work
    env["BENCH_T0"] = repr(time.time())
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        sys.stderr.write(f"bench: command failed (exit {p.returncode}): {' '.join(cmd)}\n"
                         f"{p.stderr[-2000:]}{p.stdout[-2000:]}\n")
        sys.exit(1)
    return json.loads(lines[-1])


def fmt(v, digits=3):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e5:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bench", "deepsky_bench"))
    ap.add_argument("--quick", action="store_true", help="a few seconds per model (smoke test)")
    ap.add_argument("--blocks", type=int, help="blocks per model (default 5; quick 2)")
    ap.add_argument("--models", help="comma-separated subset of " + ",".join(m[0] for m in MODELS))
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    a = ap.parse_args()
    cfg = dict(QUICK if a.quick else FULL)
    if a.blocks:
        cfg["blocks"] = a.blocks
    models = MODELS
    if a.models:
        want = a.models.split(",")
        models = [m for m in MODELS if m[0] in want]
        if len(models) != len(want):
            ap.error(f"unknown model in '{a.models}'")
    threads = [int(t) for t in a.threads.split(",")]
    bin_path = a.bin if os.path.isabs(a.bin) else os.path.join(ROOT, a.bin)
    if not os.path.exists(bin_path):
        ap.error(f"{a.bin} not found: build it with make {os.path.relpath(bin_path, ROOT)}")
    suffix = "-quick" if a.quick else ""
    md_path = os.path.join(HERE, f"RESULTS{suffix}.md")
    csv_path = os.path.join(HERE, f"results{suffix}.csv")

    info = machine_info()
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    load_start = loadavg()
    t_start = time.time()
    rows = []      # raw measurements for the CSV
    res = {}       # (model, framework, threads) -> list of per-block JSON results
    sgemm = {}     # threads -> list of per-block best GFLOP/s
    torch_version = "?"

    def record(block, model, fw, nthr, metric, value):
        rows.append({"date": date, "block": block, "model": model, "framework": fw,
                     "threads": nthr, "metric": metric, "value": value})

    for block in range(cfg["blocks"]):
        for nthr in threads:
            r = run_child([bin_path, "--sgemm", str(SGEMM_SIZE), "--threads", str(nthr),
                           "--time", str(cfg["sgemm_time"])], nthr, False)
            sgemm.setdefault(nthr, []).append(r["gflops_best"])
            record(block, "sgemm2048", "openblas", nthr, "gflops_best", r["gflops_best"])
            record(block, "sgemm2048", "openblas", nthr, "gflops_median", r["gflops_median"])
        for name, batch, _ in models:
            model_file = os.path.join("bench", "models", name + ".model")
            common = ["--threads", None, "--batch", str(batch), "--warmup", str(cfg["warmup"]),
                      "--time", str(cfg["time"]), "--infer-time", str(cfg["infer_time"]),
                      "--infer-batches", f"{batch},{INFER_BATCH},1",
                      "--min-iters", str(cfg["min_iters"])]
            for nthr in threads:
                common[1] = str(nthr)
                order = ["deepsky", "torch"] if block % 2 == 0 else ["torch", "deepsky"]
                out = {}
                for fw in order:
                    if fw == "deepsky":
                        cmd = [bin_path, model_file] + common
                    else:
                        cmd = [PY, os.path.join("bench", "torch_bench.py"), model_file] + common
                    out[fw] = r = run_child(cmd, nthr, fw == "torch")
                    res.setdefault((name, fw, nthr), []).append(r)
                    for k in ("train_samples_per_s", "startup_s", "first_step_s", "peak_rss_kb", "rss_start_kb",
                              "params", "loss", "train_steps"):
                        record(block, name, fw, nthr, k, r[k])
                    for ib, v in r["infer"].items():
                        record(block, name, fw, nthr, f"infer{ib}_samples_per_s",
                               v["samples_per_s"])
                        record(block, name, fw, nthr, f"infer{ib}_latency_ms", v["latency_ms"])
                    if fw == "torch":
                        torch_version = r.get("torch_version", "?")
                        record(block, name, fw, nthr, "macs_per_sample", r["macs_per_sample"])
                if out["deepsky"]["params"] != out["torch"]["params"]:
                    sys.exit(f"bench: {name}: deepsky has {out['deepsky']['params']} trainable "
                             f"parameters, PyTorch {out['torch']['params']}: not the same network")
                ds, tt = out["deepsky"], out["torch"]
                print(f"block {block + 1}/{cfg['blocks']}  {name:<10} {nthr} thread(s)  train "
                      f"{ds['train_samples_per_s']:9.1f} / {tt['train_samples_per_s']:9.1f} "
                      f"samples/s  (deepsky / PyTorch)", flush=True)

    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["date", "block", "model", "framework", "threads",
                                          "metric", "value"])
        w.writeheader()
        w.writerows(rows)

    md = report(info, cfg, date, load_start, loadavg(), time.time() - t_start, models, threads,
                res, sgemm, torch_version, a.quick, os.path.relpath(csv_path, ROOT))
    with open(md_path, "w") as f:
        f.write(md)
    print()
    print(md)
    print(f"bench: wrote {os.path.relpath(md_path, ROOT)} and {os.path.relpath(csv_path, ROOT)}")
    if not a.quick:
        update_readme(md, info, date)
    return 0


# ---- the report -------------------------------------------------------------------------------

def metric_fns(batch):
    """(label, getter, higher_is_better) of each metric compared."""
    return [
        ("training samples/s", lambda r: r["train_samples_per_s"], True),
        (f"inference samples/s, batch {batch}", lambda r: r["infer"][str(batch)]["samples_per_s"],
         True),
        (f"inference samples/s, batch {INFER_BATCH}",
         lambda r: r["infer"][str(INFER_BATCH)]["samples_per_s"], True),
        ("inference latency, batch 1 (ms)", lambda r: r["infer"]["1"]["latency_ms"], False),
        ("peak RSS in training (MB)", lambda r: r["peak_rss_kb"] / 1024, False),
        ("start-up: spawn to first step (s)", lambda r: r["startup_s"], False),
        ("spawn to end of first step (s)", lambda r: r["first_step_s"], False),
    ]


def ratio_stats(ds_list, tt_list, get):
    ratios = [get(d) / get(t) for d, t in zip(ds_list, tt_list) if get(t) > 0]
    return min(ratios), statistics.median(ratios), max(ratios)


def summary_table(models, threads, res):
    head = ["model"]
    for n in threads:
        head.append(f"train {n}T")
    head += [f"infer B {threads[-1]}T", f"infer 256 {threads[-1]}T",
             f"latency {threads[0]}T", f"peak RSS {threads[0]}T", f"start-up {threads[0]}T"]
    if len(threads) > 1:
        head.append(f"scaling {threads[0]}->{threads[-1]}T")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, batch, _ in models:
        fns = metric_fns(batch)
        cells = [name]
        t_hi, t_lo = threads[-1], threads[0]
        picks = [(0, n) for n in threads] + [(1, t_hi), (2, t_hi), (3, t_lo), (4, t_lo), (5, t_lo)]
        for idx, n in picks:
            med = ratio_stats(res[name, "deepsky", n], res[name, "torch", n], fns[idx][1])[1]
            cells.append(f"{med:.2f}")
        if len(threads) > 1:
            cells.append(f"{scaling_ratio(res, name, t_lo, t_hi)[1]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scalings(res, name, fw, lo, hi):
    get = metric_fns(1)[0][1]
    return [get(b) / get(a) for a, b in zip(res[name, fw, lo], res[name, fw, hi])]


def scaling_ratio(res, name, lo, hi):
    r = [d / t for d, t in zip(scalings(res, name, "deepsky", lo, hi),
                               scalings(res, name, "torch", lo, hi))]
    return min(r), statistics.median(r), max(r)


def report(info, cfg, date, load_start, load_end, seconds, models, threads, res, sgemm,
           torch_version, quick, csv_rel):
    L = []
    L.append("# deepsky vs PyTorch benchmarks" + (" (quick smoke test)" if quick else ""))
    L.append("")
    L.append(f"Written by `make bench{'-quick' if quick else ''}` (bench/run.py) on {date}; "
             f"every raw measurement is in `{csv_rel}`.")
    if quick:
        L.append("")
        L.append("**Quick run: 2 blocks of windows of a fraction of a second; a smoke test, "
                 "not a measurement.** `make bench` writes bench/RESULTS.md.")
    L.append("")
    L.append(f"- Machine: {info['cpu']}, {info['cores']} logical cores, {info['memory']}; "
             f"SIMD: {info['simd']}; Linux {info['kernel']}")
    L.append(f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end}; "
             f"run time {seconds / 60:.1f} min")
    L.append(f"- deepsky built with {info['cc']}, `-O3 -march=native`; OpenBLAS "
             f"{info['openblas']} (OpenMP build)")
    L.append(f"- PyTorch {torch_version} (Debian python3-torch {info['torch_pkg']}), oneDNN "
             f"convolutions, `torch.set_num_threads(N)`, OpenBLAS held to 1 thread "
             f"(`OPENBLAS_NUM_THREADS=1`); deepsky: `ds_set_num_threads(N)`; both "
             f"`OMP_NUM_THREADS=N`")
    sg = ", ".join(f"{n} thread{'s' if n > 1 else ''}: {statistics.median(v):.1f} GFLOP/s "
                   f"(max {max(v):.1f})" for n, v in sorted(sgemm.items()))
    L.append(f"- OpenBLAS sgemm {SGEMM_SIZE}x{SGEMM_SIZE} (median over blocks of the best "
             f"product), the practical peak: {sg}")
    L.append(f"- {cfg['blocks']} blocks; per process: training warm-up {cfg['warmup']} s then "
             f"a {cfg['time']} s timed window; inference warm-up "
             f"{cfg['warmup'] / 2} s then {cfg['infer_time']} s per batch size (every window "
             f"at least {cfg['min_iters']} iteration(s), every warm-up at least 1). Synthetic "
             f"data: N(0, 1) inputs, random class indices or N(0, 1) targets; Adam, lr 1e-3.")
    L.append("")
    L.append("Ratios are **deepsky / PyTorch**, computed within each block and summarized as "
             "min / median / max over the blocks. For samples/s and scaling, above 1 means "
             "deepsky is faster; for latency, memory and start-up, below 1 means deepsky is "
             "better. Peak RSS is the whole process (PyTorch's includes the Python interpreter "
             "and the torch libraries); start-up runs from the runner's spawn until the first "
             "training step starts (library, model, weights and data ready), and the next line "
             "to the end of that step. GFLOP/s count the convolution and dense layers only: 2 x "
             "MACs per sample forward, 6 x MACs per sample in training (forward, input "
             "gradient, weight gradient).")
    L.append("")
    L.append("## Summary (median ratios deepsky / PyTorch)")
    L.append("")
    L.append(summary_table(models, threads, res))
    L.append("")
    L.append("B is the training batch size of the model; nT: n threads. Scaling is deepsky's "
             "training speed-up from the lowest to the highest thread count over PyTorch's.")
    L.append("")
    for name, batch, desc in models:
        macs = res[name, "torch", threads[0]][0]["macs_per_sample"]
        params = res[name, "torch", threads[0]][0]["params"]
        L.append(f"## {name}")
        L.append("")
        L.append(f"{desc}; batch {batch}; {params:,} parameters; {macs / 1e6:.3f} M "
                 f"multiply-adds per sample forward (convolution and dense layers).")
        L.append("")
        L.append("| metric | threads | deepsky (median) | PyTorch (median) | ratio min | "
                 "ratio median | ratio max |")
        L.append("|---|---|---|---|---|---|---|")
        for label, get, _ in metric_fns(batch):
            for n in threads:
                d, t = res[name, "deepsky", n], res[name, "torch", n]
                lo, med, hi = ratio_stats(d, t, get)
                L.append(f"| {label} | {n} | {fmt(statistics.median(get(x) for x in d))} | "
                         f"{fmt(statistics.median(get(x) for x in t))} | {lo:.2f} | {med:.2f} | "
                         f"{hi:.2f} |")
        if len(threads) > 1:
            lo_t, hi_t = threads[0], threads[-1]
            sd = statistics.median(scalings(res, name, "deepsky", lo_t, hi_t))
            st = statistics.median(scalings(res, name, "torch", lo_t, hi_t))
            lo, med, hi = scaling_ratio(res, name, lo_t, hi_t)
            L.append(f"| training speed-up {lo_t} -> {hi_t} threads | | {sd:.2f} | {st:.2f} | "
                     f"{lo:.2f} | {med:.2f} | {hi:.2f} |")
        for mode, mult, getter in (
                ("training", 6, lambda r: r["train_samples_per_s"]),
                (f"inference batch {batch}", 2,
                 lambda r: r["infer"][str(batch)]["samples_per_s"])):
            for n in threads:
                peak = statistics.median(sgemm[n])
                g = [statistics.median(getter(x) for x in res[name, fw, n]) * mult * macs / 1e9
                     for fw in ("deepsky", "torch")]
                L.append(f"| conv+dense GFLOP/s, {mode} (% of sgemm) | {n} | {g[0]:.1f} "
                         f"({100 * g[0] / peak:.0f}%) | {g[1]:.1f} ({100 * g[1] / peak:.0f}%) "
                         f"| | | |")
        L.append("")
    return "\n".join(L)


def update_readme(md, info, date):
    path = os.path.join(ROOT, "README.md")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    m = re.search(r"(<!-- BENCH:BEGIN -->\n).*?(<!-- BENCH:END -->)", text, re.S)
    if not m:
        return
    summary = md.split("## Summary (median ratios deepsky / PyTorch)\n\n", 1)[1].split("\n\n")[0]
    block = (f"Median ratios deepsky / PyTorch measured by `make bench` on {date} ({info['cpu']}, "
             f"{info['cores']} cores, {info['simd']}). Above 1 deepsky is faster; for latency, "
             f"peak RSS and start-up, below 1 is better. Minima, maxima, absolute numbers and "
             f"the machine's sgemm peak are in [bench/RESULTS.md](bench/RESULTS.md).\n\n"
             + summary + "\n")
    text = text[:m.start()] + m.group(1) + block + m.group(2) + text[m.end():]
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print("bench: updated the table in README.md")


if __name__ == "__main__":
    sys.exit(main())
