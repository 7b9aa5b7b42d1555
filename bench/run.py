#!/usr/bin/python3
"""run.py - the benchmark runner: deepsky against its peers on the networks of bench/models/.

    /usr/bin/python3 bench/run.py --bin build/bench/deepsky_bench [--quick] [--blocks N]
                                  [--peers default|all|NAME,...] [--models mlp,lenet,...]
                                  [--threads 1,2]

`make bench` and `make bench-quick` run it (PEERS=all adds PyTorch 2.x). The peers:

    torch1.13  Debian's PyTorch 1.13 (python3-torch, run by /usr/bin/python3), torch_bench.py
    tf         TensorFlow/Keras from PyPI, a tf.function training step, tf_bench.py
    tf-xla     the same compiled with XLA (jit_compile=True), tf_bench.py --xla
    jax        JAX with optax, the whole step in one jax.jit, jax_bench.py
    torch2     PyTorch 2.x from PyPI, torch_bench.py (only with --peers all: ~3 GB of wheels)

The PyPI peers live in a virtual environment, bench/.venv, which this script makes and fills
with pip from bench/requirements-peers.txt (and requirements-peers-all.txt for --peers all)
the first time, or when those files change. Without a network it says so and runs the peers it
has. This script itself uses the standard library only; the frameworks run in child processes.

A block is, for every model and thread count, one process of each framework (deepsky_bench
and every peer script) run one after the other, in an order that rotates from block to block,
so that machine noise hits all alike; every block also times OpenBLAS sgemm on a 2048x2048
product (the practical peak of the machine) at each thread count. Every process, deepsky's
included, is pinned with taskset to cores 0..N-1 and given OMP_NUM_THREADS=N and its own
thread knob N. Each process trains (warm-up, then a timed window), then times inference at the
training batch size, at 256 and at 1, and prints one JSON line; each peer checks that its loss
fell (bench/peer_common.py), and this script that every framework has as many trainable
parameters as deepsky. The report also says how many cores other processes kept busy while
each process ran (from /proc/stat) and names the measurements that ran beside other work.

Ratios are deepsky / the fastest peer: for each model, metric and thread count, the peer with
the best median over the blocks, then the ratio within each block (the two ran seconds
apart), summarized by its minimum, median and maximum over the blocks.

FLOPs: the multiply-adds of the convolution and dense layers, counted from the layer shapes of
the model file (peer_common.count_macs). A forward pass is 2 x MACs per sample; a training step
3 x the forward (forward, gradient of the input, gradient of the weights), i.e. 6 x MACs.

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
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
VENV = os.path.join(HERE, ".venv")
VENV_PY = os.path.join(VENV, "bin", "python")
REQUIREMENTS = os.path.join(HERE, "requirements-peers.txt")
REQUIREMENTS_ALL = os.path.join(HERE, "requirements-peers-all.txt")
STAMP = os.path.join(VENV, "bench-installed.txt")   # requirement lines installed so far

sys.path.insert(0, HERE)
import peer_common  # noqa: E402  (standard library only)

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

# key: label, Python ("system" or "venv"), script and its options, modules it needs, extra env
PEERS = {
    "torch1.13": ("PyTorch 1.13", "system", ["torch_bench.py"], ["torch", "numpy"],
                  {"OPENBLAS_NUM_THREADS": "1"}),
    "tf": ("TF", "venv", ["tf_bench.py"], ["tensorflow", "keras", "numpy"], {}),
    "tf-xla": ("TF XLA", "venv", ["tf_bench.py", "--xla"], ["tensorflow", "keras", "numpy"], {}),
    "jax": ("JAX", "venv", ["jax_bench.py"], ["jax", "jaxlib", "optax", "numpy"], {}),
    "torch2": ("PyTorch 2", "venv", ["torch_bench.py"], ["torch", "numpy"],
               {"OPENBLAS_NUM_THREADS": "1"}),
}
DEFAULT_PEERS = ["torch1.13", "tf", "tf-xla", "jax"]
ALL_PEERS = DEFAULT_PEERS + ["torch2"]

FULL = dict(blocks=5, warmup=0.4, time=1.5, infer_time=0.6, min_iters=3, sgemm_time=0.6)
QUICK = dict(blocks=1, warmup=0.0, time=0.2, infer_time=0.05, min_iters=1, sgemm_time=0.1)


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
                        "avx512_bf16", "amx_tile") if x in flags]
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


# ---- the peers' virtual environment ---------------------------------------------------------

def requirement_lines(path):
    with open(path) as f:
        return {ln.split("#", 1)[0].strip() for ln in f} - {""}


def setup_venv(with_all):
    """Makes bench/.venv and installs the pinned peers into it, unless the stamp says they are
    there already. Returns False (having said why) when that fails, e.g. without a network."""
    files = [REQUIREMENTS] + ([REQUIREMENTS_ALL] if with_all else [])
    want = set().union(*(requirement_lines(f) for f in files))
    have = set()
    if os.path.exists(STAMP) and os.path.exists(VENV_PY):
        have = requirement_lines(STAMP)
        if want <= have:
            return True
    if not os.path.exists(VENV_PY):
        print(f"bench: making the peers' virtual environment {os.path.relpath(VENV, ROOT)}",
              flush=True)
        p = subprocess.run([PY, "-m", "venv", VENV], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"bench: cannot make {os.path.relpath(VENV, ROOT)} ({PY} -m venv: "
                  f"{(p.stderr or p.stdout).strip()[-500:]}); running with the peers there are",
                  flush=True)
            return False
    log = os.path.join(VENV, "pip.log")
    print(f"bench: installing {', '.join(sorted(want - have))} into "
          f"{os.path.relpath(VENV, ROOT)} with pip (once; the log is in "
          f"{os.path.relpath(log, ROOT)})", flush=True)
    cmd = [VENV_PY, "-m", "pip", "install", "--disable-pip-version-check", "--timeout", "60",
           "--retries", "2"]
    for f in files:
        cmd += ["-r", f]
    with open(log, "w") as lf:
        p = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        with open(log) as lf:
            tail = lf.read()[-1500:]
        print(f"{tail}\nbench: pip could not install the peers (exit {p.returncode}; no network "
              f"to the package index?): running with the peers there are", flush=True)
        return False
    with open(STAMP, "w") as f:
        f.write("\n".join(sorted(want | have)) + "\n")
    return True


PROBE = """import importlib.util, importlib.metadata as md, json, sys
mods = {m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}
vers = {}
for d in ("torch", "tensorflow-cpu", "tensorflow", "keras", "jax", "jaxlib", "optax", "numpy"):
    try:
        vers[d] = md.version(d)
    except md.PackageNotFoundError:
        pass
