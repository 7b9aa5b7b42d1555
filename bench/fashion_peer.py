"""fashion_peer.py - the time-to-accuracy recipe of examples/fashion_fast.model written for a
peer framework, as a user of that framework would write it: Keras 3 (TensorFlow) or PyTorch.

    PYTHON bench/fashion_peer.py {keras,torch} MODEL --data DIR --threads N --epochs E
                                 --batch B [--shift S] [--seed K] [--limit N]

It reads the gzipped IDX files of Fashion-MNIST from DIR with gzip and numpy, scales them by
1/255, builds MODEL (a deepsky model file, through bench/peer_common.py and the builders of
tf_bench.py / torch_bench.py, so the layers are the same), and trains E epochs of batch B
with Adam at the model's rate, decayed by a cosine over all the steps of the run to 0 (the
model's schedule=cosine), on shuffled data augmented per sample as deepsky's
`--augment hflip,shift:S` does: a left-right mirror with probability 1/2 and a translation
by dy, dx uniform in [-S, S], uncovered pixels 0 (numpy, per batch). After each epoch it
prints one JSON line, flushed: {"epoch": e, "val_acc": accuracy on the 10,000 test images,
"loss": mean training loss}. bench/fashion_time.py times these lines as they arrive.
Threads: Keras intra-op N, inter-op 1 and a tf.function step (TensorFlow's fastest, see
/work/shared/notes/peers.md); PyTorch torch.set_num_threads(N), OpenBLAS held to 1 thread.
"""
import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import peer_common  # noqa: E402


def load(folder, split):
    x, y = peer_common.read_fashion(folder, split)
    return (x.astype(np.float32) / 255.0)[:, None, :, :], y.astype(np.int64)


def augment(xb, rng, shift):
    """A left-right mirror with probability 1/2, then a shift by up to `shift` pixels along
    each axis with zeros coming in, per sample: [B, 1, H, W] -> a new array."""
    b, _, h, w = xb.shape
    flip = rng.random(b) < 0.5
    xb = np.where(flip[:, None, None, None], xb[..., ::-1], xb)
    if not shift:
        return np.ascontiguousarray(xb)
    pad = np.pad(xb, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
    dy = rng.integers(-shift, shift + 1, b)
    dx = rng.integers(-shift, shift + 1, b)
    out = np.empty_like(xb)
    for i in range(b):
        # pixel (r, c) moves to (r + dy, c + dx): the output row r reads padded row r - dy + s
        out[i] = pad[i, :, shift - dy[i]:shift - dy[i] + h, shift - dx[i]:shift - dx[i] + w]
    return out


def keras_trainer(spec, a, steps):
    import tensorflow as tf
    import keras
    import tf_bench
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(a.seed)
    model = tf_bench.build(spec)
    lr = spec["lr"]
    if spec["schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(spec["lr"], steps)
    opt = keras.optimizers.Adam(learning_rate=lr, epsilon=1e-8)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def forward(x):
        return model(x, training=False)

    def nhwc(x):
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))

    def train(xb, yb):
        return float(step(tf.constant(nhwc(xb)), tf.constant(yb)))

    def predict(xb):
        return forward(tf.constant(nhwc(xb))).numpy()
    return train, predict


def torch_trainer(spec, a, steps):
    import torch
    import torch_bench
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = torch_bench.build(spec)
    opt = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
             if spec["schedule"] == "cosine" else None)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train(xb, yb):
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        return float(loss)

    def predict(xb):
        model.eval()
        with torch.inference_mode():
            return model(torch.from_numpy(xb)).numpy()
    return train, predict


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("framework", choices=("keras", "torch"))
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--shift", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="train on the first N images only (a smoke test)")
    a = ap.parse_args()
    spec = peer_common.read_model(a.model)
    x, y = load(a.data, "train")
    xt, yt = load(a.data, "t10k")
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    n = len(x)
    steps = a.epochs * math.ceil(n / a.batch)
    make = keras_trainer if a.framework == "keras" else torch_trainer
    train, predict = make(spec, a, steps)
    rng = np.random.default_rng(a.seed)
    for e in range(a.epochs):
        order = rng.permutation(n)
        total = 0.0
        for i in range(0, n, a.batch):
            idx = order[i:i + a.batch]
            total += train(augment(x[idx], rng, a.shift), y[idx]) * len(idx)
        hits = sum(int((predict(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum())
                   for i in range(0, len(xt), 1000))
        print(json.dumps({"epoch": e + 1, "val_acc": hits / len(xt), "loss": total / n}),
              flush=True)


if __name__ == "__main__":
    main()
