"""conftest.py - the package from this source tree, the library from $DEEPSKY_LIB (make test
sets it; else build/libdeepsky.so), the release command line tool from $DEEPSKY_CLI (else
build/deepsky), and a small classifier with dropout and its data."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PY = Path(__file__).resolve().parent.parent
ROOT = PY.parent
sys.path.insert(0, str(PY))
os.environ.setdefault("DEEPSKY_LIB", str(ROOT / "build" / "libdeepsky.so"))

MODEL = """# a small classifier with dropout (Monte Carlo predictions)
input   shape=4
dense   units=16 activation=relu
dropout rate=0.2
dense   units=3 activation=softmax
loss    categorical_crossentropy
optimizer adam lr=0.01
"""


@pytest.fixture
def cli():
    path = os.environ.get("DEEPSKY_CLI", str(ROOT / "build" / "deepsky"))
    if not os.access(path, os.X_OK):
        pytest.skip(f"no command line tool at {path} (make build/deepsky)")
    return path


def run(cmd, cwd=None):
    """Runs a command; returns (status, stdout + stderr)."""
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture
def toy(tmp_path):
    """A model file and three-class data: x [120, 4], y class indices [120], validation."""
    rng = np.random.default_rng(7)
    centres = np.array([[0, 0, 0, 0], [2, 1, 0, -1], [-1, 2, 1, 0]], dtype=np.float32)
    y = rng.integers(0, 3, 160)
    x = (centres[y] + rng.normal(0, 0.7, (160, 4)) * 3 + 5).astype(np.float32)
    model = tmp_path / "toy.model"
    model.write_text(MODEL)
    files = {}
    for name, arr in (("x", x[:120]), ("y", y[:120].astype(np.float32)), ("xv", x[120:]),
                      ("yv", y[120:].astype(np.float32))):
        files[name] = tmp_path / f"{name}.npy"
        np.save(files[name], arr)
    return {"model": model, "x": x[:120], "y": y[:120].astype(np.float32), "xv": x[120:],
            "yv": y[120:].astype(np.float32), "files": files, "dir": tmp_path}