print(json.dumps({"modules": mods, "versions": vers}))
"""


def probe(python):
    mods = sorted({m for p in PEERS.values() for m in p[3]})
    try:
        p = subprocess.run([python, "-c", PROBE] + mods, capture_output=True, text=True,
                           timeout=60)
        return json.loads(p.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"modules": {}, "versions": {}}


def choose_peers(spec, quiet=False):
    """The peers asked for by --peers whose Python has what they import."""
    if spec in ("default", "all"):
        asked = DEFAULT_PEERS if spec == "default" else ALL_PEERS
    else:
        asked = [p for p in spec.split(",") if p]
        bad = [p for p in asked if p not in PEERS]
        if bad:
            sys.exit(f"bench: unknown peer(s) {', '.join(bad)} (peers: {', '.join(PEERS)}, or "
                     f"default, all)")
    venv_ok = True
    if any(PEERS[p][1] == "venv" for p in asked):
        venv_ok = setup_venv("torch2" in asked)
    found = {"system": probe(PY)}
    if os.path.exists(VENV_PY):
        found["venv"] = probe(VENV_PY)
    peers, missing = [], []
    for p in asked:
        where, mods = PEERS[p][1], PEERS[p][3]
        have = found.get(where, {}).get("modules", {})
        lack = [m for m in mods if not have.get(m)]
        if lack:
            missing.append(f"{PEERS[p][0]} (no {', '.join(lack)} in "
                           f"{VENV_PY if where == 'venv' else PY})")
        else:
            peers.append(p)
    if missing:
        print("bench: skipping " + "; ".join(missing) +
              ("" if venv_ok else "; the virtual environment could not be set up"), flush=True)
    return peers, missing, found


# ---- running one process ----------------------------------------------------------------------

def cores(n):
    return ",".join(str(i) for i in range(n))


def cpu_busy():
    """(busy, stolen) seconds of all CPUs since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal ...
    return (sum(v[:3]) + sum(v[5:7])) / hz, (v[7] if len(v) > 7 else 0) / hz


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_child(cmd, threads, extra_env=None):
    """Runs one measuring process; its JSON gains "foreign_cpu", the cores that other processes
    kept busy on average meanwhile (all of the machine's CPU time but this process's), and
    "steal_cpu", the cores the hypervisor took: a shared machine shows there."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env.update(extra_env or {})
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", cores(threads)] + cmd
    busy0, steal0, own0, t0 = *cpu_busy(), children_cpu(), time.time()
    env["BENCH_T0"] = repr(t0)
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    except subprocess.TimeoutExpired:
        sys.exit(f"bench: command still running after 900 s: {' '.join(cmd)}")
    busy1, steal1 = cpu_busy()
    wall = max(time.time() - t0, 1e-3)
    foreign = max(0.0, busy1 - busy0 - (children_cpu() - own0)) / wall
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        sys.stderr.write(f"bench: command failed (exit {p.returncode}): {' '.join(cmd)}\n"
                         f"{p.stderr[-3000:]}{p.stdout[-2000:]}\n")
        sys.exit(1)
    r = json.loads(lines[-1])
    r["foreign_cpu"], r["steal_cpu"] = foreign, (steal1 - steal0) / wall
    return r


def command(fw, bin_path, model_file, common):
    if fw == "deepsky":
        return [bin_path, model_file] + common, {}
    label, where, script, _, env = PEERS[fw]
    python = PY if where == "system" else VENV_PY
    return [python, os.path.join("bench", script[0]), model_file] + script[1:] + common, env


def label(fw):
    return "deepsky" if fw == "deepsky" else PEERS[fw][0]


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
    ap.add_argument("--quick", action="store_true",
                    help="one block of short windows (smoke test: every peer runs once)")
    ap.add_argument("--blocks", type=int, help="blocks per model (default 5; quick 1)")
    ap.add_argument("--peers", default="default",
                    help="default (" + ",".join(DEFAULT_PEERS) + "), all (adds torch2), "
                    "or a comma-separated list of " + ",".join(PEERS))
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
    if not shutil.which("taskset"):
        print("bench: taskset not found (util-linux): the processes are not pinned to cores",
              flush=True)
    peers, missing, found = choose_peers(a.peers)
    if not peers:
        sys.exit("bench: no peer to compare with")
    fws = ["deepsky"] + peers
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
    versions = {}  # framework -> version string its script printed

    def record(block, model, fw, nthr, metric, value):
        rows.append({"date": date, "block": block, "model": model, "framework": fw,
                     "threads": nthr, "metric": metric, "value": value})

    for block in range(cfg["blocks"]):
        for nthr in threads:
            r = run_child([bin_path, "--sgemm", str(SGEMM_SIZE), "--threads", str(nthr),
                           "--time", str(cfg["sgemm_time"])], nthr)
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
                k = block % len(fws)
                out = {}
                for fw in fws[k:] + fws[:k]:
                    cmd, env = command(fw, bin_path, model_file, common)
                    out[fw] = r = run_child(cmd, nthr, env)
                    res.setdefault((name, fw, nthr), []).append(r)
                    versions[fw] = r.get("version", "")
                    for key in ("train_samples_per_s", "startup_s", "first_step_s",
                                "peak_rss_kb", "rss_start_kb", "params", "loss", "train_steps",
                                "loss_first_mean", "loss_last_mean", "foreign_cpu",
                                "steal_cpu"):
                        if key in r:
                            record(block, name, fw, nthr, key, r[key])
                    for ib, v in r["infer"].items():
                        record(block, name, fw, nthr, f"infer{ib}_samples_per_s",
                               v["samples_per_s"])
                        record(block, name, fw, nthr, f"infer{ib}_latency_ms", v["latency_ms"])
                for fw in peers:
                    if out[fw]["params"] != out["deepsky"]["params"]:
                        sys.exit(f"bench: {name}: deepsky has {out['deepsky']['params']} "
                                 f"trainable parameters, {label(fw)} {out[fw]['params']}: not "
                                 f"the same network")
                print(f"block {block + 1}/{cfg['blocks']}  {name:<10} {nthr}T  train samples/s: "
                      + ", ".join(f"{label(fw)} {out[fw]['train_samples_per_s']:.0f}"
                                  for fw in fws), flush=True)

    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["date", "block", "model", "framework", "threads",
                                          "metric", "value"])
        w.writeheader()
        w.writerows(rows)

    ctx = dict(info=info, cfg=cfg, date=date, load=(load_start, loadavg()),
               seconds=time.time() - t_start, models=models, threads=threads, res=res,
               sgemm=sgemm, peers=peers, missing=missing, versions=versions, quick=a.quick,
               csv_rel=os.path.relpath(csv_path, ROOT))
    md = report(ctx)
    with open(md_path, "w") as f:
        f.write(md)
    print()
    print(md)
    print(f"bench: wrote {os.path.relpath(md_path, ROOT)} and {os.path.relpath(csv_path, ROOT)}")
    if not a.quick:
        update_readme(md, ctx)
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


def median_of(res, name, fw, n, get):
    return statistics.median(get(r) for r in res[name, fw, n])


def fastest(res, peers, name, n, get, higher):
    """The peer with the best median, and the ratios deepsky / that peer (min, median, max
    over the blocks)."""
    meds = {p: median_of(res, name, p, n, get) for p in peers}
    best = (max if higher else min)(peers, key=lambda p: meds[p])
    ratios = [get(d) / get(t) for d, t in zip(res[name, "deepsky", n], res[name, best, n])
              if get(t) > 0]
    if not ratios:
        return best, (float("nan"),) * 3
    return best, (min(ratios), statistics.median(ratios), max(ratios))


def summary_columns(threads):
    """(header, metric index, threads) of the summary table."""
    cols = [(f"train {n}T", 0, n) for n in threads]
    cols += [(f"infer 256 {n}T", 2, n) for n in threads]
    cols += [(f"latency {n}T", 3, n) for n in threads]
    cols += [(f"peak RSS {threads[0]}T", 4, threads[0]), (f"start-up {threads[0]}T", 5,
                                                         threads[0])]
    return cols


def summary_table(ctx):
    cols = summary_columns(ctx["threads"])
    head = ["model"] + [c[0] for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, batch, _ in ctx["models"]:
        fns = metric_fns(batch)
        cells = [name]
        for _, idx, n in cols:
            best, (_, med, _) = fastest(ctx["res"], ctx["peers"], name, n, fns[idx][1],
                                        fns[idx][2])
            cells.append(f"{med:.2f} {label(best)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling(res, name, fw, lo, hi):
    get = metric_fns(1)[0][1]
    return statistics.median(get(b) / get(a) for a, b in zip(res[name, fw, lo], res[name, fw, hi]))


def versions_lines(ctx):
    info, v = ctx["info"], ctx["versions"]
    desc = {
        "torch1.13": f"PyTorch {v.get('torch1.13', '?')} (Debian python3-torch "
                     f"{info['torch_pkg']}, /usr/bin/python3): eager, channels-first, oneDNN "
                     f"convolutions, `torch.set_num_threads(N)`, OpenBLAS held to 1 thread "
                     f"(`OPENBLAS_NUM_THREADS=1`)",
        "tf": f"TF: TensorFlow {v.get('tf', '?')}, `tensorflow-cpu` from PyPI (oneDNN on): a "
              f"`tf.function` step (GradientTape, Keras Adam), channels-last, intra-op N and "
              f"inter-op 1 threads",
        "tf-xla": "TF XLA: the same with `jit_compile=True` on the step and on inference",
        "jax": f"JAX {v.get('jax', '?')}: the whole step (forward, gradient, optax Adam) in one "
               f"`jax.jit` with donated buffers, channels-last; at 1 thread `XLA_FLAGS="
               f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`",
        "torch2": f"PyTorch {v.get('torch2', '?')} (PyPI's wheel, `make bench PEERS=all`): as "
                  f"PyTorch 1.13",
    }
    return [f"- {desc[p]}" for p in ctx["peers"]]


def interference_lines(ctx):
    """What else ran: other processes' CPU use and the hypervisor's steal while each measuring
    process ran, and the measurements it may have spoiled (other processes above 0.1 core)."""
    runs = [(r["foreign_cpu"], r["steal_cpu"], key, b) for key, rs in ctx["res"].items()
            for b, r in enumerate(rs)]
    if not runs:
        return []
    fo = sorted(x[0] for x in runs)
    st = sorted(x[1] for x in runs)
    bad = sorted((x for x in runs if x[0] > 0.1), key=lambda x: -x[0])
    L = [f"- Other processes kept {statistics.median(fo):.2f} cores busy (median over the "
         f"measuring processes; at most {fo[-1]:.2f}); the hypervisor stole "
         f"{statistics.median(st):.2f} (at most {st[-1]:.2f})."]
    if bad:
        L.append(f"  **{len(bad)} of {len(runs)} measurements ran beside more than 0.1 core of "
                 f"other work** and may be low: " + ", ".join(
                     f"{m} {label(fw)} {n}T block {b + 1} ({f:.2f})"
                     for f, _, (m, fw, n), b in bad[:12]) + (", ..." if len(bad) > 12 else ""))
    return L


def report(ctx):
    info, cfg, res, threads, peers = ctx["info"], ctx["cfg"], ctx["res"], ctx["threads"], \
        ctx["peers"]
    quick = ctx["quick"]
    L = []
    L.append("# deepsky against its peers" + (" (quick smoke test)" if quick else ""))
    L.append("")
    L.append(f"Written by `make bench{'-quick' if quick else ''}` (bench/run.py) on "
             f"{ctx['date']}; every raw measurement is in `{ctx['csv_rel']}`.")
    if quick:
        L.append("")
        L.append(f"**Quick run: {cfg['blocks']} block(s) of windows of a fraction of a second; "
                 f"a smoke test, not a measurement.** `make bench` writes bench/RESULTS.md.")
    L.append("")
    L.append(f"- Machine: {info['cpu']}, {info['cores']} logical cores, {info['memory']}; "
             f"SIMD: {info['simd']}; Linux {info['kernel']}")
    L.append(f"- Load average (1, 5, 15 min) at the start: {ctx['load'][0]}; at the end: "
             f"{ctx['load'][1]}; run time {ctx['seconds'] / 60:.1f} min")
    L.append(f"- deepsky built with {info['cc']}, `-O3 -march=native`; OpenBLAS "
             f"{info['openblas']} (OpenMP build); `ds_set_num_threads(N)`")
    L += versions_lines(ctx)
    if ctx["missing"]:
        L.append(f"- Not run: {'; '.join(ctx['missing'])}")
    L.append("- Every process is pinned with `taskset -c 0` (1 thread) or `-c 0,1` (2 threads) "
             "and given `OMP_NUM_THREADS=N`.")
    sg = ", ".join(f"{n} thread{'s' if n > 1 else ''}: {statistics.median(v):.1f} GFLOP/s "
                   f"(max {max(v):.1f})" for n, v in sorted(ctx["sgemm"].items()))
    L.append(f"- OpenBLAS sgemm {SGEMM_SIZE}x{SGEMM_SIZE} (median over blocks of the best "
             f"product), the practical peak: {sg}")
    L += interference_lines(ctx)
    L.append(f"- {cfg['blocks']} blocks, the order of the frameworks rotating from block to "
             f"block; per process: training warm-up {cfg['warmup']} s (and at least "
             f"{peer_common.MIN_STEPS} steps in all for the peers) then a {cfg['time']} s timed "
             f"window; inference warm-up {cfg['warmup'] / 2} s then {cfg['infer_time']} s per "
             f"batch size (every window at least {cfg['min_iters']} iteration(s), every "
             f"warm-up at least 1). Synthetic data: N(0, 1) inputs, random class indices or "
             f"N(0, 1) targets; Adam, lr 1e-3. Every peer checks that its mean loss over the "
             f"last {peer_common.CHECK_STEPS} steps is below that of the first "
             f"{peer_common.CHECK_STEPS}, and every framework has deepsky's number of trainable "
             f"parameters.")
    L.append("")
    L.append("Ratios are **deepsky / the fastest peer**: for each model, metric and thread "
             "count, the peer with the best median over the blocks (named beside the ratio), "
             "then the ratio within each block, summarized as min / median / max over the "
             "blocks. For samples/s, above 1 means deepsky is faster; for latency, memory and "
             "start-up, below 1 means deepsky is better (the peer compared is then the leanest "
             "or the quickest to start). Peak RSS is the whole process (a peer's includes the "
             "Python interpreter and its libraries); start-up runs from the runner's spawn "
             "until the first training step starts (library, model, weights and data ready), "
             "and the next line to the end of that step (a compiling peer compiles there). "
             "GFLOP/s count the convolution and dense layers only: 2 x MACs per sample forward, "
             "6 x MACs per sample in training (forward, input gradient, weight gradient).")
    L.append("")
    L.append("## Summary (median ratios deepsky / fastest peer)")
    L.append("")
    L.append(summary_table(ctx))
    L.append("")
    L.append("nT: n threads. Each cell names the peer compared (the fastest, or for RSS and "
             "start-up the leanest and the quickest).")
    L.append("")
    for name, batch, desc in ctx["models"]:
        L += model_section(ctx, name, batch, desc)
    return "\n".join(L)


def model_section(ctx, name, batch, desc):
    res, threads, peers = ctx["res"], ctx["threads"], ctx["peers"]
    fws = ["deepsky"] + peers
    spec = peer_common.read_model(os.path.join(HERE, "models", name + ".model"))
    macs = peer_common.count_macs(spec)
    params = res[name, "deepsky", threads[0]][0]["params"]
    L = [f"## {name}", "",
         f"{desc}; batch {batch}; {params:,} parameters; {macs / 1e6:.3f} M multiply-adds per "
         f"sample forward (convolution and dense layers). Medians over the blocks.", ""]
    head = ["metric", "threads"] + [label(f) for f in fws] + ["fastest peer", "ratio min",
                                                              "ratio median", "ratio max"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for lab, get, higher in metric_fns(batch):
        for n in threads:
            best, (lo, med, hi) = fastest(res, peers, name, n, get, higher)
            cells = [lab, str(n)] + [fmt(median_of(res, name, f, n, get)) for f in fws]
            cells += [label(best), f"{lo:.2f}", f"{med:.2f}", f"{hi:.2f}"]
            L.append("| " + " | ".join(cells) + " |")
    if len(threads) > 1:
        lo_t, hi_t = threads[0], threads[-1]
        cells = [f"training speed-up {lo_t} -> {hi_t} threads", ""]
        cells += [f"{scaling(res, name, f, lo_t, hi_t):.2f}" for f in fws] + [""] * 4
        L.append("| " + " | ".join(cells) + " |")
    for mode, mult, getter in (
            ("training", 6, lambda r: r["train_samples_per_s"]),
            (f"inference batch {batch}", 2, lambda r: r["infer"][str(batch)]["samples_per_s"])):
        for n in threads:
            peak = statistics.median(ctx["sgemm"][n])
            cells = [f"conv+dense GFLOP/s, {mode} (% of sgemm)", str(n)]
            for f in fws:
                g = median_of(res, name, f, n, getter) * mult * macs / 1e9
                cells.append(f"{g:.1f} ({100 * g / peak:.0f}%)")
            L.append("| " + " | ".join(cells + [""] * 4) + " |")
    for n in threads:
        cells = [f"loss, mean of the first -> last {peer_common.CHECK_STEPS} steps", str(n), "-"]
        for f in peers:
            rs = res[name, f, n]
            cells.append(f"{statistics.median(r['loss_first_mean'] for r in rs):.3g} -> "
                         f"{statistics.median(r['loss_last_mean'] for r in rs):.3g}")
        L.append("| " + " | ".join(cells + [""] * 4) + " |")
    L.append("")
    return L


def peer_name(p, version):
    """A peer and the version its script printed, e.g. 'JAX 0.10.2 (jaxlib 0.10.2, ...)'."""
    if p.startswith("torch"):
        return f"PyTorch {version}"
    if p.startswith("tf"):
        return f"TensorFlow {version}" + (" with XLA" if p == "tf-xla" else "")
    return f"{label(p)} {version}"


def update_readme(md, ctx):
    path = os.path.join(ROOT, "README.md")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    m = re.search(r"(<!-- BENCH:BEGIN -->\n).*?(<!-- BENCH:END -->)", text, re.S)
    if not m:
        return
    info = ctx["info"]
    summary = md.split("## Summary (median ratios deepsky / fastest peer)\n\n", 1)[1]
    summary = summary.split("\n\n")[0]
    names = ", ".join(peer_name(p, ctx["versions"].get(p, "")) for p in ctx["peers"])
    block = (f"Median ratios deepsky / fastest peer measured by `make bench` on {ctx['date']} "
             f"({info['cpu']}, {info['cores']} cores, {info['simd']}; peers: {names}). Each "
             f"cell names the peer compared. Above 1 deepsky is faster; for latency, peak RSS "
             f"and start-up, below 1 is better. Minima, maxima, every peer's absolute numbers "
             f"and the machine's sgemm peak are in [bench/RESULTS.md](bench/RESULTS.md).\n\n"
             + summary + "\n")
    text = text[:m.start()] + m.group(1) + block + m.group(2) + text[m.end():]
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print("bench: updated the table in README.md")


if __name__ == "__main__":
    sys.exit(main())
