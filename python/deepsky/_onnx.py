"""_onnx.py - ONNX out of and into deepsky: net.export_onnx and deepsky.import_onnx, through
ds_onnx_export(_mem) and ds_onnx_import_mem (opset 17; README "ONNX export and import")."""
from __future__ import annotations

import ctypes
import os
import tempfile
from typing import Any, Optional, Tuple, Union

from . import _lib
from ._lib import check, enc, lib


def export_onnx(net: Any, path: Optional[Union[str, "os.PathLike[str]"]] = None) -> Optional[bytes]:
    if path is not None:
        check(lib.ds_onnx_export(net.ptr, enc(path)))
        return None
    buf, n = ctypes.c_void_p(), ctypes.c_size_t()
    check(lib.ds_onnx_export_mem(net.ptr, ctypes.byref(buf), ctypes.byref(n)))
    try:
        return ctypes.string_at(buf.value, n.value)
    finally:
        _lib.free(buf.value)


def import_onnx(source: Union[bytes, str, "os.PathLike[str]"], **net_kw: Any) -> Tuple[str, Any]:
    """(model file text, Net holding the ONNX weights) of an ONNX model given as a path or
    as bytes; net_kw go to Net.from_string (seed, batch_size, labels)."""
    from .net import Net
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "<bytes>"
    else:
        name = os.fspath(source)
        with open(name, "rb") as f:
            data = f.read()
    text_p, net_p = ctypes.c_void_p(), ctypes.c_void_p()
    check(lib.ds_onnx_import_mem(data, len(data), enc(name), ctypes.byref(text_p),
                                 ctypes.byref(net_p)))
    try:
        text = _lib.take_string(text_p.value)
        with tempfile.TemporaryDirectory(prefix="deepsky-onnx-") as d:
            w = os.path.join(d, "w.safetensors")
            check(lib.ds_net_save_weights(net_p.value, enc(w)))
            return text, Net.from_string(text, weights=w, name=name, **net_kw)
    finally:
        lib.ds_net_free(net_p.value)
