"""test_runtime.py - what the binding must hold at run time: the GIL released in long calls,
no memory growth, Ctrl-C between batches, progress output, python -m deepsky, the wheel, and
the ctypes structs laid out as the C header's."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import deepsky
from deepsky import _lib
from conftest import PY, ROOT, run

BIG = """input shape=64
dense units=512 activation=relu
dense units=512 activation=relu
dense units=1
loss mse
"""


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_memory_growth_over_1000_predicts(toy):
    net = deepsky.Net(toy["model"])
    x = np.tile(toy["x"], (3, 1))[:256]   # a leaked output would be 9 KB a call
    for _ in range(100):
        net.predict(x)
    before = rss_bytes()
    for _ in range(1000):
        p = net.predict(x)
        mean, std = net.predict(x, mc=2)
    grown = rss_bytes() - before
    assert p.shape == (256, 3) and std.shape == (256, 3)
    assert grown < 5 * 2**20, f"RSS grew by {grown / 2**20:.2f} MB over 1,000 predicts"


class Begin(deepsky.Callback):
    def on_train_begin(self, logs=None):
        self.t = time.perf_counter()   # the last Python code before the C call


def test_gil_released_during_fit(monkeypatch):
    """A thread spinning in Python records the time now and then. fit runs Python only in
    its callbacks; from the start of training to the gradient hook of the first step, the
    step's forward and backward passes run in C alone, and the thread must keep recording
    there. Were the GIL held through the call (ctypes.PyDLL), it could run only at the
    edges, in the switch interval after the last Python code."""
    from deepsky import net as net_module
    rng = np.random.default_rng(0)
    # a step of 8,192 rows: ~150 ms on one quiet core (2,048 took 38 ms there, too close to
    # the 40 ms the check needs)
    x = rng.normal(size=(8192, 64)).astype(np.float32)
    net = deepsky.Net.from_string(BIG, seed=1)
    stamps, hooks, done, begin = [], [], threading.Event(), Begin()
    hook = net_module._Run._hook
    monkeypatch.setattr(net_module._Run, "_hook",
                        lambda self, ctx, info: hooks.append(time.perf_counter()) or
                        hook(self, ctx, info))

    def spin():
        k = 0
        while not done.is_set():
            k += 1
            if k % 100 == 0:
                stamps.append(time.perf_counter())

    threads, interval = deepsky.get_num_threads(), sys.getswitchinterval()
    deepsky.set_num_threads(1)   # one core for the library, one for the spinning thread
    sys.setswitchinterval(0.001)
    th = threading.Thread(target=spin)
    th.start()
    time.sleep(0.01)
    try:
        net.fit(x, x[:, :1] * 2, epochs=1, batch_size=8192, verbose=0, callbacks=[begin])
    finally:
        done.set()
        th.join()
        deepsky.set_num_threads(threads)
        sys.setswitchinterval(interval)
    st = np.array(stamps)
    a, b = begin.t + 0.01, hooks[0] - 0.002   # the step in C, the edges left out
    assert b - a > 0.04, f"the step took only {(hooks[0] - begin.t) * 1e3:.1f} ms"
    # stamps all through it, not a burst at a switch of threads: in 3 of its 4 quarters
    edges = np.linspace(a, b, 5)
    quarters = [int(((st > lo) & (st < hi)).sum()) for lo, hi in zip(edges, edges[1:])]
    assert sum(q > 0 for q in quarters) >= 3, f"stamps per quarter of the step: {quarters}"


class Interrupt(deepsky.Callback):
    """Sends SIGINT to this process (as Ctrl-C does) at epoch 2, batch 3."""

    def __init__(self):
        self.epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            signal.raise_signal(signal.SIGINT)   # this thread: Python's handler runs here


class Stop(Interrupt):
    def on_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            self.net.stop_training = True


def test_keyboard_interrupt_stops_between_batches(toy):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    net = deepsky.Net(toy["model"], seed=2)
    # Python installs its Ctrl-C handler only if SIGINT is not ignored at startup, and a
    # non-interactive shell's background job (make test &) starts with it ignored
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(toy["x"], toy["y"], epochs=5, batch_size=16, verbose=0,
                    callbacks=[Interrupt()])
    finally:
        signal.signal(signal.SIGINT, old)
    assert len(net.history["loss"]) == 1          # epoch 1 done, epoch 2 stopped
    p = net.predict(toy["xv"])                     # the net is whole and usable
    stopped = deepsky.Net(toy["model"], seed=2)
    hist = stopped.fit(toy["x"], toy["y"], epochs=5, batch_size=16, verbose=0,
                       callbacks=[Stop()])
    assert len(hist["loss"]) == 1
    assert np.array_equal(stopped.predict(toy["xv"]), p)   # the same steps applied
    fresh = deepsky.Net(toy["model"], seed=2)
    fresh.fit(toy["x"], toy["y"], epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(fresh.predict(toy["xv"]), p)  # 3 steps more than 1 epoch
    net.fit(toy["x"], toy["y"], epochs=1, batch_size=16, verbose=0)   # trains on


def test_progress_lines(toy, capsys):
    net = deepsky.Net(toy["model"])
    net.fit(toy["x"], toy["y"], epochs=2, batch_size=40, verbose=2,
            validation_data=(toy["xv"], toy["yv"]))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2") and "val_loss" in lines[1]
    net.fit(toy["x"], toy["y"], epochs=1, batch_size=40, verbose=0)
    assert capsys.readouterr().out == ""


def test_python_m_deepsky_runs_the_cli(cli, toy):
    env = dict(os.environ, DEEPSKY_CLI=cli, PYTHONPATH=str(PY))
    p = subprocess.run([sys.executable, "-m", "deepsky", "summary", str(toy["model"])],
                       capture_output=True, text=True, env=env)
    rc, want = run([cli, "summary", toy["model"]])
    assert p.returncode == rc == 0 and p.stdout + p.stderr == want


def test_struct_layout_matches_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to read the header's layout")
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "deepsky.h"',
             "int main(void) {"]
    for cname, st in _lib.STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for f in st._fields_:
            lines.append(f'printf("{cname}.{f[0]} %zu\\n", offsetof({cname}, {f[0]}));')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    rc, text = run([cc, "-I", ROOT / "include", src, "-o", exe])
    assert rc == 0, text
    rc, text = run([exe])
    want = dict(line.rsplit(" ", 1) for line in text.splitlines())
    for cname, st in _lib.STRUCTS.items():
        assert int(want[cname]) == __import__("ctypes").sizeof(st), cname
        for f in st._fields_:
            assert int(want[f"{cname}.{f[0]}"]) == getattr(st, f[0]).offset, \
                f"{cname}.{f[0]}"


def test_wheel_installs_and_runs(tmp_path, toy):
    """The build backend's wheel (the library already built: DEEPSKY_LIB) into a fresh venv
    with pip, offline; imported from elsewhere it loads its own copy of the library."""
    import venv   # noqa: F401
    sys.path.insert(0, str(PY))
    import deepsky_build
    wheel = deepsky_build.build_wheel(str(tmp_path))
    assert wheel.startswith(f"deepsky-{deepsky.__version__}-py3-none-linux_")
    env_dir = tmp_path / "venv"
    rc, text = run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    env_dir])
    if rc:
        pytest.skip(f"python3 -m venv fails here: {text.strip()[-200:]}")
    py = env_dir / "bin" / "python"
    rc, text = run([sys.executable, "-m", "pip", "--python", py, "install", "-q",
                    "--no-index", "--no-deps", tmp_path / wheel])
    assert rc == 0, text
    code = ("import deepsky, numpy as np, sys; net = deepsky.Net(sys.argv[1]); "
            "print(deepsky.library_path); print(net.predict(np.load(sys.argv[2])).shape)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEEPSKY_LIB", "DEEPSKY_CLI", "PYTHONPATH")}
    p = subprocess.run([str(py), "-c", code, str(toy["model"]), str(toy["files"]["xv"])],
                       cwd=tmp_path, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    lib_path, shape = p.stdout.splitlines()
    assert str(env_dir) in lib_path and "_libs/libdeepsky.so" in lib_path
    assert shape == "(40, 3)"
    # python -m deepsky runs the wheel's own copy of the tool
    p = subprocess.run([str(py), "-m", "deepsky", "--version"], cwd=tmp_path,
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.startswith(f"deepsky {deepsky.__version__}"), \
        p.stdout + p.stderr


def test_progress_in_jupyter(toy, monkeypatch):
    """Inside a Jupyter kernel the bar goes to one output cell, updated in place (a stand-in
    for IPython's display, which the test environment need not have)."""
    import types
    shown = []

    class Handle:
        def update(self, obj, raw=False):
            shown.append(obj["text/plain"])

    class ZMQInteractiveShell:
        pass

    def display(obj, raw=False, display_id=False):
        shown.append(obj["text/plain"])
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: ZMQInteractiveShell()
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython.display)
    net = deepsky.Net(toy["model"])
    net.fit(toy["x"], toy["y"], epochs=2, batch_size=40, verbose=1)
    last = shown[-1].splitlines()
    assert len(shown) >= 2 and len(last) == 2    # one cell: a line per epoch
    assert last[0].startswith("epoch 1/2 [") and last[1].startswith("epoch 2/2 [")
    assert "3/3" in last[1] and "elapsed" in last[1]
