"""test_net.py - deepsky.Net against the command line: training, prediction (plain and Monte
Carlo), evaluation, weights, summary and the library's error messages."""
import numpy as np
import pytest

import deepsky
from conftest import MODEL, run

EPOCHS, BATCH, SEED = 3, 16, 5


def cli_train(cli, toy, out):
    f = toy["files"]
    rc, text = run([cli, "train", toy["model"], "--data", f["x"], "--labels", f["y"],
                    "--val", f["xv"], "--val-labels", f["yv"], "--epochs", EPOCHS,
                    "--batch-size", BATCH, "--seed", SEED, "--scale", "standardize",
                    "--quiet", "-o", out])
    assert rc == 0, text


def py_train(toy, **kw):
    net = deepsky.Net(toy["model"], seed=SEED)
    hist = net.fit(toy["x"], toy["y"], epochs=EPOCHS, batch_size=BATCH, scale="standardize",
                   validation_data=(toy["xv"], toy["yv"]), verbose=0, **kw)
    return net, hist


def test_fit_predict_equals_cli_bit_for_bit(cli, toy):
    w = toy["dir"] / "w.safetensors"
    cli_train(cli, toy, w)
    pred = toy["dir"] / "p.npy"
    rc, text = run([cli, "predict", toy["model"], "--weights", w, "--data", toy["files"]["xv"],
                    "-o", pred])
    assert rc == 0, text
    want = np.load(pred)
    net, hist = py_train(toy)
    got = net.predict(toy["xv"])
    assert got.dtype == np.float32 and got.shape == (40, 3)
    assert np.array_equal(got, want)
    # the CLI's weights in a Python net: the same numbers again
    assert np.array_equal(deepsky.Net(toy["model"], weights=w).predict(toy["xv"]), want)
    assert sorted(hist) == ["acc", "loss", "val_acc", "val_loss"]
    assert all(len(v) == EPOCHS for v in hist.values())
    assert hist["loss"][-1] < hist["loss"][0]


def test_mc_predict_equals_cli(cli, toy):
    w = toy["dir"] / "w.safetensors"
    cli_train(cli, toy, w)
    pred = toy["dir"] / "mc.npy"
    rc, text = run([cli, "predict", toy["model"], "--weights", w, "--data", toy["files"]["xv"],
                    "--mc", 20, "--seed", 4, "-o", pred])
    assert rc == 0, text
    want = np.load(pred)   # [N, 3, 2]: mean and std
    net = deepsky.Net(toy["model"], weights=w)
    mean, std = net.predict(toy["xv"], mc=20, seed=4)
    assert np.array_equal(mean, want[..., 0]) and np.array_equal(std, want[..., 1])
    assert (std > 0).any()
    np.testing.assert_allclose(mean.sum(axis=1), 1, rtol=1e-5)   # pooled probabilities


