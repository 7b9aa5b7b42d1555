"""jax_bench.py - the JAX peer of the benchmark suite: the networks of bench/models/*.model
written with jax.lax (channels-last) and optax's Adam, the whole training step (forward,
gradient, Adam, batch-norm statistics, dropout key) in one jax.jit with donated buffers, timed
on synthetic data exactly as bench/deepsky_bench.c times deepsky (bench/peer_common.py holds
the protocol).

    bench/.venv/bin/python bench/jax_bench.py MODEL --threads N --batch B [--warmup S]
                           [--time S] [--infer-time S] [--infer-batches B1,...] [--min-iters K]

Threads: at 1 thread XLA's Eigen thread pool is off (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1, set before jax loads); at N threads XLA uses the N cores that
bench/run.py pins the process to. JAX dispatches asynchronously: peer_common keeps one step in
flight and closes each timed window only when its last step has finished; an inference call
waits for its output (block_until_ready).
"""
import os
import sys
import warnings


def _threads(argv):
    for i, s in enumerate(argv):
        if s == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if s.startswith("--threads="):
            return int(s.split("=", 1)[1])
    return 1


if _threads(sys.argv) == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
                               "=false intra_op_parallelism_threads=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", message=".*donated buffers.*")

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import optax  # noqa: E402
from jax import lax  # noqa: E402

import peer_common  # noqa: E402


def init(spec, seed):
    """Trainable parameters and batch-norm state, one dict per layer. Weights and biases are
    uniform in +-1/sqrt(fan_in) (PyTorch's default); convolution kernels are HWIO. Drawn with
    numpy: JAX would compile a program for each draw, which would only slow its start-up."""
    rng = np.random.default_rng(seed)
    params, state = [], []
    for L in spec["layers"]:
        p, s = {}, {}
        if L["kind"] in ("conv", "dense"):
            if L["kind"] == "conv":
                fan_in = L["cin"] * int(np.prod(L["kernel"]))
                wshape = tuple(L["kernel"]) + (L["cin"], L["filters"])
            else:
                fan_in, wshape = L["fin"], (L["fin"], L["units"])
            bound = 1 / np.sqrt(fan_in)
            p["w"] = rng.uniform(-bound, bound, wshape).astype(np.float32)
            p["b"] = rng.uniform(-bound, bound, wshape[-1:]).astype(np.float32)
        elif L["kind"] == "batchnorm":
            p["g"] = np.ones(L["channels"], np.float32)
            p["b"] = np.zeros(L["channels"], np.float32)
            s["mean"] = np.zeros(L["channels"], np.float32)
            s["var"] = np.ones(L["channels"], np.float32)
        params.append(p)
        state.append(s)
    return jax.device_put(params), jax.device_put(state)


def forward(spec, params, state, x, train, key):
    """x channels-last -> (output, new batch-norm state)."""
    new_state = []
    for L, p, s in zip(spec["layers"], params, state):
        k = L["kind"]
        if k == "conv":
            dn = ("NHWC", "HWIO", "NHWC") if L["nd"] == 2 else ("NWC", "WIO", "NWC")
            x = lax.conv_general_dilated(x, p["w"], L["stride"], [(q, q) for q in L["pad"]],
                                         dimension_numbers=dn) + p["b"]
        elif k == "maxpool":
            x = lax.reduce_window(x, -jnp.inf, lax.max, (1,) + L["size"] + (1,),
                                  (1,) + L["stride"] + (1,), "VALID")
        elif k == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif k == "dense":
            x = x @ p["w"] + p["b"]
        elif k == "dropout" and train:
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1 - L["rate"], x.shape)
            x = jnp.where(keep, x / (1 - L["rate"]), 0)
        elif k == "batchnorm":
            axes = tuple(range(x.ndim - 1))
            if train:
                mean, var = x.mean(axes), x.var(axes)
                n = x.size // x.shape[-1]
                m = L["momentum"]   # PyTorch's convention; the running variance is unbiased
                s = {"mean": (1 - m) * s["mean"] + m * mean,
                     "var": (1 - m) * s["var"] + m * var * (n / (n - 1))}
            else:
                mean, var = s["mean"], s["var"]
            x = (x - mean) * lax.rsqrt(var + L["eps"]) * p["g"] + p["b"]
        elif k == "globalavgpool":
            x = x.mean(tuple(range(1, x.ndim - 1)))
        if k == "relu" or L.get("relu"):
            x = jax.nn.relu(x)
        new_state.append(s)
    return x, new_state


class Peer:
    def __init__(self, spec, a, xs, ys):
        params, state = init(spec, 1234)
        self.params = sum(int(v.size) for v in jax.tree_util.tree_leaves(params))
        self.xs = [jnp.asarray(np.moveaxis(x, 1, -1)) for x in xs]
        self.ys = [jnp.asarray(y) for y in ys]
        opt = optax.adam(spec["lr"])     # eps 1e-8, as PyTorch and deepsky
        xent = bool(spec["classes"])

        def loss_fn(params, state, x, y, key):
            out, state = forward(spec, params, state, x, True, key)
            if xent:
                loss = optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
            else:
                loss = jnp.mean((out - y) ** 2)
            return loss, state

        def step(params, opt_state, state, key, x, y):
            key, sub = jax.random.split(key)
            (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, state, x, y, sub)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, state, key, loss

        self.step = jax.jit(step, donate_argnums=(0, 1, 2, 3))
        self.forward = jax.jit(lambda params, state, x: forward(spec, params, state, x, False,
                                                                 None)[0])
        self.carry = (params, opt.init(params), state, jax.random.PRNGKey(99))

    def train_step(self, k):
        *self.carry, loss = self.step(*self.carry, self.xs[k], self.ys[k])
        return loss

    def loss_value(self, h):
        return float(h)

    def sync(self, h):
        h.block_until_ready()

    def infer(self, x):
        params, _, state, _ = self.carry
        x = jnp.asarray(np.moveaxis(x, 1, -1))
        forward = self.forward
        return lambda: forward(params, state, x).block_until_ready()


if __name__ == "__main__":
    version = f"{jax.__version__} (jaxlib {jaxlib.__version__}, optax {optax.__version__})"
    sys.exit(peer_common.run("jax_bench", "jax", version, Peer))
