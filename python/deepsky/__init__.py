"""deepsky - NumPy-native Python interface to the deepsky deep-learning library (C11),
through ctypes over libdeepsky.so: no compiled extension.

    import deepsky
    net = deepsky.Net("galaxy.model", seed=1)
    history = net.fit(x, y, epochs=10, batch_size=64, validation_data=(xv, yv))
    mean, std = net.predict(x_test, mc=50)

The library is looked up in $DEEPSKY_LIB, then in the package (a wheel's copy), then in the
source tree's build/ folder, then on the system (ldconfig).
"""
from __future__ import annotations

from ._lib import Error, path as library_path
from ._lib import lib as _clib
from ._arrays import load_array, save_array
from ._progress import Callback
from ._explain import Explanation
from ._onnx import import_onnx
from .net import Net, Uncertain

__all__ = ["Net", "Error", "Callback", "Uncertain", "Explanation", "load_array", "save_array",
           "import_onnx",
           "build_info", "has_feature", "set_num_threads", "get_num_threads",
           "library_path", "__version__"]


def build_info() -> str:
    """The library's version and parts, e.g. "0.1.0 (+fits +plot +blas +openmp, native)"."""
    return _clib.ds_build_info().decode()


def has_feature(name: str) -> bool:
    """Whether the library was built with "fits", "plot", "blas", "openmp" or "portable"."""
    return bool(_clib.ds_has_feature(name.encode()))


def set_num_threads(n: int) -> None:
    """Threads of the library's kernels for the calling thread (n <= 0: all cores)."""
    _clib.ds_set_num_threads(int(n))


def get_num_threads() -> int:
    return int(_clib.ds_get_num_threads())


__version__ = build_info().split()[0]
