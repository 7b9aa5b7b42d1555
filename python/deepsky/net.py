"""net.py - deepsky.Net: a network from a model file, trained, evaluated and run on NumPy
arrays through the library's ds_net_* functions."""
from __future__ import annotations

import ctypes
import os
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _explain, _lib, _onnx
from ._arrays import Borrowed, as_float32, shape_str, take_tensor
from ._lib import Error, check, enc, lib
from ._explain import Explanation
from ._progress import Callback, ProgressView, logs_of

PathLike = Union[str, "os.PathLike[str]"]
Data = Union[np.ndarray, Mapping[str, Any], Any]

_SCALES = {"none": 0, "standardize": 1, "per_image": 2, "asinh": 3, "divide": 4}
_AUGMENT = {"flips": 1, "rot90": 2, "hflip": 4}
_LABELS = {"auto": 0, "dense": 1, "index": 2}
_DS_ERR_STATE = 6


def _label_mode(y: np.ndarray) -> int:
    """The labels' kind as the command line infers it: class indices for [N] or [N, 1]."""
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        return _LABELS["index"]
    return _LABELS["dense"]


def _parse_scale(v: str) -> Tuple[int, float]:
    how, _, a = str(v).partition(":")
    if how not in _SCALES or (how == "divide" and not a):
        raise Error(f"scale={v!r}: give none, standardize, per_image, asinh[:A] or divide:A")
    try:
        return _SCALES[how], float(a) if a else 0.0
    except ValueError:
        raise Error(f"scale={v!r}: '{a}' is not a number") from None


def _fit_opts(augment: Optional[str], **values: Any) -> _lib.FitOpts:
    """ds_fit_opts of fit's arguments; augment names DS_AUG_* flags joined by commas."""
    fo = _lib.FitOpts(checkpoint_every=10.0, **values)
    for word in (augment.split(",") if augment else []):
        if word.strip() not in _AUGMENT:
            raise Error(f"augment={augment!r}: '{word}' is not flips, rot90 or hflip")
        fo.augment |= _AUGMENT[word.strip()]
    return fo


