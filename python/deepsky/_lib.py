"""_lib.py - finds and loads libdeepsky.so through ctypes and declares the C API it binds.

Only functions of include/deepsky.h are bound. ctypes releases the GIL around every call of
a CDLL function, so other Python threads run while the library trains or predicts.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float,
                    c_int, c_int64, c_uint64, c_void_p)
from pathlib import Path
from typing import List, Optional

FEED_MAX = 16   # DS_FEED_MAX
MAX_DIMS = 6    # DS_MAX_DIMS
STATUS_NAMES = ["ok", "out of memory", "bad argument", "shape mismatch", "I/O error",
                "bad format", "bad state", "bad value"]


class Error(Exception):
    """A failure of the deepsky library: the message is the library's (ds_last_error), which
    names the file, line, layer or shape at fault; ``status`` is the ds_status name."""

    def __init__(self, message: str, status: str = "bad argument") -> None:
        super().__init__(message)
        self.status = status


# ---- structs of include/deepsky.h (tests/test_python.c's pytest checks their layout) ----
class ReadInfo(Structure):
    _fields_ = [("first_line", c_int), ("guessed", c_int), ("hdu", c_int), ("table", c_int),
                ("note", c_char * 400)]


class ReadOpts(Structure):
    _fields_ = [("columns", c_char_p), ("hdu", c_int), ("hdu_name", c_char_p),
                ("exclude", c_char_p), ("header", c_int), ("info", POINTER(ReadInfo))]


class LabelChoice(Structure):
    _fields_ = [("loss", c_char_p), ("mode", c_int)]


class NetOpts(Structure):
    _fields_ = [("batch", c_int64), ("seed", c_uint64), ("labels", c_int),
                ("label_choices", LabelChoice * FEED_MAX)]


class FeedItem(Structure):
    _fields_ = [("name", c_char_p), ("data", c_void_p), ("source", c_char_p)]


class Feed(Structure):
    _fields_ = [("inputs", FeedItem * FEED_MAX), ("labels", FeedItem * FEED_MAX)]


class Schedule(Structure):
    _fields_ = [("kind", c_int), ("step_size", c_int64), ("gamma", c_float),
                ("decay", c_float), ("t_max", c_int64), ("min_lr", c_float),
                ("per_epoch", c_int)]


class OptimOpts(Structure):
    _fields_ = [("kind", c_int), ("lr", c_float), ("momentum", c_float), ("nesterov", c_int),
                ("weight_decay", c_float), ("beta1", c_float), ("beta2", c_float),
                ("eps", c_float), ("alpha", c_float), ("amsgrad", c_int),
                ("clip_norm", c_float), ("schedule", Schedule)]


class Progress(Structure):
    _fields_ = [("epoch", c_int), ("epochs", c_int), ("batch", c_int64), ("batches", c_int64),
                ("seen", c_int64), ("loss", c_double), ("metric", c_double),
                ("metric_name", c_char_p), ("samples_per_s", c_double), ("eta_s", c_double),
                ("elapsed_s", c_double), ("end_of_epoch", c_int), ("val_loss", c_double),
                ("val_metric", c_double), ("improved", c_int), ("kl", c_double),
                ("n_terms", c_int), ("term_names", POINTER(c_char_p)),
                ("terms", POINTER(c_double))]


class StepInfo(Structure):
    _fields_ = [("net", c_void_p), ("model", c_void_p), ("step", c_int64),
                ("micro_batches", c_int), ("samples", c_int64), ("loss", c_double)]


PROGRESS_FN = CFUNCTYPE(None, c_void_p, POINTER(Progress))
GRAD_HOOK = CFUNCTYPE(c_int, c_void_p, POINTER(StepInfo))
AUGMENT_LABELS_FN = CFUNCTYPE(None, c_void_p, c_int, POINTER(c_float), c_int64)


class FitOpts(Structure):
    _fields_ = [("epochs", c_int), ("batch_size", c_int64), ("accumulate", c_int),
                ("seed", c_uint64), ("no_shuffle", c_int), ("augment", c_int),
                ("augment_shift", c_int), ("augment_labels", AUGMENT_LABELS_FN),
                ("augment_ctx", c_void_p), ("augment_noise", c_double),
                ("noise_input", c_char_p), ("repeat", c_int), ("patience", c_int),
                ("out_path", c_char_p), ("log_csv", c_char_p), ("curve_png", c_char_p),
                ("checkpoint_every", c_double), ("resume", c_int),
                ("resume_if_exists", c_int), ("settings", c_char_p),
                ("skip_nonfinite", c_int), ("max_seconds", c_double),
                ("progress", PROGRESS_FN), ("ctx", c_void_p), ("grad_hook", GRAD_HOOK),
                ("grad_ctx", c_void_p), ("command", c_char_p), ("meta", c_void_p),
                ("dist", c_void_p)]


class FitResult(Structure):
    _fields_ = [("epochs_run", c_int), ("best_epoch", c_int), ("stopped_early", c_int),
                ("resumed_from", c_int), ("out_of_time", c_int), ("skipped_steps", c_int64),
                ("final_loss", c_double), ("best_val_loss", c_double), ("seconds", c_double)]


class UqOpts(Structure):
    _fields_ = [("passes", c_int), ("seed", c_uint64), ("batch", c_int64),
                ("keep_draws", c_int), ("probs", c_int)]


class UqOutput(Structure):
    _fields_ = [("mean", c_void_p), ("std", c_void_p), ("std_aleatoric", c_void_p),
                ("std_epistemic", c_void_p), ("draws", c_void_p), ("classes", c_void_p)]


class ExplainOpts(Structure):
    _fields_ = [("output", c_int), ("target", c_int64), ("targets", POINTER(c_int64)),
                ("batch", c_int64), ("layer", c_char_p), ("baseline", c_int),
                ("blur", c_double), ("steps", c_int), ("samples", c_int), ("noise", c_double),
                ("seed", c_uint64), ("patch", c_int), ("stride", c_int), ("lr", c_double),
                ("l2", c_double), ("tv", c_double), ("jitter", c_int), ("ig_rule", c_int),
                ("input", c_char_p), ("others", c_void_p)]


class ExplainResult(Structure):
    _fields_ = [("map", c_void_p), ("score", c_void_p), ("target", POINTER(c_int64)),
                ("delta", c_void_p)]


STRUCTS = {"ds_read_info": ReadInfo, "ds_read_opts": ReadOpts, "ds_net_opts": NetOpts,
           "ds_feed": Feed, "ds_optim_opts": OptimOpts, "ds_progress": Progress,
           "ds_step_info": StepInfo, "ds_fit_opts": FitOpts, "ds_fit_result": FitResult,
           "ds_uq_opts": UqOpts, "ds_uq_output": UqOutput, "ds_explain_opts": ExplainOpts,
           "ds_explain_result": ExplainResult}

P, I64P = c_void_p, POINTER(c_int64)
# name: (restype, argtypes)
_PROTOS = {
    "ds_status_name": (c_char_p, [c_int]),
    "ds_last_error": (c_char_p, []),
    "ds_has_feature": (c_int, [c_char_p]),
    "ds_build_info": (c_char_p, []),
    "ds_set_num_threads": (None, [c_int]),
    "ds_get_num_threads": (c_int, []),
    "ds_tensor_borrow": (P, [c_int, I64P, c_void_p]),
    "ds_tensor_free": (None, [P]),
    "ds_tensor_ndim": (c_int, [P]),
    "ds_tensor_shape": (I64P, [P]),
    "ds_tensor_numel": (c_int64, [P]),
    "ds_tensor_data": (c_void_p, [P]),
    "ds_tensor_set_create": (P, []),
    "ds_tensor_set_free": (None, [P]),
    "ds_tensor_set_count": (c_int, [P]),
    "ds_tensor_set_name": (c_char_p, [P, c_int]),
    "ds_tensor_set_at": (P, [P, c_int]),
    "ds_array_load": (c_int, [c_char_p, POINTER(ReadOpts), POINTER(P)]),
    "ds_array_save": (c_int, [P, c_char_p, c_void_p]),
    "ds_net_load": (c_int, [c_char_p, POINTER(NetOpts), POINTER(P)]),
    "ds_net_parse": (c_int, [c_char_p, c_char_p, POINTER(NetOpts), POINTER(P)]),
    "ds_net_free": (None, [P]),
    "ds_net_input_count": (c_int, [P]),
    "ds_net_input_at": (P, [P, c_int]),
    "ds_net_input_name": (c_char_p, [P, c_int]),
    "ds_net_output_count": (c_int, [P]),
    "ds_net_output_name": (c_char_p, [P, c_int]),
    "ds_net_target_count": (c_int, [P]),
    "ds_net_target_at": (P, [P, c_int]),
    "ds_net_target_name": (c_char_p, [P, c_int]),
    "ds_net_loss": (P, [P]),
    "ds_net_is_classifier": (c_int, [P]),
    "ds_net_classes": (c_int64, [P]),
    "ds_net_summary": (c_void_p, [P]),
    "ds_net_optim_opts_mut": (POINTER(OptimOpts), [P]),
    "ds_optim_name": (c_char_p, [c_int]),
    "ds_node_ndim": (c_int, [P]),
    "ds_node_shape": (I64P, [P]),
    "ds_net_set_input_scaling": (c_int, [P, c_char_p, c_int, c_float, P]),
    "ds_net_input_scaling": (c_int, [P, c_int]),
    "ds_net_preprocess_feed": (c_int, [P, POINTER(Feed)]),
    "ds_net_check_feed": (c_int, [P, POINTER(Feed)]),
    "ds_net_save_weights": (c_int, [P, c_char_p]),
    "ds_net_load_weights": (c_int, [P, c_char_p]),
    "ds_net_fit_feed": (c_int, [P, POINTER(Feed), POINTER(Feed), POINTER(FitOpts),
                                POINTER(FitResult)]),
    "ds_net_predict_feed": (c_int, [P, POINTER(Feed), c_int64, POINTER(P)]),
    "ds_net_evaluate_feed": (c_int, [P, POINTER(Feed), c_int64, POINTER(c_void_p), P]),
    "ds_net_stochastic_count": (c_int, [P]),
    "ds_net_output_is_gaussian": (c_int, [P, c_int]),
    "ds_net_predict_mc": (c_int, [P, POINTER(Feed), POINTER(UqOpts), POINTER(UqOutput)]),
    "ds_uq_output_free": (None, [POINTER(UqOutput)]),
    "ds_explain_result_free": (None, [POINTER(ExplainResult)]),
    "ds_explain_filters": (c_int, [P, c_char_p, POINTER(P)]),
    "ds_explain_feature_maps": (c_int, [P, P, POINTER(ExplainOpts), POINTER(P)]),
    "ds_explain_class_visualization": (c_int, [P, c_int64, POINTER(c_int64), P,
                                               POINTER(ExplainOpts), POINTER(P), POINTER(P)]),
    "ds_explain_layers": (c_void_p, [P, c_int]),
    "ds_onnx_export": (c_int, [P, c_char_p]),
    "ds_onnx_export_mem": (c_int, [P, POINTER(c_void_p), POINTER(ctypes.c_size_t)]),
    "ds_onnx_import_mem": (c_int, [c_char_p, ctypes.c_size_t, c_char_p, POINTER(c_void_p),
                                   POINTER(P)]),
}
# The attribution methods share one signature: (net, x, opts, result).
EXPLAIN_METHODS = {"saliency": "ds_explain_saliency",
                   "gradient-x-input": "ds_explain_gradient_x_input",
                   "integrated-gradients": "ds_explain_integrated_gradients",
                   "smoothgrad": "ds_explain_smoothgrad", "occlusion": "ds_explain_occlusion",
                   "grad-cam": "ds_explain_grad_cam"}
for _fn in EXPLAIN_METHODS.values():
    _PROTOS[_fn] = (c_int, [P, P, POINTER(ExplainOpts), POINTER(ExplainResult)])

_libc = ctypes.CDLL(None)
_libc.free.argtypes = [c_void_p]
_libc.free.restype = None


def _candidates() -> List[Path]:
    """Where the library may be, in order: $DEEPSKY_LIB, the package's own copy (a wheel,
    pip install), the source tree's build folder, the system's (ldconfig)."""
    out: List[Path] = []
    env = os.environ.get("DEEPSKY_LIB")
    if env:
        out.append(Path(env))
    here = Path(__file__).resolve().parent
    out.append(here / "_libs" / "libdeepsky.so")
    out.append(here.parent.parent / "build" / "libdeepsky.so")
    found = ctypes.util.find_library("deepsky")
    if found:
        out.append(Path(found))
    return out


def _preload_vendored(folder: Path) -> None:
    """A wheel carries the libraries libdeepsky.so needs beyond manylinux's list in its
    folder; loading them first (RTLD_GLOBAL) lets the loader resolve them by soname."""
    pending = [p for p in sorted(folder.glob("*.so*")) if not p.name.startswith("libdeepsky")]
    while pending:
        left = []
        for p in pending:
            try:
                ctypes.CDLL(str(p), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                left.append(p)
        if len(left) == len(pending):
            return   # the rest fail for reasons of their own: the system may have them
        pending = left


def _load() -> tuple:
    tried = []
    env = os.environ.get("DEEPSKY_LIB")
    for path in _candidates():
        if not path.exists() and path.is_absolute():
            tried.append(f"{path} (absent)")
            if env and str(path) == env:
                raise ImportError(f"DEEPSKY_LIB={env}: no such file")
            continue
        if path.parent.name == "_libs":
            _preload_vendored(path.parent)
        try:
            return ctypes.CDLL(str(path)), path
        except OSError as e:
            if env and str(path) == env:
                raise ImportError(f"DEEPSKY_LIB={env}: {e}") from e
            tried.append(f"{path} ({e})")
    raise ImportError("libdeepsky.so not found; build it with 'make build/libdeepsky.so' in "
                      "the source tree or set DEEPSKY_LIB. Tried: " + "; ".join(tried))


lib, path = _load()
for _name, (_res, _args) in _PROTOS.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args


def last_error() -> str:
    return (lib.ds_last_error() or b"").decode("utf-8", "replace")


def check(status: int, what: Optional[str] = None) -> None:
    """Raises Error with the library's message when status is not DS_OK."""
    if status:
        msg = last_error() or (what or "deepsky call failed")
        name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else str(status)
        raise Error(msg, name)


def take_string(ptr: Optional[int]) -> str:
    """A malloc'd C string returned by the library, decoded and freed."""
    if not ptr:
        raise Error(last_error() or "out of memory", "out of memory")
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        _libc.free(ptr)


def free(ptr: Optional[int]) -> None:
    """Frees memory the library malloc'd for the caller (ds_onnx_export_mem's buffer)."""
    _libc.free(ptr)


def enc(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else os.fsencode(s) if isinstance(s, os.PathLike) else \
        str(s).encode("utf-8")
