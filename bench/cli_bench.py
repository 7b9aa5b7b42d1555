"""cli_bench.py - the command line against its peers as a user meets them: whole processes
training the Fashion-MNIST MLP for an epoch (deepsky train, bench/cli_fashion_torch.py,
bench/cli_fashion_keras.py), each pinned to the same cores with the same threads, with the
data files' pages cold (evicted from the page cache) and warm, in alternating rounds; then
the loading of the gzipped IDX files alone (deepsky's loader through libdeepsky.so, one
thread and pipelined on two, against gzip + numpy). Prints medians (min-max) and ratios.

    python3 bench/cli_bench.py [--threads 1,2] [--rounds 3] [--peers torch,keras]
                               [--epochs 1] [--data-dir DIR] [--drop-caches] [--json FILE]

`make bench-cli` runs it (CLI_ARGS passes options). Cold: each data file is evicted with
posix_fadvise(DONTNEED) before the run (--drop-caches: the whole page cache, which also makes
the frameworks' own files cold; needs root). Wall time is what a user waits; CPU time (the
process's user + system) says what the machine spent.
"""
import argparse
import ctypes
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def evict(paths, drop_all):
    if drop_all:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def commands(a, threads, out):
    d = a.data_dir
    ds = [a.deepsky, "train", os.path.join(ROOT, "examples/fashion_mlp.model"),
          "--scale", "divide:255", "--data", f"{d}/{FILES[0]}", "--labels", f"{d}/{FILES[1]}",
          "--val", f"{d}/{FILES[2]}", "--val-labels", f"{d}/{FILES[3]}",
          "--epochs", str(a.epochs), "--batch-size", str(a.batch), "--threads", str(threads),
          "-o", os.path.join(out, "deepsky", "fashion_mlp.safetensors")]
    peer = ["--data-dir", d, "--epochs", str(a.epochs), "--batch", str(a.batch),
            "--threads", str(threads)]
    cmds = {"deepsky": ds}
    for name in a.peers:
        script = os.path.join(HERE, f"cli_fashion_{name}.py")
        cmds[name] = [a.python, script, "--out", os.path.join(out, name)] + peer
    return cmds


def run_one(cmd, threads):
    cores = ",".join(str(c) for c in range(threads))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(["taskset", "-c", cores] + cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"cli_bench.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def whole_processes(a, res):
    paths = [os.path.join(a.data_dir, f) for f in FILES]
    with tempfile.TemporaryDirectory(prefix="cli_bench_") as out:
        for name in ["deepsky"] + a.peers:
            os.makedirs(os.path.join(out, name))
        for r in range(a.rounds):
            for threads in a.threads:
                cmds = commands(a, threads, out)
                names = list(cmds)
                names = names[r % len(names):] + names[:r % len(names)]   # alternate who goes first
                for cache in ("cold", "warm"):
                    for name in names:
                        if cache == "cold":
                            evict(paths, a.drop_caches)
                        else:
                            for p in paths:   # warm: the files were read just before
                                with open(p, "rb") as f:
                                    while f.read(1 << 20):
                                        pass
                        wall, cpu = run_one(cmds[name], threads)
                        res.setdefault(f"{name} {threads}T {cache}", []).append((wall, cpu))
                        print(f"  round {r + 1}: {name:8s} {threads}T {cache}: {wall:6.2f} s wall, "
                              f"{cpu:6.2f} s CPU", flush=True)


def load_times(a, res):
    """deepsky's IDX loader (serial at 1 thread, pipelined at 2) and gzip + numpy, on the
    training images, cold and warm."""
    lib = ctypes.CDLL(a.lib)
    lib.ds_array_load.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.ds_tensor_free.argtypes = [ctypes.c_void_p]
    lib.ds_set_num_threads.argtypes = [ctypes.c_int]
    path = os.path.join(a.data_dir, FILES[0])
    try:
        import numpy as np
    except ImportError:
        np = None

    def deepsky(threads):
        lib.ds_set_num_threads(threads)
        t = ctypes.c_void_p()
        if lib.ds_array_load(path.encode(), None, ctypes.byref(t)):
            sys.exit(f"cli_bench.py: deepsky could not load {path}")
        lib.ds_tensor_free(t)

    def numpy_gzip():
        with gzip.open(path, "rb") as f:
            x = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
        return x.reshape(-1, 784).astype(np.float32) / 255.0

    loaders = {"deepsky load 1T": lambda: deepsky(1), "deepsky load 2T": lambda: deepsky(2)}
    if np is not None:
        loaders["gzip+numpy load"] = numpy_gzip
    for r in range(a.rounds):
        for cache in ("cold", "warm"):
            for name, fn in loaders.items():
                if cache == "cold":
                    evict([path], a.drop_caches)
                t0 = time.perf_counter()
                c0 = time.process_time()
                fn()
                res.setdefault(f"{name} {cache}", []).append((time.perf_counter() - t0,
                                                              time.process_time() - c0))


def med(v, k):
    xs = [x[k] for x in v]
    return statistics.median(xs), min(xs), max(xs)


def report(a, res):
    print(f"\nmedians of {a.rounds} rounds (min-max); {a.epochs} epoch(s) of the Fashion-MNIST MLP, "
          f"batch {a.batch}, with validation on the test set")
    print(f"{'':28s} {'wall s':>20s} {'CPU s':>20s}")
    for key, v in res.items():
        w, c = med(v, 0), med(v, 1)
        print(f"{key:28s} {w[0]:7.3f} ({w[1]:.3f}-{w[2]:.3f}) {c[0]:7.3f} ({c[1]:.3f}-{c[2]:.3f})")
    print("\nwhole process, peer / deepsky (wall; CPU):")
    for threads in a.threads:
        for cache in ("cold", "warm"):
            base = res.get(f"deepsky {threads}T {cache}")
            for name in a.peers:
                v = res.get(f"{name} {threads}T {cache}")
                if base and v:
                    print(f"  {name:6s} {threads}T {cache}: {med(v, 0)[0] / med(base, 0)[0]:5.2f}x; "
                          f"{med(v, 1)[0] / med(base, 1)[0]:5.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", default="torch,keras")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--deepsky", default=os.path.join(ROOT, "build/deepsky"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "build/libdeepsky.so"))
    ap.add_argument("--python", default=os.path.join(HERE, ".venv/bin/python"))
    ap.add_argument("--drop-caches", action="store_true")
    ap.add_argument("--no-load", action="store_true", help="skip the loader timings")
    ap.add_argument("--json")
    a = ap.parse_args()
    a.threads = [int(t) for t in a.threads.split(",")]
    a.peers = [p for p in a.peers.split(",") if p and p != "none"]
    for p in a.peers:
        if p not in ("torch", "keras"):
            sys.exit(f"cli_bench.py: --peers: '{p}' is not torch or keras")
    for f in FILES:
        if not os.access(os.path.join(a.data_dir, f), os.R_OK):
            sys.exit(f"cli_bench.py: {a.data_dir}/{f} not found: install Debian's "
                     f"dataset-fashion-mnist (make fashion)")
    res = {}
    whole_processes(a, res)
    if not a.no_load:
        load_times(a, res)
    report(a, res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