def test_from_string_save_load_evaluate(toy, tmp_path):
    net = deepsky.Net.from_string(MODEL, seed=SEED)
    net.fit(toy["x"], toy["y"], epochs=2, batch_size=BATCH, verbose=0)
    p = net.predict(toy["xv"])
    path = tmp_path / "n.safetensors"
    net.save(path)
    other = deepsky.Net(toy["model"])
    other.load(path)
    assert np.array_equal(other.predict(toy["xv"]), p)
    ev = net.evaluate(toy["xv"], toy["yv"])
    acc = float(np.mean(np.argmax(p, axis=1) == toy["yv"]))
    assert ev["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert ev["loss"] > 0 and "accuracy" in net.report
    # one-hot labels give the same loss as class indices
    onehot = np.eye(3, dtype=np.float32)[toy["yv"].astype(int)]
    assert net.evaluate(toy["xv"], onehot)["loss"] == pytest.approx(ev["loss"], rel=1e-6)


def test_summary_and_description(toy):
    net = deepsky.Net(toy["model"])
    text = net.summary(print_fn=None)
    assert "dense_1" in text and "dropout" in text.lower()
    assert "(None, 16)" in text
    assert net.inputs == ["input_1"] or len(net.inputs) == 1
    assert net.input_shape() == (4,)
    assert net.is_classifier and net.optimizer == "adam"
    assert net.lr == pytest.approx(0.01)
    net.lr = 0.001
    assert net.lr == pytest.approx(0.001)


def test_error_carries_library_message(cli, tmp_path):
    bad = "input shape=4\ndense units=0\nloss mse\n"
    path = tmp_path / "bad.model"
    path.write_text(bad)
    rc, text = run([cli, "summary", path])
    assert rc != 0
    with pytest.raises(deepsky.Error) as e:
        deepsky.Net(path)
    msg = str(e.value)
    assert "bad.model:2" in msg and msg in text   # the CLI prints the same message
    with pytest.raises(deepsky.Error, match=r"<string>:2"):
        deepsky.Net.from_string(bad)
    with pytest.raises(deepsky.Error, match="no such file|cannot open|No such"):
        deepsky.Net(tmp_path / "missing.model")


def test_bad_shapes_and_dtypes_raise(toy):
    net = deepsky.Net(toy["model"])
    with pytest.raises(deepsky.Error, match=r"^x: data of shape \[5, 3\] .*\[4\]"):
        net.predict(np.zeros((5, 3), np.float32))
    with pytest.raises(deepsky.Error, match=r"\(5, 2, 3\).*\(4,\)"):
        net.predict(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(deepsky.Error, match=r"\(5, 4\).*complex"):
        net.predict(np.zeros((5, 4), np.complex64))
    with pytest.raises(deepsky.Error, match=r"\(2,\).*<U"):
        net.predict(np.array(["a", "b"]))
    with pytest.raises(deepsky.Error, match="120.*100|100.*120"):   # sample counts differ
        net.fit(toy["x"], toy["y"][:100], epochs=1, verbose=0)
    with pytest.raises(deepsky.Error, match="label"):               # class 7 of 3
        net.fit(toy["x"], np.full(120, 7, np.float32), epochs=1, verbose=0)
    with pytest.raises(deepsky.Error, match="NaN|nan"):
        x = toy["x"].copy()
        x[3, 2] = np.nan
        net.predict(x)
    with pytest.raises(deepsky.Error, match="'spin' is not flips"):
        net.fit(toy["x"], toy["y"], augment="flips,spin", verbose=0)
    with pytest.raises(deepsky.Error, match="patience.*validation_data"):
        net.fit(toy["x"], toy["y"], patience=2, verbose=0)
    with pytest.raises(deepsky.Error, match="no input named 'img'"):
        net.predict({"img": toy["x"]})
    # converted, not refused: float64, integers, a strided view
    p = net.predict(toy["x"])
    assert np.array_equal(net.predict(toy["x"].astype(np.float64)), p)
    big = np.zeros((120, 8), np.float32)
    big[:, ::2] = toy["x"]
    assert np.array_equal(net.predict(big[:, ::2]), p)


CNN = """input shape=1x8x8
conv2d name=c1 filters=4 kernel=3 padding=same activation=relu
conv2d name=c2 filters=4 kernel=3 padding=same activation=relu
flatten
dense units=3
loss categorical_crossentropy from_logits=true
"""


@pytest.fixture
def cnn(cli, tmp_path):
    """A small CNN with weights written by the command line, and 6 images."""
    model = tmp_path / "cnn.model"
    model.write_text(CNN)
    w = tmp_path / "cnn.safetensors"
    rc, text = run([cli, "init", model, "--seed", 3, "-o", w])
    assert rc == 0, text
    x = np.random.default_rng(2).normal(0, 1, (6, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return {"model": model, "w": w, "x": x, "dir": tmp_path}


@pytest.mark.parametrize("method", ["saliency", "integrated-gradients", "occlusion",
                                    "grad-cam", "smoothgrad"])
def test_explain_equals_cli(cli, cnn, method):
    net = deepsky.Net(cnn["model"], weights=cnn["w"])
    e = net.explain(cnn["x"], method, target=1, seed=4)
    out = cnn["dir"] / f"{method}.npy"
    rc, text = run([cli, "explain", cnn["model"], "--weights", cnn["w"], "--data",
                    cnn["dir"] / "x.npy", "--method", method, "--target", 1, "--seed", 4,
                    "-o", out])
    assert rc == 0, text
    assert np.array_equal(e.map, np.load(out))
    assert e.score.shape == (6,) and list(e.target) == [1] * 6
    if method == "integrated-gradients":
        assert e.delta.shape == (6,)
        assert np.all(np.abs(e.delta) <= 0.05 * np.abs(e.score) + 1e-3)
    else:
        assert e.delta is None


def test_saliency_against_finite_differences(cnn):
    net = deepsky.Net(cnn["model"], weights=cnn["w"])
    x = cnn["x"][:2].astype(np.float64)
    e = net.explain(x, "saliency", target=[0, 2])
    logits = lambda a: net.predict(a.astype(np.float32)).astype(np.float64)
    h = 1e-2
    for k, (i, j) in enumerate([(3, 4), (5, 1)]):
        for s, t in ((0, 0), (1, 2)):
            xp, xm = x.copy(), x.copy()
            xp[s, 0, i, j] += h
            xm[s, 0, i, j] -= h
            fd = (logits(xp)[s, t] - logits(xm)[s, t]) / (2 * h)
            assert abs(abs(fd) - e.map[s, 0, i, j]) < 2e-3 * (1 + abs(fd))


def test_filters_feature_maps_class_visualization(cnn):
    net = deepsky.Net(cnn["model"], weights=cnn["w"])
    assert net.filters().shape == (4, 1, 3, 3)
    assert net.filters("c2").shape == (4, 1, 3, 3)
    assert net.feature_maps(cnn["x"], "c2").shape == (6, 4, 8, 8)
    v = net.class_visualization([0, 2], steps=20, seed=1)
    assert v["images"].shape == (2, 1, 8, 8) and v["scores"].shape == (2, 21)
    assert np.all(v["scores"][:, -1] > v["scores"][:, 0])


def test_explain_errors_name_the_problem(cnn):
    net = deepsky.Net(cnn["model"], weights=cnn["w"])
    with pytest.raises(deepsky.Error, match="unknown method 'deep-dream'"):
        net.explain(cnn["x"], "deep-dream")
    with pytest.raises(deepsky.Error, match="2 targets for 6 samples"):
        net.explain(cnn["x"], target=[0, 1])
    with pytest.raises(deepsky.Error, match="unknown option 'stepz'"):
        net.explain(cnn["x"], "integrated-gradients", stepz=3)
    with pytest.raises(deepsky.Error, match="nope"):
        net.feature_maps(cnn["x"], "nope")
    with pytest.raises(deepsky.Error, match="shape"):
        net.explain(np.zeros((2, 1, 7, 8), np.float32))
    with pytest.raises(deepsky.Error, match="rule='simpson'"):
        net.explain(cnn["x"], "integrated-gradients", rule="simpson")


def test_explain_integrated_gradients_rules(cnn):
    """Each rule's map; the default is the midpoint rule, and the rules differ."""
    net = deepsky.Net(cnn["model"], weights=cnn["w"])
    maps = {r: net.explain(cnn["x"], "integrated-gradients", target=1, steps=8, rule=r).map
            for r in ("midpoint", "piecewise", "trapezoid", "gauss-legendre", "left")}
    default = net.explain(cnn["x"], "integrated-gradients", target=1, steps=8).map
    assert np.array_equal(default, maps["midpoint"])
    assert not np.array_equal(maps["midpoint"], maps["gauss-legendre"])
    assert not np.array_equal(maps["midpoint"], maps["left"])


def test_export_onnx_and_import_round_trip(cli, cnn):
    if not deepsky.has_feature("onnx"):
        pytest.skip("the library was built without ONNX (NO_ONNX=1 or no protobuf-c)")
    net = deepsky.Net(cnn["model"], weights=cnn["w"])
    onnx = cnn["dir"] / "cli.onnx"
    rc, text = run([cli, "export", cnn["model"], "--weights", cnn["w"], "-o", onnx])
    assert rc == 0, text
    mem = net.export_onnx()
    assert mem == onnx.read_bytes()
    net.export_onnx(cnn["dir"] / "py.onnx")
    assert (cnn["dir"] / "py.onnx").read_bytes() == mem
    text, back = deepsky.import_onnx(mem)
    assert "conv2d" in text
    assert np.allclose(back.predict(cnn["x"]), net.predict(cnn["x"]), atol=1e-6)
    _, back2 = deepsky.import_onnx(onnx)
    assert np.array_equal(back2.predict(cnn["x"]), back.predict(cnn["x"]))
    with pytest.raises(deepsky.Error):
        deepsky.import_onnx(mem[: len(mem) // 2])


TWO = """input name=img shape=4
input name=meta shape=2
concat inputs=img,meta axis=1
dense name=h units=8 activation=relu
dense name=z units=1 inputs=h
dense name=c units=2 inputs=h
loss mse output=z
loss categorical_crossentropy output=c from_logits=true
"""


def test_two_inputs_two_losses(toy):
    net = deepsky.Net.from_string(TWO, seed=1)
    assert net.inputs == ["img", "meta"] and net.targets == ["z", "c"]
    rng = np.random.default_rng(3)
    x = {"img": toy["x"][:64], "meta": rng.normal(size=(64, 2)).astype(np.float32)}
    y = {"z": toy["x"][:64, :1], "c": (toy["y"][:64] > 0).astype(np.float32)}
    hist = net.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(hist["loss"]) == 2
    out = net.predict(x)
    assert sorted(out) == ["c", "z"] and out["z"].shape == (64, 1) and out["c"].shape == (64, 2)
    same = net.predict([x["img"], x["meta"]])            # a list in input order
    assert np.array_equal(same["c"], out["c"])
    with pytest.raises(deepsky.Error, match="2 inputs.*img, meta"):
        net.predict(x["img"])
    with pytest.raises(deepsky.Error, match="meta"):      # an input left out
        net.predict({"img": x["img"]})
