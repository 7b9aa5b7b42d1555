"""tf_bench.py - the TensorFlow/Keras peer of the benchmark suite: the networks of
bench/models/*.model built with Keras 3 layers (channels-last, which oneDNN prefers), trained
by a tf.function step (GradientTape and a Keras Adam), timed on synthetic data exactly as
bench/deepsky_bench.c times deepsky (bench/peer_common.py holds the protocol).

    bench/.venv/bin/python bench/tf_bench.py MODEL --threads N --batch B [--xla] [--warmup S]
                           [--time S] [--infer-time S] [--infer-batches B1,...] [--min-iters K]

--xla compiles the training step and the inference function with XLA (jit_compile=True);
bench/run.py runs both variants and counts the faster. Threads: intra-op N, inter-op 1
(set before TensorFlow starts its runtime); oneDNN is TensorFlow's default on x86.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

import peer_common  # noqa: E402

XLA = "--xla" in sys.argv


def build(spec):
    """The keras.Sequential of a peer_common model spec, channels-last."""
    c, *sp = spec["input"]
    mods = [keras.Input(shape=tuple(sp) + (c,))]
    for L in spec["layers"]:
        k = L["kind"]
        if k == "conv":
            conv = layers.Conv2D if L["nd"] == 2 else layers.Conv1D
            same = all(p == kk // 2 for p, kk in zip(L["pad"], L["kernel"]))
            if any(L["pad"]) and not same:
                pad = layers.ZeroPadding2D if L["nd"] == 2 else layers.ZeroPadding1D
                mods.append(pad(L["pad"] if L["nd"] == 2 else L["pad"][0]))
            mods.append(conv(L["filters"], L["kernel"], L["stride"],
                             padding="same" if any(L["pad"]) and same else "valid",
                             activation="relu" if L["relu"] else None))
        elif k == "maxpool":
            pool = layers.MaxPooling2D if L["nd"] == 2 else layers.MaxPooling1D
            mods.append(pool(L["size"], L["stride"]))
        elif k == "flatten":
            mods.append(layers.Flatten())
        elif k == "dense":
            mods.append(layers.Dense(L["units"], activation="relu" if L["relu"] else None))
        elif k == "dropout":
            mods.append(layers.Dropout(L["rate"]))
        elif k == "batchnorm":
            # Keras's momentum is PyTorch's 1 - momentum
            mods.append(layers.BatchNormalization(momentum=1 - L["momentum"], epsilon=L["eps"]))
        elif k == "relu":
            mods.append(layers.ReLU())
        elif k == "globalavgpool":
            mods.append(layers.GlobalAveragePooling2D() if L["nd"] == 2
                        else layers.GlobalAveragePooling1D())
    return keras.Sequential(mods)


class Peer:
    def __init__(self, spec, a, xs, ys):
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        keras.utils.set_random_seed(1234)
        self.nsp = len(spec["input"]) - 1
        self.model = build(spec)
        self.params = sum(int(np.prod(v.shape)) for v in self.model.trainable_variables)
        self.xs = [tf.constant(self.to_nhwc(x)) for x in xs]
        self.ys = [tf.constant(y) for y in ys]
        self.loss_fn = (keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                        if spec["classes"] else keras.losses.MeanSquaredError())
        # PyTorch's Adam epsilon, as deepsky's
        self.opt = keras.optimizers.Adam(learning_rate=spec["lr"], epsilon=1e-8)
        self.opt.build(self.model.trainable_variables)
        model, loss_fn, opt = self.model, self.loss_fn, self.opt

        @tf.function(jit_compile=XLA)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function(jit_compile=XLA)
        def forward(x):
            return model(x, training=False)
        self.step, self.forward = step, forward

    def to_nhwc(self, x):
        """Channels axis (the one after the batch) moved last."""
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))

    def train_step(self, k):
        return self.step(self.xs[k], self.ys[k])

    def loss_value(self, h):
        return float(h)

    def sync(self, h):
        pass       # TensorFlow runs a tf.function synchronously on the CPU

    def infer(self, x):
        x = tf.constant(self.to_nhwc(x))
        forward = self.forward
        return lambda: forward(x)


def main():
    argv = [s for s in sys.argv[1:] if s != "--xla"]
    name = "tf-xla" if XLA else "tf"
    version = f"{tf.__version__} (Keras {keras.__version__})"
    return peer_common.run("tf_bench", name, version, Peer, argv)


if __name__ == "__main__":
    sys.exit(main())
