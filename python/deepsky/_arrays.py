"""_arrays.py - NumPy arrays and astropy Tables to and from the library's float32 tensors,
and deepsky.load_array.

Into the library: a C-contiguous, aligned float32 array is borrowed in place (ds_tensor_borrow:
no copy); any other real or integer array is converted to a float32 copy first. Out of the
library: a tensor's memory becomes the NumPy array's (no copy), freed with the array.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _lib
from ._lib import Error, check, enc, lib

PathLike = Union[str, "os.PathLike[str]"]


def shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def is_table(obj: Any) -> bool:
    """An astropy Table (or anything with colnames and columns by name)."""
    return hasattr(obj, "colnames") and hasattr(obj, "columns")


def table_to_array(t: Any, what: str) -> np.ndarray:
    """The numeric columns of an astropy Table side by side as float32 [rows, columns]; a
    column of several values per row gives several columns. Masked values become NaN (which
    the library then refuses, naming the sample)."""
    cols = []
    for name in t.colnames:
        col = t[name]
        a = np.ma.filled(np.ma.asarray(col).astype(np.float64), np.nan) \
            if np.ma.isMaskedArray(getattr(col, "data", col)) or hasattr(col, "mask") \
            else np.asarray(col)
        if a.dtype.kind not in "biuf":
            raise Error(f"{what}: table column '{name}' of type {a.dtype} is not numeric")
        cols.append(np.asarray(a, dtype=np.float32).reshape(len(t), -1))
    if not cols:
        raise Error(f"{what}: the table has no columns")
    return np.ascontiguousarray(np.concatenate(cols, axis=1))


def as_float32(x: Any, what: str) -> np.ndarray:
    """x as a float32 array: itself when it already is one in C order and aligned (no copy),
    else a converted copy. Tables become [rows, columns]. Error for non-numeric data."""
    if is_table(x):
        return table_to_array(x, what)
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):   # pandas
        x = x.to_numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise Error(f"{what}: an array of shape {shape_str(a.shape)} and dtype {a.dtype} is "
                    "not numeric: give float32 (or any real or integer type, converted)")
    if a.ndim > _lib.MAX_DIMS:
        raise Error(f"{what}: an array of shape {shape_str(a.shape)} has more than "
                    f"{_lib.MAX_DIMS} dimensions")
    if a.dtype == np.float32 and a.flags.c_contiguous and a.flags.aligned and \
            a.dtype.byteorder in "=|<":
        return a
    return np.ascontiguousarray(a, dtype=np.float32)


class Borrowed:
    """ds_tensor handles over float32 arrays, freed together (the arrays stay the caller's)."""

    def __init__(self) -> None:
        self.handles: list = []
        self.arrays: list = []   # keeps every array alive while the handles are in use

    def tensor(self, a: np.ndarray) -> int:
        shape = (ctypes.c_int64 * max(a.ndim, 1))(*a.shape)
        ptr = a.ctypes.data if a.size else None
        t = lib.ds_tensor_borrow(a.ndim, shape, ptr)
        if not t:
            check(2, "cannot borrow the array")
        self.handles.append(t)
        self.arrays.append(a)
        return t

    def close(self) -> None:
        for t in self.handles:
            lib.ds_tensor_free(t)
        self.handles.clear()
        self.arrays.clear()

    def __enter__(self) -> "Borrowed":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Owner:
    """Owns a ds_tensor whose memory a NumPy array uses (its base): freed with the array."""

    def __init__(self, t: int) -> None:
        self.t = t
        nd = lib.ds_tensor_ndim(t)
        sp = lib.ds_tensor_shape(t)
        shape = tuple(int(sp[i]) for i in range(nd))
        self.__array_interface__ = {"shape": shape, "typestr": "<f4", "version": 3,
                                    "data": (lib.ds_tensor_data(t) or 0, False)}

    def __del__(self) -> None:
        if self.t:
            lib.ds_tensor_free(self.t)
            self.t = None


def take_tensor(t: Optional[int]) -> Optional[np.ndarray]:
    """A tensor the library made, as a NumPy array over its memory (no copy)."""
    if not t:
        return None
    owner = _Owner(t)
    if lib.ds_tensor_numel(t) == 0:
        return np.zeros(owner.__array_interface__["shape"], dtype=np.float32)
    return np.asarray(owner)


_HEADERS = {None: 0, "auto": 0, "names": 1, "none": 2}


def load_array(path: PathLike, *, columns: Optional[Union[str, Sequence[str]]] = None,
               hdu: Optional[Union[int, str]] = None, exclude: Optional[str] = None,
               header: Optional[str] = None) -> np.ndarray:
    """Reads a data file into a float32 array, as the command line reads --data: .npy, FITS
    (.fits .fit .fts, also .gz; images as [NAXISn, ..., NAXIS1], tables as [rows, columns]),
    CSV/TSV (also .gz) and IDX (MNIST-style). The array uses the library's memory (no copy).

    columns: table columns to read ("mag_u,mag_g", "2-5", or a list of names);
    hdu: FITS HDU number (1 = primary) or EXTNAME; exclude: columns left out of every
    numeric column; header: CSV first line, "auto", "names" or "none".
    Raises deepsky.Error with the library's message (naming the file, line, HDU)."""
    if header not in _HEADERS:
        raise Error(f"load_array: header={header!r} is not 'auto', 'names' or 'none'")
    if columns is not None and not isinstance(columns, str):
        columns = ",".join(str(c) for c in columns)
    o = _lib.ReadOpts(columns=enc(columns), exclude=enc(exclude), header=_HEADERS[header])
    if isinstance(hdu, str):
        o.hdu_name = enc(hdu)
    elif hdu is not None:
        o.hdu = int(hdu)
    out = ctypes.c_void_p()
    check(lib.ds_array_load(enc(os.fspath(path)), ctypes.byref(o), ctypes.byref(out)))
    return take_tensor(out.value)


def save_array(a: Any, path: PathLike) -> None:
    """Writes an array by extension (.npy, .fits, .csv), atomically, as the library does."""
    x = as_float32(a, "save_array")
    with Borrowed() as b:
        check(lib.ds_array_save(b.tensor(x), enc(os.fspath(path)), None))
