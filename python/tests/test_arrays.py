"""test_arrays.py - deepsky.load_array against astropy and NumPy, astropy Tables as data, and
the zero-copy paths in and out."""
import gzip
import struct

import numpy as np
import pytest

import deepsky
from deepsky import _arrays


def test_fits_equals_astropy(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    if not deepsky.has_feature("fits"):
        pytest.skip("library built without FITS support (NO_FITS=1)")
    rng = np.random.default_rng(1)
    cube = rng.normal(size=(3, 5, 7)).astype(np.float32)
    ints = rng.integers(-300, 300, size=(6, 4)).astype(np.int16)
    hdus = [fits.PrimaryHDU(cube), fits.ImageHDU(ints, name="COUNTS")]
    hdus[1].header["BSCALE"], hdus[1].header["BZERO"] = 0.5, 10.0
    cols = [fits.Column(name="mag_g", format="E", array=rng.normal(size=9)),
            fits.Column(name="z", format="D", array=rng.uniform(size=9)),
            fits.Column(name="n", format="J", array=np.arange(9))]
    hdus.append(fits.BinTableHDU.from_columns(cols, name="CAT"))
    path = tmp_path / "cut.fits"
    fits.HDUList(hdus).writeto(path)
    with fits.open(path) as f:
        want_cube = f[0].data
        want_ints = f["COUNTS"].data
        cat = f["CAT"].data
        want_tab = np.stack([cat[c] for c in ("mag_g", "z", "n")], axis=1).astype(np.float32)
    got = deepsky.load_array(path)
    assert got.dtype == np.float32 and np.array_equal(got, want_cube)
    assert np.array_equal(deepsky.load_array(path, hdu="COUNTS"),
                          want_ints.astype(np.float32))
    assert np.array_equal(deepsky.load_array(path, hdu=3), want_tab)
    assert np.array_equal(deepsky.load_array(path, hdu="CAT", columns=["z", "mag_g"]),
                          want_tab[:, [1, 0]])
    with pytest.raises(deepsky.Error, match="cut.fits"):
        deepsky.load_array(path, hdu=9)


def test_npy_csv_idx(tmp_path):
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    np.save(tmp_path / "a.npy", a)
    assert np.array_equal(deepsky.load_array(tmp_path / "a.npy"), a.astype(np.float32))
    (tmp_path / "t.csv").write_text("ra,dec,mag\n1.5,2,3\n4,5.25,6\n")
    assert np.array_equal(deepsky.load_array(tmp_path / "t.csv"),
                          np.array([[1.5, 2, 3], [4, 5.25, 6]], np.float32))
    assert np.array_equal(deepsky.load_array(tmp_path / "t.csv", columns="mag,ra"),
                          np.array([[3, 1.5], [6, 4]], np.float32))
    img = np.arange(2 * 3 * 2, dtype=np.uint8).reshape(2, 3, 2)
    idx = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 2, 3, 2) + img.tobytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx))
    got = deepsky.load_array(tmp_path / "train-images-idx3-ubyte.gz")
    assert np.array_equal(got, img.astype(np.float32))
    with pytest.raises(deepsky.Error, match="nothing.npy"):
        deepsky.load_array(tmp_path / "nothing.npy")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(deepsky.Error, match="bad.csv.*3"):
        deepsky.load_array(bad)


def test_astropy_table_as_data(toy):
    table = pytest.importorskip("astropy.table")
    t = table.Table([toy["x"][:, k] for k in range(4)], names=["u", "g", "r", "i"])
    net = deepsky.Net(toy["model"])
    assert np.array_equal(net.predict(t), net.predict(toy["x"]))
    t["u"] = table.MaskedColumn(t["u"], mask=np.arange(120) == 5)
    with pytest.raises(deepsky.Error, match="NaN|nan"):
        net.predict(t)
    t2 = table.Table({"name": ["a"] * 3})
    with pytest.raises(deepsky.Error, match="'name'.*not numeric"):
        net.predict(t2)


def test_zero_copy_in_and_out(toy):
    x = toy["x"]
    assert _arrays.as_float32(x, "x") is x                  # borrowed as it is
    assert _arrays.as_float32(x[:, ::2], "x") is not x      # a strided view is copied
    p = deepsky.Net(toy["model"]).predict(x)
    assert isinstance(p.base, _arrays._Owner)                # the library's memory
    assert p.flags.writeable and p.flags.c_contiguous
    p[:] = 1                                                 # it is the caller's now
    a = deepsky.load_array(toy["files"]["x"])
    assert isinstance(a.base, _arrays._Owner) and np.array_equal(a, x)


def test_save_array_round_trip(tmp_path):
    a = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    for ext in ("npy", "csv"):
        deepsky.save_array(a, tmp_path / f"a.{ext}")
        got = deepsky.load_array(tmp_path / f"a.{ext}")
        assert np.allclose(got, a, rtol=1e-6) if ext == "csv" else np.array_equal(got, a)
