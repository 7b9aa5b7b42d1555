#!/usr/bin/python3
"""fashion_time.py - time to accuracy: the wall-clock time from spawning a process to the end
of the first epoch whose Fashion-MNIST test accuracy reaches the target (93% by default), for
deepsky's recipe (examples/fashion_fast.model with its flags) and the same recipe in Keras and
in PyTorch (bench/fashion_peer.py).

    /usr/bin/python3 bench/fashion_time.py [--bin build/deepsky] [--threads 2] [--rounds 1]
        [--target 0.93] [--peers keras,torch] [--data /usr/share/datasets/fashion-mnist]
        [--out bench/RESULTS-fashion.md]

`make bench-fashion` runs it. Every process is pinned with taskset to cores 0..N-1 with
OMP_NUM_THREADS=N and its own thread setting N, and trains the same network for the same
epochs with the same batch, Adam rate, cosine schedule over the run, augmentation (random
left-right mirrors) and test set as validation; each prints a line per
epoch, which this script timestamps as it arrives. A process is stopped once it reaches the
target (the rest of its run would not change the figure). The peers come from bench/.venv
(bench/run.py installs it: Keras from requirements-peers.txt; PyTorch 2.x with PEERS=all);
without PyTorch 2.x there, Debian's PyTorch 1.13 (/usr/bin/python3) runs instead. Rounds
rotate the order. The report gives each framework's median time to the target, the epoch
that reached it, and deepsky / peer as speed ratios (peer time / deepsky time: above 1,
deepsky reaches the target sooner).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(HERE, ".venv", "bin", "python")
MODEL = os.path.join(ROOT, "examples", "fashion_fast.model")
# the recipe: these flags with examples/fashion_fast.model (its header comment says the same)
EPOCHS, BATCH, SHIFT = 12, 128, 0


def has_module(py, mod):
    if not os.path.exists(py) and not shutil.which(py):
        return False
    p = subprocess.run([py, "-c", f"import {mod}"], capture_output=True)
    return p.returncode == 0


def commands(a, tmp):
    d = a.data
    ds = [a.bin, "train", MODEL, "--scale", "divide:255",
          "--data", f"{d}/train-images-idx3-ubyte.gz", "--labels", f"{d}/train-labels-idx1-ubyte.gz",
          "--val", f"{d}/t10k-images-idx3-ubyte.gz", "--val-labels", f"{d}/t10k-labels-idx1-ubyte.gz",
          "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
          "--augment", "hflip" + (f",shift:{SHIFT}" if SHIFT else ""), "--threads", str(a.threads),
          "-o", os.path.join(tmp, "fashion_fast.safetensors")]
    peer = ["bench/fashion_peer.py", None, MODEL, "--data", d, "--threads", str(a.threads),
            "--epochs", str(EPOCHS), "--batch", str(BATCH), "--shift", str(SHIFT)]
    out = {"deepsky": ("deepsky", ds)}
    for p in a.peers.split(","):
        if p == "keras" and has_module(VENV_PY, "keras"):
            import_check = subprocess.run([VENV_PY, "-c", "import keras, tensorflow as tf; "
                                           "print(keras.__version__, tf.__version__)"],
                                          capture_output=True, text=True).stdout.split()
            label = f"Keras {import_check[0]} (TensorFlow {import_check[1]})"
            out["keras"] = (label, [VENV_PY] + [x if x else "keras" for x in peer])
        elif p == "torch":
            py = VENV_PY if has_module(VENV_PY, "torch") else "/usr/bin/python3"
            if not has_module(py, "torch"):
                continue
            v = subprocess.run([py, "-c", "import torch; print(torch.__version__)"],
                               capture_output=True, text=True).stdout.strip()
            out["torch"] = (f"PyTorch {v}", [py] + [x if x else "torch" for x in peer])
        elif p not in ("keras", "torch"):
            sys.exit(f"fashion_time.py: unknown peer '{p}' (keras, torch)")
        else:
            print(f"fashion_time.py: {p} is not installed in bench/.venv (make bench first); "
                  "skipped", file=sys.stderr)
    return out


DS_LINE = re.compile(r"^epoch (\d+)/\d+ .*val_acc ([0-9.]+)")


def parse(line):
    """(epoch, val_acc) from a deepsky progress line or a peer's JSON line, else None."""
    m = DS_LINE.match(line)
    if m:
        return int(m.group(1)), float(m.group(2))
    if line.startswith("{"):
        try:
            j = json.loads(line)
            return int(j["epoch"]), float(j["val_acc"])
        except (ValueError, KeyError):
            return None
    return None


