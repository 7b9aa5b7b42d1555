"""cli_fashion_torch.py - what `deepsky train examples/fashion_mlp.model` does, written as a
PyTorch user would: the gzipped IDX files read with gzip and numpy, scaled by 1/255, the
MLP 784-256-128-10 trained with Adam (lr 1e-3) on shuffled batches, the training loss and
accuracy of each epoch, validation loss and accuracy on the test set, then the weights, a
checkpoint with the optimizer's state and a CSV log written. bench/cli_bench.py times it
as a whole process against deepsky.

    PYTHON bench/cli_fashion_torch.py --data-dir DIR --out DIR [--epochs 1] [--batch 64]
                                      [--threads N]

Batches are gathered by indexing with a random permutation (faster than a DataLoader over
a TensorDataset, which collates sample by sample). OpenBLAS is held to one thread, as in
torch_bench.py.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def load(data_dir, prefix):
    x, y = peer_common.read_fashion(data_dir, prefix)
    x = torch.from_numpy(x.reshape(-1, 784).astype(np.float32) / 255.0)
    return x, torch.from_numpy(y.astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = load(a.data_dir, "train")
    xv, yv = load(a.data_dir, "t10k")
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    print(f"training on {len(x)} samples (validation {len(xv)}), batch {a.batch}, adam lr 0.001, "
          f"{a.threads} thread{'s' if a.threads > 1 else ''}", flush=True)
    log = []
    t0 = time.time()
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(x))
        lsum, correct = 0.0, 0
        for i in range(0, len(x), a.batch):
            idx = perm[i:i + a.batch]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            lsum += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
        model.eval()
        with torch.inference_mode():
            vl, vc = 0.0, 0
            for i in range(0, len(xv), a.batch):
                out = model(xv[i:i + a.batch])
                vl += loss_fn(out, yv[i:i + a.batch]).item() * len(out)
                vc += (out.argmax(1) == yv[i:i + a.batch]).sum().item()
        row = (epoch + 1, lsum / len(x), correct / len(x), vl / len(xv), vc / len(xv))
        log.append(row)
        print(f"epoch {row[0]}/{a.epochs}  loss {row[1]:.4f}  acc {row[2]:.4f}  val_loss "
              f"{row[3]:.4f}  val_acc {row[4]:.4f}  elapsed {time.time() - t0:.1f} s", flush=True)
    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.out, "fashion_mlp.pt"))
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": a.epochs},
               os.path.join(a.out, "fashion_mlp.ckpt.pt"))
    with open(os.path.join(a.out, "fashion_mlp.log.csv"), "w") as f:
        f.write("epoch,loss,acc,val_loss,val_acc\n")
        for r in log:
            f.write(",".join(str(v) for v in r) + "\n")
    if not log[-1][1] < 2.0:   # the loss of an untrained 10-class net is about 2.3
        sys.exit(f"cli_fashion_torch.py: the training loss did not fall ({log[-1][1]:.4f})")


if __name__ == "__main__":
    main()
