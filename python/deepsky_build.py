"""deepsky_build.py - the package's PEP 517 build backend (stdlib only, so pip needs nothing
from PyPI): builds libdeepsky.so and the command line tool through the source tree's Makefile
and puts them in the wheel under deepsky/_libs/.

Two kinds of wheel:
  local     (pip install ./python): the tree's own build (make build/libdeepsky.so
            build/deepsky, -march=native), tagged linux_<arch>: for this machine.
  portable  (make wheel, or DEEPSKY_WHEEL=portable): make BUILD=build/wheel PORTABLE=1
            NO_PLOT=1 NO_BLAS=1 (x86-64 baseline with AVX2/AVX-512 clones picked at run time,
            our own sgemm, no cairo), with every shared library it needs beyond the manylinux
            list (libgomp, cfitsio and what cfitsio links) copied beside it, as auditwheel's
            repair does (without renaming them: the package preloads them by path). Tagged
            manylinux_2_<N>_<arch>, N the newest glibc symbol version any of them uses.
DEEPSKY_LIB=/path/libdeepsky.so skips make and takes that library (and DEEPSKY_CLI the tool).
"""
from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# PEP 600 / auditwheel: libraries every manylinux system has (not copied into the wheel)
MANYLINUX_LIBS = {"libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0",
                  "libgcc_s.so.1", "libstdc++.so.6", "libnsl.so.1", "libutil.so.1",
                  "libresolv.so.2", "libcrypt.so.1", "ld-linux-x86-64.so.2",
                  "ld-linux-aarch64.so.1", "linux-vdso.so.1"}


def _version() -> str:
    text = (ROOT / "include" / "deepsky.h").read_text()
    return re.search(r'#define DS_VERSION "([^"]+)"', text).group(1)


def _make(build: str, flags: List[str]) -> Tuple[Path, Path]:
    targets = [f"{build}/libdeepsky.so", f"{build}/deepsky"]
    subprocess.run(["make", "-C", str(ROOT), f"BUILD={build}"] + flags + targets, check=True)
    return (ROOT / targets[0]).resolve(), (ROOT / targets[1]).resolve()


def _needed(path: Path) -> Dict[str, str]:
    """soname -> path of every shared library path loads (ldd)."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(", line)
        if m:
            libs[m.group(1)] = m.group(2)
    return libs


def _glibc_max(paths: List[Path]) -> Tuple[int, int]:
    best = (2, 17)
    for p in paths:
        out = subprocess.run(["objdump", "-T", str(p)], capture_output=True, text=True).stdout
        for a, b in re.findall(r"GLIBC_(\d+)\.(\d+)", out):
            best = max(best, (int(a), int(b)))
    return best


def _files(kind: str) -> Tuple[Dict[str, Path], str]:
    """Wheel path -> file of the library part, and the platform tag."""
    arch = platform.machine()
    if os.environ.get("DEEPSKY_LIB"):
        so = Path(os.environ["DEEPSKY_LIB"]).resolve()
        cli = Path(os.environ.get("DEEPSKY_CLI", so.parent / "deepsky")).resolve()
    elif kind == "portable":
        so, cli = _make("build/wheel", ["PORTABLE=1", "NO_PLOT=1", "NO_BLAS=1"])
    else:
        so, cli = _make("build", [])
    files = {"deepsky/_libs/libdeepsky.so": so}
    if cli.is_file():
        files["deepsky/_libs/deepsky"] = cli
    if kind != "portable":
        return files, f"linux_{arch}"
    for soname, p in sorted(_needed(so).items()):
        if soname not in MANYLINUX_LIBS:
            files[f"deepsky/_libs/{soname}"] = Path(p).resolve()
    major, minor = _glibc_max(list(files.values()))
    return files, f"manylinux_{major}_{minor}_{arch}"


def _metadata(version: str) -> str:
    readme = (HERE / "README.md").read_text() if (HERE / "README.md").exists() else ""
    return (f"Metadata-Version: 2.1\nName: deepsky\nVersion: {version}\n"
            "Summary: NumPy-native Python interface to the deepsky deep-learning library\n"
            "Requires-Python: >=3.8\nRequires-Dist: numpy\n"
            "Description-Content-Type: text/markdown\n\n" + readme)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(wheel_directory: str, config_settings: Optional[dict] = None,
                metadata_directory: Optional[str] = None) -> str:
    kind = (config_settings or {}).get("kind") or os.environ.get("DEEPSKY_WHEEL", "local")
    version = _version()
    files, plat = _files(kind)
    for p in sorted((HERE / "deepsky").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and "_libs" not in p.parts:
            files[p.relative_to(HERE).as_posix()] = p
    dist = f"deepsky-{version}.dist-info"
    tag = f"py3-none-{plat}"
    meta = {f"{dist}/METADATA": _metadata(version).encode(),
            f"{dist}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: deepsky_build\n"
                              f"Root-Is-Purelib: false\nTag: {tag}\n").encode(),
            f"{dist}/top_level.txt": b"deepsky\n"}
    name = f"deepsky-{version}-{tag}.whl"
    out = Path(wheel_directory) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{name}.tmp")   # renamed into place once whole
    record = []
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, p in sorted(files.items()):
            data = p.read_bytes()
            info = zipfile.ZipInfo(arc, date_time=(2026, 1, 1, 0, 0, 0))
            exe = arc.endswith("/deepsky") or ".so" in arc
            info.external_attr = (0o100755 if exe else 0o100644) << 16   # a regular file
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
            record.append(_record_line(arc, data))
        for arc, data in meta.items():
            z.writestr(zipfile.ZipInfo(arc, date_time=(2026, 1, 1, 0, 0, 0)), data)
            record.append(_record_line(arc, data))
        record.append(f"{dist}/RECORD,,")
        z.writestr(zipfile.ZipInfo(f"{dist}/RECORD", date_time=(2026, 1, 1, 0, 0, 0)),
                   "\n".join(record) + "\n")
    os.replace(tmp, out)
    return name


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    raise RuntimeError("deepsky's Python package builds from the source tree (pip install "
                       "./python) or ships as a wheel (make wheel): no sdist, since the C "
                       "library lives beside it")


if __name__ == "__main__":   # make wheel: python3 python/deepsky_build.py OUT_DIR
    import sys
    os.environ.setdefault("DEEPSKY_WHEEL", "portable")
    print(Path(sys.argv[1] if len(sys.argv) > 1 else ".") /
          build_wheel(sys.argv[1] if len(sys.argv) > 1 else "."))
