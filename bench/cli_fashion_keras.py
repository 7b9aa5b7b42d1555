"""cli_fashion_keras.py - what `deepsky train examples/fashion_mlp.model` does, written as a
Keras user would: the gzipped IDX files read with gzip and numpy, scaled by 1/255, the MLP
784-256-128-10 trained by model.fit with Adam (lr 1e-3) on shuffled batches, with the
training loss and accuracy of each epoch and validation on the test set, then the weights,
the model with its optimizer's state (.keras) and a CSV log written. bench/cli_bench.py
times it as a whole process against deepsky.

    PYTHON bench/cli_fashion_keras.py --data-dir DIR --out DIR [--epochs 1] [--batch 64]
                                      [--threads N]

TensorFlow backend, intra-op threads N and inter-op 1 (as tf_bench.py); Keras compiles the
step as it chooses by default (jit_compile="auto").
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402


def load(data_dir, prefix):
    x, y = peer_common.read_fashion(data_dir, prefix)
    return x.reshape(-1, 784).astype(np.float32) / 255.0, y.astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import tensorflow as tf
    import keras
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    x, y = load(a.data_dir, "train")
    xv, yv = load(a.data_dir, "t10k")
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    os.makedirs(a.out, exist_ok=True)
    h = model.fit(x, y, batch_size=a.batch, epochs=a.epochs, shuffle=True,
                  validation_data=(xv, yv), verbose=2,
                  callbacks=[keras.callbacks.CSVLogger(os.path.join(a.out, "fashion_mlp.log.csv"))])
    model.save_weights(os.path.join(a.out, "fashion_mlp.weights.h5"))
    model.save(os.path.join(a.out, "fashion_mlp.keras"))   # with the optimizer's state
    loss = h.history["loss"][-1]
    if not loss < 2.0:   # the loss of an untrained 10-class net is about 2.3
        sys.exit(f"cli_fashion_keras.py: the training loss did not fall ({loss:.4f})")


if __name__ == "__main__":
    main()
