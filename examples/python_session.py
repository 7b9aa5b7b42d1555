"""python_session.py - the README's Python session as a script: simulated galaxy cutouts in
FITS, a small CNN trained from Python, Monte Carlo dropout error bars, a matplotlib figure.
Run from the source tree after `make`: python3 examples/python_session.py [OUT_DIR]"""
import os
import subprocess
import sys
import time
from pathlib import Path

PKG = str(Path(__file__).resolve().parent.parent / "python")   # the package in this tree
sys.path.insert(0, PKG)
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

import deepsky  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "python_session")
out.mkdir(exist_ok=True)
cutouts, truth = out / "cutouts.fits", out / "truth.fits"
if not cutouts.exists():   # python -m deepsky runs the command line tool
    subprocess.run([sys.executable, "-m", "deepsky", "sim", "galaxies", "--count", "3000",
                    "--seed", "1", "--snr", "20:100", "--psf", "moffat", "-o", str(cutouts),
                    "--truth", str(truth)], check=True,
                   env=dict(os.environ, PYTHONPATH=PKG))

x = deepsky.load_array(cutouts)                   # (3000, 32, 32) float32, FITS NAXIS order
t = Table.read(truth)
y = np.stack([t["e1"], t["e2"]], axis=1).astype(np.float32)
print(x.shape, x.dtype, y.shape)

net = deepsky.Net.from_string("""
input   name=image shape=1x32x32
conv2d  filters=16 kernel=3 padding=same activation=relu
maxpool size=2
conv2d  filters=32 kernel=3 padding=same activation=relu
maxpool size=2
flatten
dense   units=64 activation=relu
dropout rate=0.2
dense   name=e units=2
loss    mse
optimizer adam lr=2e-3
""", seed=1)
net.summary()
t0 = time.time()
history = net.fit(x[:2500], y[:2500], epochs=8, batch_size=64, scale="per_image",
                  validation_data=(x[2500:], y[2500:]))
print(f"fit: {time.time() - t0:.1f} s; val_rmse by epoch",
      [round(v, 4) for v in history["val_rmse"]])

t0 = time.time()
mean, std = net.predict(x[2500:], mc=50)          # 50 passes with dropout on
print(f"predict --mc 50: {time.time() - t0:.2f} s")
err = mean - y[2500:]
print("rmse", np.sqrt((err ** 2).mean(axis=0)), "median MC std", np.median(std, axis=0))
print("fraction within 1 MC std", np.mean(np.abs(err) < std, axis=0))
net.save(out / "cnn.safetensors")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
fig, ax = plt.subplots(1, 2, figsize=(9, 4))
for k, name in enumerate(("e1", "e2")):
    ax[k].errorbar(y[2500:, k], mean[:, k], yerr=std[:, k], fmt=".", ms=2, alpha=0.4, lw=0.5)
    ax[k].plot([-0.6, 0.6], [-0.6, 0.6], "k--", lw=1)
    ax[k].set(xlabel=f"true {name}", ylabel=f"predicted {name}", title=f"{name}: MC dropout")
fig.tight_layout()
fig.savefig(out / "mc_dropout.png", dpi=100)
print("wrote", out / "mc_dropout.png")