class Uncertain:
    """A prediction with uncertainty (predict(x, mc=N)): ``mean`` and ``std`` (total), and for
    a gaussian_nll output also ``aleatoric`` and ``epistemic``. Unpacks as (mean, std)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, aleatoric: Optional[np.ndarray],
                 epistemic: Optional[np.ndarray]) -> None:
        self.mean, self.std, self.aleatoric, self.epistemic = mean, std, aleatoric, epistemic

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.mean, self.std))

    def __repr__(self) -> str:
        return f"Uncertain(mean={shape_str(self.mean.shape)}, std={shape_str(self.std.shape)})"


class Net:
    """A network from a model file (the README's "Model files"), as the command line builds
    it: ``Net("model.model")``, ``Net("model.model", weights="w.safetensors")`` or
    ``Net.from_string(text)``. seed drives the initializers and dropout (the command line's
    --seed); batch_size is the size the graph is first built for (it changes as needed).
    labels: what a categorical loss reads, "index" (class indices [N]), "dense" (one-hot
    rows) or "auto": one-hot until fit or evaluate gets class indices, when the net is built
    again for them (weights and scaling kept), as the command line picks by the labels'
    shape."""

    def __init__(self, model: PathLike, weights: Optional[PathLike] = None, *, seed: int = 0,
                 batch_size: int = 32, labels: str = "auto") -> None:
        self._setup(("path", os.fspath(model)), weights, seed, batch_size, labels)

    @classmethod
    def from_string(cls, text: str, weights: Optional[PathLike] = None, *, name: str = "<string>",
                    seed: int = 0, batch_size: int = 32, labels: str = "auto") -> "Net":
        """A network from a model description in memory (ds_net_parse); name stands for the
        file in error messages ("<string>:3: ...")."""
        self = cls.__new__(cls)
        self._setup(("text", text, name), weights, seed, batch_size, labels)
        return self

    def _setup(self, source: tuple, weights: Optional[PathLike], seed: int, batch_size: int,
               labels: str) -> None:
        self._ptr: Optional[int] = None
        self._source = source
        self._seed, self._batch = int(seed), int(batch_size)
        if labels not in _LABELS:
            raise Error(f"labels={labels!r}: give 'auto', 'dense' or 'index'")
        self._labels: Dict[Optional[str], int] = {None: _LABELS[labels]}
        self.history: Dict[str, List[float]] = {}
        self.stop_training = False
        self._build()
        if weights is not None:
            self.load(weights)

    # ---- life cycle ----
    def _build(self) -> None:
        o = _lib.NetOpts(batch=self._batch, seed=self._seed, labels=self._labels.get(None, 0))
        named = [(k, v) for k, v in self._labels.items() if k is not None]
        self._keep = [enc(k) for k, _ in named]
        for i, (k, v) in enumerate(named):
            o.label_choices[i] = _lib.LabelChoice(self._keep[i], v)
        out = ctypes.c_void_p()
        if self._source[0] == "path":
            st = lib.ds_net_load(enc(self._source[1]), ctypes.byref(o), ctypes.byref(out))
        else:
            st = lib.ds_net_parse(enc(self._source[1]), enc(self._source[2]), ctypes.byref(o),
                                  ctypes.byref(out))
        check(st)
        self._ptr = out.value

    def _rebuild(self, labels: Dict[Optional[str], int]) -> None:
        """Builds the net again for other kinds of labels, keeping its weights and
        preprocessing (through a private weights file)."""
        with tempfile.TemporaryDirectory(prefix="deepsky-") as d:
            w = os.path.join(d, "w.safetensors")
            self.save(w)
            old, old_labels = self._ptr, self._labels
            self._labels = labels
            try:
                self._build()
            except Error:
                self._labels = old_labels
                raise
            lib.ds_net_free(old)
            self.load(w)

    def close(self) -> None:
        """Frees the library's net now (else when the object is collected)."""
        if getattr(self, "_ptr", None):
            lib.ds_net_free(self._ptr)
            self._ptr = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> "Net":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def ptr(self) -> int:
        if not self._ptr:
            raise Error("this Net was closed")
        return self._ptr

    # ---- description ----
    @property
    def inputs(self) -> List[str]:
        """Names of the inputs (input lines, in file order)."""
        return [lib.ds_net_input_name(self.ptr, i).decode()
                for i in range(lib.ds_net_input_count(self.ptr))]

    @property
    def outputs(self) -> List[str]:
        return [lib.ds_net_output_name(self.ptr, i).decode()
                for i in range(lib.ds_net_output_count(self.ptr))]

    @property
    def targets(self) -> List[str]:
        """Names of the losses that read labels (what fit's y dict is keyed by)."""
        return [lib.ds_net_target_name(self.ptr, i).decode()
                for i in range(lib.ds_net_target_count(self.ptr))]

    def input_shape(self, i: int = 0) -> Tuple[int, ...]:
        """Shape of one sample of input i (without the batch)."""
        node = lib.ds_net_input_at(self.ptr, i)
        sp = lib.ds_node_shape(node)
        return tuple(int(sp[k]) for k in range(1, lib.ds_node_ndim(node)))

    @property
    def is_classifier(self) -> bool:
        return bool(lib.ds_net_is_classifier(self.ptr))

    @property
    def optimizer(self) -> str:
        return lib.ds_optim_name(lib.ds_net_optim_opts_mut(self.ptr).contents.kind).decode()

    @property
    def lr(self) -> float:
        """The learning rate (the model file's; settable, as the command line's --lr)."""
        return float(lib.ds_net_optim_opts_mut(self.ptr).contents.lr)

    @lr.setter
    def lr(self, value: float) -> None:
        if not (1e-12 <= float(value) <= 1e3):
            raise Error(f"lr={value}: give a learning rate in [1e-12, 1000]")
        lib.ds_net_optim_opts_mut(self.ptr).contents.lr = float(value)

    def set_optimizer(self, name: str) -> None:
        """Another optimizer (sgd, adagrad, rmsprop, adam, adamw) with its own defaults, as
        the command line's --optimizer."""
        names = [lib.ds_optim_name(k).decode() for k in range(5)]
        if name not in names:
            raise Error(f"optimizer={name!r}: give one of {', '.join(names)}")
        o = lib.ds_net_optim_opts_mut(self.ptr).contents
        if names.index(name) != o.kind:
            ctypes.memset(ctypes.addressof(o), 0, ctypes.sizeof(o))
            o.kind = names.index(name)

    def summary(self, print_fn: Any = print) -> str:
        """Prints the Keras-like summary (layers, output shapes, parameters) and returns it."""
        text = _lib.take_string(lib.ds_net_summary(self.ptr))
        if print_fn:
            print_fn(text.rstrip("\n"))
        return text

    def __repr__(self) -> str:
        src = self._source[1] if self._source[0] == "path" else self._source[2]
        return f"deepsky.Net({src!r}, inputs={self.inputs}, outputs={self.outputs})"

    # ---- weights ----
    def save(self, path: PathLike) -> None:
        """Writes the weights and the preprocessing as one safetensors file (atomic)."""
        check(lib.ds_net_save_weights(self.ptr, enc(os.fspath(path))))

    def load(self, path: PathLike) -> None:
        """Loads weights (and preprocessing) from a safetensors file written by save or by
        `deepsky train`; every name and shape is checked first."""
        check(lib.ds_net_load_weights(self.ptr, enc(os.fspath(path))))

    def set_scaling(self, scale: str, x: Optional[Data] = None,
                    input: Optional[str] = None) -> None:
        """Input scaling, stored with the weights: none, standardize (statistics of x),
        per_image, asinh[:A], divide:A (the command line's --scale)."""
        kind, a = _parse_scale(scale)
        name = input if input is not None else (None if len(self.inputs) == 1 else "")
        if name == "":
            raise Error(f"set_scaling: the model has inputs {self.inputs}: name one")
        arr = None
        if x is not None:
            idx = self.inputs.index(name) if name else 0
            arr = self._fit_input(as_float32(x, "x"), idx, name or self.inputs[0])
        with Borrowed() as b:
            t = b.tensor(arr) if arr is not None else None
            check(lib.ds_net_set_input_scaling(self.ptr, enc(name), kind, a, t))

    # ---- data ----
    def _fit_input(self, a: np.ndarray, i: int, name: str) -> np.ndarray:
        """a shaped as input i's samples: [N, *sample] as it is, or a view of another shape
        with as many values per sample (e.g. [N, 28, 28] for [1, 28, 28])."""
        want = self.input_shape(i)
        if a.ndim == len(want) + 1:
            return a
        per = int(np.prod(want))
        if a.ndim >= 1 and int(np.prod(a.shape[1:])) == per:
            return a.reshape((a.shape[0],) + want)
        raise Error(f"input '{name}': data of shape {shape_str(a.shape)} does not fit the "
                    f"model, which takes samples of shape {shape_str(want)} ({per} values): "
                    f"give an array of shape (N, {', '.join(map(str, want))})")

    def _named(self, data: Data, names: List[str], what: str) -> List[Tuple[str, Any]]:
        if isinstance(data, Mapping):
            unknown = [k for k in data if k not in names]
            if unknown:
                raise Error(f"{what}: the model has no {what} named {unknown[0]!r} "
                            f"(it has {', '.join(names) or 'none'})")
            return [(k, data[k]) for k in names if k in data]
        if isinstance(data, (list, tuple)) and len(names) > 1 and len(data) == len(names):
            return list(zip(names, data))
        if len(names) != 1:
            raise Error(f"{what}: the model has {len(names)} {what}s ({', '.join(names)}): "
                        "give a dict name -> array")
        return [(names[0], data)]

    def _inputs(self, x: Data) -> List[Tuple[str, np.ndarray]]:
        names = self.inputs
        out = []
        for name, v in self._named(x, names, "input"):
            a = as_float32(v, f"input '{name}'")
            out.append((name, self._fit_input(a, names.index(name), name)))
        return out

    def _labels_of(self, y: Data) -> List[Tuple[str, np.ndarray]]:
        return [(k, as_float32(v, f"labels '{k}'")) for k, v in self._named(y, self.targets,
                                                                             "target")]

    def _match_labels(self, ys: List[Tuple[str, np.ndarray]]) -> None:
        """Builds the net again when the labels' kind (class indices or rows) is not the one
        it was built for, as the command line builds it from the labels' shape."""
        if len(self.targets) == 1:
            if not self.is_classifier:
                return   # only categorical losses read labels of either kind
            want = {None: _label_mode(ys[0][1])}
        else:
            want = {None: self._labels.get(None, 0)}
            want.update({k: _label_mode(v) for k, v in ys})
        norm = {k: (v if v != _LABELS["auto"] else _LABELS["dense"]) for k, v in want.items()}
        have = {k: (v if v != _LABELS["auto"] else _LABELS["dense"])
                for k, v in self._labels.items()}
        if norm != have:
            self._rebuild(want)

    def _feed(self, b: Borrowed, xs: List[Tuple[str, np.ndarray]],
              ys: Optional[List[Tuple[str, np.ndarray]]], keep: list,
              what: Tuple[str, str]) -> _lib.Feed:
        """The feed of borrowed arrays; messages name them as what says ("x", "y")."""
        f = _lib.Feed()
        for items, slots, word in ((xs, f.inputs, what[0]), (ys or [], f.labels, what[1])):
            for i, (k, a) in enumerate(items):
                name = enc(k)
                src = enc(word if len(items) == 1 else f"{word}['{k}']")
                keep += [name, src]
                slots[i] = _lib.FeedItem(name, b.tensor(a), src)
        return f

    def _scaled(self) -> bool:
        return any(lib.ds_net_input_scaling(self.ptr, i) for i in range(len(self.inputs)))

    def _prepared(self, b: Borrowed, x: Data, y: Optional[Data], keep: list,
                  what: Tuple[str, str] = ("x", "y")) -> _lib.Feed:
        """A checked, preprocessed feed: the arrays borrowed as they are, or copied first
        when the net scales its inputs (preprocessing works in place)."""
        xs = self._inputs(x)
        ys = self._labels_of(y) if y is not None else None
        if self._scaled():
            xs = [(k, np.array(a, dtype=np.float32, order="C", copy=True)) for k, a in xs]
        f = self._feed(b, xs, ys, keep, what)
        check(lib.ds_net_check_feed(self.ptr, ctypes.byref(f)))
        check(lib.ds_net_preprocess_feed(self.ptr, ctypes.byref(f)))
        return f

    # ---- training ----
    def fit(self, x: Data, y: Data, *, epochs: int = 10, batch_size: int = 32,
            validation_data: Optional[Tuple[Data, Data]] = None,
            callbacks: Optional[Sequence[Callback]] = None, verbose: int = 1,
            seed: Optional[int] = None, shuffle: bool = True,
            scale: Optional[Union[str, Mapping[str, str]]] = None,
            patience: int = 0, accumulate: int = 1, augment: Optional[str] = None,
            lr: Optional[float] = None, optimizer: Optional[str] = None,
            max_seconds: float = 0.0, skip_nonfinite: bool = False) -> Dict[str, List[float]]:
        """Trains on x (an array, an astropy Table, or a dict input name -> array) with labels
        y (a dict target name -> array for several), as `deepsky train` does with the same
        options: the same seed gives the same weights, bit for bit.

        validation_data: (x_val, y_val); callbacks: deepsky.Callback objects; verbose 0, 1
        (a progress bar, in a terminal or in Jupyter) or 2 (a line per epoch); seed: of the
        shuffling, augmentation and dropout (default: the net's); scale: the command line's
        --scale (statistics from x; a dict input name -> how for several); patience: early stopping on the validation loss;
        augment: "flips", "rot90", "hflip" joined by commas.
        Returns the history, a dict of lists per epoch ("loss", "acc" or "rmse", "val_loss",
        ...), also kept in net.history. KeyboardInterrupt stops training between two batches
        (the weights are those of the last whole step; net.history holds the epochs done)
        and is raised again."""
        if optimizer is not None:
            self.set_optimizer(optimizer)
        if lr is not None:
            self.lr = lr
        if patience and validation_data is None:
            raise Error("patience (early stopping) needs validation_data")
        if validation_data is not None and len(validation_data) != 2:
            raise Error("validation_data: give a pair (x_val, y_val)")
        self._match_labels(self._labels_of(y))
        fo = _fit_opts(epochs=int(epochs), batch_size=int(batch_size),
                       accumulate=int(accumulate), seed=self._seed if seed is None else int(seed),
                       no_shuffle=0 if shuffle else 1, patience=int(patience),
                       max_seconds=float(max_seconds), skip_nonfinite=int(skip_nonfinite),
                       augment=augment)
        if scale is not None:
            self._scale_from(scale, x)
        run = _Run(self, list(callbacks or []), verbose)
        fo.progress, fo.grad_hook = run.progress_fn, run.hook_fn
        keep: list = []
        res = _lib.FitResult()
        with Borrowed() as b:
            f = self._prepared(b, x, y, keep)
            fv = None
            if validation_data is not None:
                fv = self._prepared(b, validation_data[0], validation_data[1], keep,
                                    ("validation x", "validation y"))
            run.begin()
            st = lib.ds_net_fit_feed(self.ptr, ctypes.byref(f),
                                     ctypes.byref(fv) if fv is not None else None,
                                     ctypes.byref(fo), ctypes.byref(res))
        self.fit_result = res
        return run.finish(st)

    def _scale_from(self, scale: Union[str, Mapping[str, str]], x: Data) -> None:
        xs = dict(self._inputs(x))
        items = [(None, scale)] if not isinstance(scale, Mapping) else list(scale.items())
        for name, how in items:
            if name is None and len(xs) > 1:
                for k in xs:
                    self._set_scale(k, how, xs[k])
            else:
                k = name or self.inputs[0]
                self._set_scale(k, how, xs[k])

    def _set_scale(self, name: str, how: str, a: np.ndarray) -> None:
        kind, v = _parse_scale(how)
        with Borrowed() as b:
            check(lib.ds_net_set_input_scaling(self.ptr, enc(name), kind, v, b.tensor(a)))

    # ---- inference ----
    def predict(self, x: Data, *, batch_size: int = 256, mc: int = 0,
                seed: int = 0) -> Any:
        """The outputs for x in inference mode (preprocessed as stored with the weights): an
        array [N, ...] for a net with one output, else a dict output name -> array. The
        arrays use the library's memory (no copy).

        mc=N > 0: Monte Carlo dropout, N stochastic passes (ds_net_predict_mc, seeded by
        seed), each output an Uncertain (mean, std; unpacks as ``mean, std = ...``); a
        classifier's draws are pooled as probabilities, as `deepsky predict --mc`."""
        keep: list = []
        names = self.outputs
        with Borrowed() as b:
            f = self._prepared(b, x, None, keep)
            if mc:
                return self._predict_mc(f, int(mc), int(seed), int(batch_size), names)
            outs = (ctypes.c_void_p * len(names))()
            check(lib.ds_net_predict_feed(self.ptr, ctypes.byref(f), int(batch_size), outs))
        arrays = [take_tensor(outs[i]) for i in range(len(names))]
        return arrays[0] if len(arrays) == 1 else dict(zip(names, arrays))

    def _predict_mc(self, f: _lib.Feed, passes: int, seed: int, batch: int,
                    names: List[str]) -> Any:
        o = _lib.UqOpts(passes=passes, seed=seed, batch=batch, probs=1)
        outs = (_lib.UqOutput * len(names))()
        check(lib.ds_net_predict_mc(self.ptr, ctypes.byref(f), ctypes.byref(o), outs))
        res = []
        for u in outs:
            parts = [take_tensor(u.mean), take_tensor(u.std), take_tensor(u.std_aleatoric),
                     take_tensor(u.std_epistemic)]
            for extra in (u.draws, u.classes):   # not asked for; freed if given
                if extra:
                    lib.ds_tensor_free(extra)
            res.append(Uncertain(*parts))
        return res[0] if len(res) == 1 else dict(zip(names, res))

    def evaluate(self, x: Data, y: Data, *, batch_size: int = 256,
                 verbose: int = 0) -> Dict[str, Any]:
        """Loss and metrics on (x, y) in inference mode, as `deepsky eval`: a dict ("loss",
        "accuracy" or "rmse", "mae", ...; arrays for per-class or per-output values). The
        printable report is kept in net.report (printed when verbose)."""
        keep: list = []
        ys = self._labels_of(y)
        self._match_labels(ys)
        vals = lib.ds_tensor_set_create()
        if not vals:
            check(1)
        try:
            rep = ctypes.c_void_p()
            with Borrowed() as b:
                f = self._prepared(b, x, y, keep)
                check(lib.ds_net_evaluate_feed(self.ptr, ctypes.byref(f), int(batch_size),
                                               ctypes.byref(rep), vals))
            self.report = _lib.take_string(rep.value)
            out: Dict[str, Any] = {}
            for i in range(lib.ds_tensor_set_count(vals)):
                t = lib.ds_tensor_set_at(vals, i)
                n = lib.ds_tensor_numel(t)
                a = np.ctypeslib.as_array(ctypes.cast(lib.ds_tensor_data(t),
                                                      ctypes.POINTER(ctypes.c_float)),
                                          shape=(n,)).copy() if n else np.zeros(0, np.float32)
                nd = lib.ds_tensor_ndim(t)
                sp = lib.ds_tensor_shape(t)
                a = a.reshape(tuple(int(sp[k]) for k in range(nd)))
                out[lib.ds_tensor_set_name(vals, i).decode()] = float(a) if a.size == 1 \
                    and nd <= 1 else a
        finally:
            lib.ds_tensor_set_free(vals)
        if verbose:
            print(self.report.rstrip("\n"))
        return out

    # ---- looking inside, ONNX ----
    def explain(self, x: Data, method: str = "saliency", *, output: Union[int, str] = 0,
                target: Optional[Union[int, Sequence[int]]] = None,
                **options: Any) -> "Explanation":
        """An attribution map for each sample of x (preprocessed as stored with the weights),
        as `deepsky explain`: method "saliency", "gradient-x-input", "integrated-gradients",
        "smoothgrad", "occlusion" or "grad-cam". target: the class or value explained, one
        for all samples or one each (None: the predicted class). options: those of
        ds_explain_opts (steps, samples, noise, seed, patch, stride, baseline "zero",
        "mean" or "blur", blur, layer, batch). Returns an Explanation (map, score, target,
        delta)."""
        return _explain.explain(self, x, method, output, target, **options)

    def filters(self, layer: Optional[str] = None) -> np.ndarray:
        """The kernels of a convolution layer (None: the first): [out, in, k...], averaged
        over the input channels for a deeper layer."""
        return _explain.filters(self, layer)

    def feature_maps(self, x: Data, layer: str) -> np.ndarray:
        """The output of layer for every sample of x: [N, layer shape]."""
        return _explain.feature_maps(self, x, layer)

    def class_visualization(self, targets: Sequence[int], start: Optional[np.ndarray] = None,
                            **options: Any) -> Dict[str, np.ndarray]:
        """Gradient ascent on the input for each target (a class, or with layer= a channel):
        {"images": [count, input shape], "scores": [count, steps + 1]}; options: steps, lr,
        l2, tv, jitter, seed, layer, output."""
        return _explain.class_visualization(self, targets, start, **options)

    def export_onnx(self, path: Optional[PathLike] = None) -> Optional[bytes]:
        """The inference graph with its weights and preprocessing as ONNX (opset 17), to path
        (atomic) or, with no path, returned as bytes."""
        return _onnx.export_onnx(self, path)


class _Run:
    """One fit call's Python side: progress, callbacks, history, and the stop between
    batches (the gradient hook returns DS_ERR_STATE, so the step in flight is not applied)."""

    def __init__(self, net: Net, callbacks: List[Callback], verbose: int) -> None:
        self.net, self.callbacks = net, callbacks
        self.view = ProgressView(verbose)
        self.error: Optional[BaseException] = None
        self.history: Dict[str, List[float]] = {}
        self.progress_fn = _lib.PROGRESS_FN(self._progress)
        self.hook_fn = _lib.GRAD_HOOK(self._hook)

    def begin(self) -> None:
        self.net.stop_training = False
        self.net.history = self.history
        for cb in self.callbacks:
            cb.set_net(self.net)
            cb.on_train_begin({})

    def _progress(self, ctx: Any, pp: Any) -> None:
        try:
            p = pp.contents
            end = bool(p.end_of_epoch)
            logs = logs_of(p, end)
            self.view.update(p, logs)
            if not end:   # the library calls once more, at the end of an epoch
                for cb in self.callbacks:
                    cb.on_batch_end(int(p.batch) - 1, logs)
            else:
                for k, v in logs.items():
                    self.history.setdefault(k, []).append(float(v))
                for cb in self.callbacks:
                    cb.on_epoch_end(int(p.epoch) - 1, logs)
        except BaseException as e:   # KeyboardInterrupt included: stop at the next step
            self.error = self.error or e

    def _hook(self, ctx: Any, info: Any) -> int:
        try:
            stop = self.error is not None or self.net.stop_training
        except BaseException as e:
            self.error = self.error or e
            stop = True
        return _DS_ERR_STATE if stop else 0

    def finish(self, status: int) -> Dict[str, List[float]]:
        stopped = self.error is not None or self.net.stop_training
        if status and not stopped:
            check(status)
        for cb in self.callbacks:
            cb.on_train_end({k: v[-1] for k, v in self.history.items()})
        if self.error is not None:
            raise self.error
        return self.history
