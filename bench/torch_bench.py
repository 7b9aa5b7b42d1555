"""torch_bench.py - the PyTorch peer of the benchmark suite: the networks of bench/models/*.model
built in PyTorch (channels-first, eager mode), timed on synthetic data exactly as
bench/deepsky_bench.c times deepsky (bench/peer_common.py holds the protocol).

    PYTHON bench/torch_bench.py MODEL --threads N --batch B [--warmup S] [--time S]
                                [--infer-time S] [--infer-batches B1,B2,...] [--min-iters K]

bench/run.py runs it with Debian's /usr/bin/python3 (PyTorch 1.13) and, with PEERS=all, with
the Python of bench/.venv (PyTorch 2.x from PyPI). Prints one JSON line. Threads: intra-op
threads are set to N (torch.set_num_threads); OpenBLAS is held to one thread
(OPENBLAS_NUM_THREADS=1, set before torch loads it) so that it does not fight torch's own
threads. Fast paths stay on (oneDNN convolutions, inference_mode, set_to_none gradients).
"""
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import peer_common  # noqa: E402


def build(spec):
    """The nn.Sequential of a peer_common model spec (channels-first, as deepsky)."""
    mods = []
    for L in spec["layers"]:
        k = L["kind"]
        if k == "conv":
            conv = nn.Conv2d if L["nd"] == 2 else nn.Conv1d
            mods.append(conv(L["cin"], L["filters"], L["kernel"], L["stride"], L["pad"]))
        elif k == "maxpool":
            mods.append((nn.MaxPool2d if L["nd"] == 2 else nn.MaxPool1d)(L["size"], L["stride"]))
        elif k == "flatten":
            mods.append(nn.Flatten())
        elif k == "dense":
            mods.append(nn.Linear(L["fin"], L["units"]))
        elif k == "dropout":
            mods.append(nn.Dropout(L["rate"]))
        elif k == "batchnorm":
            bn = nn.BatchNorm2d if L["nd"] == 2 else nn.BatchNorm1d
            mods.append(bn(L["channels"], eps=L["eps"], momentum=L["momentum"]))
        elif k == "relu":
            mods.append(nn.ReLU())
        elif k == "globalavgpool":
            pool = nn.AdaptiveAvgPool2d if L["nd"] == 2 else nn.AdaptiveAvgPool1d
            mods += [pool(1), nn.Flatten()]
        if L.get("relu"):
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class Peer:
    def __init__(self, spec, a, xs, ys):
        torch.set_num_threads(a.threads)
        torch.manual_seed(1234)
        self.model = build(spec)
        self.params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.xs = [torch.from_numpy(x) for x in xs]
        self.ys = [torch.from_numpy(y) for y in ys]
        self.loss_fn = nn.CrossEntropyLoss() if spec["classes"] else nn.MSELoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=spec["lr"])
        self.model.train()

    def train_step(self, k):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.xs[k]), self.ys[k])
        loss.backward()
        self.opt.step()
        return loss.detach()

    def loss_value(self, h):
        return float(h)

    def sync(self, h):
        pass

    def infer(self, x):
        if self.model.training:      # training is over: inference mode from here on
            self.model.eval()
            self.inference = torch.inference_mode()
            self.inference.__enter__()
        x = torch.from_numpy(x)
        model = self.model
        return lambda: model(x)


if __name__ == "__main__":
    sys.exit(peer_common.run("torch_bench", "torch", torch.__version__, Peer))