def run_one(cmd, a):
    """Spawns cmd pinned to the cores; returns (seconds to target or None, epoch, accuracies)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS="1")
    cores = ",".join(str(i) for i in range(a.threads))
    t0 = time.monotonic()
    p = subprocess.Popen(["taskset", "-c", cores] + cmd, cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    accs, hit = [], None
    for line in p.stdout:
        r = parse(line.strip())
        if not r:
            continue
        accs.append(r[1])
        if r[1] >= a.target:
            hit = (time.monotonic() - t0, r[0])
            p.send_signal(signal.SIGTERM)
            break
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    if not hit and p.returncode != 0:
        sys.exit(f"fashion_time.py: {' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
    return (hit[0] if hit else None), (hit[1] if hit else None), accs


def report(a, labels, res, started):
    lines = [f"# Time to {a.target:.1%} test accuracy on Fashion-MNIST", "",
             f"Written by `make bench-fashion` (bench/fashion_time.py) on {started}; "
             f"{a.threads} thread(s) each (taskset), {a.rounds} round(s). The recipe: "
             f"examples/fashion_fast.model, {EPOCHS} epochs of batch {BATCH}, Adam with a "
             f"cosine schedule over the run, `--augment hflip`, inputs / 255; the "
             "time runs from spawning the process (imports, reading the gzipped files, "
             "building the model included) to the end of the first epoch whose test accuracy "
             "reaches the target.", "",
             "| framework | time to target (s), median | min | max | epoch reached | accuracy per epoch (first round) | deepsky's speed-up |",
             "|---|---|---|---|---|---|---|"]
    ds = [t for t, _, _ in res["deepsky"] if t is not None]
    for key, (label, _) in labels.items():
        ts = [t for t, _, _ in res[key] if t is not None]
        eps = sorted({e for _, e, _ in res[key] if e is not None})
        accs = " ".join(f"{x:.4f}" for x in res[key][0][2])
        if ts:
            med = statistics.median(ts)
            ratio = ("" if key == "deepsky" or not ds else
                     f"{med / statistics.median(ds):.2f}")
            lines.append(f"| {label} | {med:.1f} | {min(ts):.1f} | {max(ts):.1f} | "
                         f"{','.join(map(str, eps))} | {accs} | {ratio} |")
        else:
            lines.append(f"| {label} | not reached in {EPOCHS} epochs | | | | {accs} | |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "deepsky"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--target", type=float, default=0.93)
    ap.add_argument("--peers", default="keras,torch")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-fashion.md"))
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.data, "train-images-idx3-ubyte.gz")):
        sys.exit(f"fashion_time.py: {a.data} holds no Fashion-MNIST (apt-get install "
                 "dataset-fashion-mnist, or --data DIR)")
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="deepsky-fashion-") as tmp:
        labels = commands(a, tmp)
        res = {k: [] for k in labels}
        keys = list(labels)
        for r in range(a.rounds):
            for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                t, e, accs = run_one(labels[k][1], a)
                res[k].append((t, e, accs))
                print(json.dumps({"round": r + 1, "framework": labels[k][0], "seconds": t,
                                  "epoch": e, "val_acc": accs}), flush=True)
    text = report(a, labels, res, started)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
