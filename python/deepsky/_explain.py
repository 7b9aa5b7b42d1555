"""_explain.py - net.explain and its kin: attributions (saliency, gradient x input,
integrated gradients, SmoothGrad, occlusion, Grad-CAM), first-layer filters, feature maps
and class visualization, through the library's ds_explain_* functions."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from . import _lib
from ._arrays import Borrowed, take_tensor
from ._lib import Error, check, enc, lib

_BASELINES = {"zero": 0, "mean": 1, "blur": 2}
_RULES = {"midpoint": 0, "piecewise": 1, "trapezoid": 2, "gauss-legendre": 3, "left": 4}
PREDICTED = -1


class Explanation:
    """An attribution: ``map`` (the method's shape, see README "deepsky explain"), ``score``
    [N] (the explained value f(x)), ``target`` [N] (the class or value explained) and, for
    integrated gradients, ``delta`` [N] (the completeness error sum(map) - (f(x) - f(b)))."""

    def __init__(self, method: str, map: np.ndarray, score: np.ndarray, target: np.ndarray,
                 delta: Optional[np.ndarray]) -> None:
        self.method, self.map, self.score, self.target, self.delta = \
            method, map, score, target, delta

    def __repr__(self) -> str:
        return f"Explanation({self.method!r}, map {tuple(self.map.shape)})"


def _opts(net: Any, output: Union[int, str], target: Optional[Union[int, Sequence[int]]],
          n: int, keep: list, **kw: Any) -> _lib.ExplainOpts:
    """The C options: output by index or name, one target for all samples or one each."""
    if isinstance(output, str):
        if output not in net.outputs:
            raise Error(f"explain: no output named '{output}' (the outputs: "
                        f"{', '.join(net.outputs)})")
        output = net.outputs.index(output)
    o = _lib.ExplainOpts(output=int(output), target=PREDICTED)
    if target is not None and np.ndim(target) == 0:
        o.target = int(target)
    elif target is not None:
        t = np.ascontiguousarray(target, dtype=np.int64).ravel()
        if t.size != n:
            raise Error(f"explain: {t.size} targets for {n} samples (give one, or one each)")
        keep.append(t)
        o.targets = t.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))
    baseline = kw.pop("baseline", "zero")
    if baseline not in _BASELINES:
        raise Error(f"explain: baseline={baseline!r}: give 'zero', 'mean' or 'blur'")
    o.baseline = _BASELINES[baseline]
    rule = kw.pop("rule", "midpoint")
    if rule not in _RULES:
        raise Error(f"explain: rule={rule!r}: give one of {', '.join(_RULES)}")
    o.ig_rule = _RULES[rule]
    layer = kw.pop("layer", None)
    if layer is not None:
        keep.append(enc(layer))
        o.layer = keep[-1]
    for k, v in kw.items():
        if k not in dict(_lib.ExplainOpts._fields_) or k in ("targets", "output", "target",
                                                            "ig_rule", "input", "others"):
            raise Error(f"explain: unknown option {k!r}")
        setattr(o, k, v)
    return o


def _copy(t: Optional[int]) -> Optional[np.ndarray]:
    """A copy of a tensor the result owns (ds_explain_result_free frees it)."""
    if not t:
        return None
    nd = lib.ds_tensor_ndim(t)
    sp = lib.ds_tensor_shape(t)
    shape = tuple(int(sp[i]) for i in range(nd))
    n = int(np.prod(shape)) if shape else 1
    if n == 0:
        return np.zeros(shape, np.float32)
    p = ctypes.cast(lib.ds_tensor_data(t), ctypes.POINTER(ctypes.c_float))
    return np.ctypeslib.as_array(p, shape=(n,)).reshape(shape).copy()


def _one_input(net: Any, b: Borrowed, x: Any, keep: list) -> int:
    """x preprocessed as stored with the weights, as the one data input's tensor."""
    if len(net.inputs) != 1:
        raise Error(f"explain: the net has {len(net.inputs)} data inputs "
                    f"({', '.join(net.inputs)}); explain works on nets with one")
    f = net._prepared(b, x, None, keep)
    return f.inputs[0].data


def explain(net: Any, x: Any, method: str, output: Union[int, str] = 0,
            target: Optional[Union[int, Sequence[int]]] = None, **kw: Any) -> Explanation:
    if method not in _lib.EXPLAIN_METHODS:
        raise Error(f"explain: unknown method {method!r} (the methods: "
                    f"{', '.join(_lib.EXPLAIN_METHODS)}; and net.filters, "
                    "net.feature_maps, net.class_visualization)")
    keep: list = []
    res = _lib.ExplainResult()
    with Borrowed() as b:
        t = _one_input(net, b, x, keep)
        n = int(lib.ds_tensor_shape(t)[0])
        o = _opts(net, output, target, n, keep, **kw)
        check(getattr(lib, _lib.EXPLAIN_METHODS[method])(net.ptr, t, ctypes.byref(o),
                                                        ctypes.byref(res)))
    try:
        tg = np.ctypeslib.as_array(res.target, shape=(n,)).copy() if n else \
            np.zeros(0, np.int64)
        return Explanation(method, _copy(res.map), _copy(res.score), tg, _copy(res.delta))
    finally:
        lib.ds_explain_result_free(ctypes.byref(res))


def filters(net: Any, layer: Optional[str] = None) -> np.ndarray:
    out = ctypes.c_void_p()
    check(lib.ds_explain_filters(net.ptr, enc(layer), ctypes.byref(out)))
    return take_tensor(out.value)


def feature_maps(net: Any, x: Any, layer: str) -> np.ndarray:
    keep: list = []
    out = ctypes.c_void_p()
    with Borrowed() as b:
        t = _one_input(net, b, x, keep)
        o = _opts(net, 0, None, 0, keep, layer=layer)
        check(lib.ds_explain_feature_maps(net.ptr, t, ctypes.byref(o), ctypes.byref(out)))
    return take_tensor(out.value)


def class_visualization(net: Any, targets: Sequence[int], start: Optional[np.ndarray] = None,
                        output: Union[int, str] = 0, **kw: Any) -> Dict[str, np.ndarray]:
    keep: list = []
    tg = np.ascontiguousarray(np.atleast_1d(targets), dtype=np.int64)
    imgs, scores = ctypes.c_void_p(), ctypes.c_void_p()
    with Borrowed() as b:
        st = b.tensor(np.ascontiguousarray(start, dtype=np.float32)) if start is not None \
            else None
        o = _opts(net, output, None, 0, keep, **kw)
        check(lib.ds_explain_class_visualization(
            net.ptr, tg.size, tg.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), st,
            ctypes.byref(o), ctypes.byref(imgs), ctypes.byref(scores)))
    return {"images": take_tensor(imgs.value), "scores": take_tensor(scores.value)}
