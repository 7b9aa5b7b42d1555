"""classic_bench.py - deepsky's classic methods against scikit-learn: fit and predict times
on the same data, the same cores and threads, as ratios measured in one run (README,
"Classic methods against scikit-learn").

Data: scikit-learn's make_classification (100000 x 20, 10 informative, 2 classes, seed 0),
the first 80000 rows to fit, the other 20000 to predict; the SVM uses the first 5000 rows
(RBF, C 1, gamma 'scale') and predicts 5000; k-NN (k 5) fits all 80000 (deepsky: its k-d
tree; scikit-learn: algorithm 'kd_tree') and answers 2000 queries. deepsky runs in this
process through ctypes (build/libdeepsky.so), with ds_set_num_threads(THREADS);
scikit-learn with n_jobs=THREADS and OMP_NUM_THREADS=THREADS. Each timing is the best of
REPEAT runs. Run it pinned and locked (make bench-classic does):

    flock /work/notes/bench.lock taskset -c 0,1 /usr/bin/python3 bench/classic_bench.py
"""
import ctypes
import os
import sys
import time

THREADS = int(os.environ.get("THREADS", "2"))
os.environ["OMP_NUM_THREADS"] = str(THREADS)
import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

REPEAT = int(os.environ.get("REPEAT", "2"))
LIB = os.environ.get("DEEPSKY_LIB", os.path.join(os.path.dirname(__file__), "..", "build",
                                                  "libdeepsky.so"))
ds = ctypes.CDLL(LIB)
P = ctypes.c_void_p
ds.ds_tensor_create.restype = P
ds.ds_tensor_create.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]
ds.ds_tensor_data.restype = ctypes.POINTER(ctypes.c_float)
ds.ds_tensor_data.argtypes = [P]
ds.ds_tensor_free.argtypes = [P]
ds.ds_classic_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(P)]
ds.ds_classic_set.argtypes = [P, ctypes.c_char_p, ctypes.c_char_p]
ds.ds_classic_fit.argtypes = [P, P, P, ctypes.c_uint64]
ds.ds_classic_predict.argtypes = [P, P, ctypes.POINTER(P)]
ds.ds_classic_free.argtypes = [P]
ds.ds_last_error.restype = ctypes.c_char_p
ds.ds_set_num_threads(THREADS)


def tensor(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    shape = (ctypes.c_int64 * a.ndim)(*a.shape)
    t = ds.ds_tensor_create(a.ndim, shape)
    ctypes.memmove(ds.ds_tensor_data(t), a.ctypes.data, a.nbytes)
    return t


def check(st):
    if st:
        sys.exit("deepsky: " + ds.ds_last_error().decode())


def best(f):
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return min(times), out


def deepsky(method, opts, xtr, ytr, xte):
    x, y, q = tensor(xtr), tensor(ytr), tensor(xte)
    models = []

    def fit():
        m = P()
        check(ds.ds_classic_create(method.encode(), ctypes.byref(m)))
        for k, v in opts.items():
            check(ds.ds_classic_set(m, k.encode(), str(v).encode()))
        check(ds.ds_classic_fit(m, x, y, 0))
        models.append(m)
        return m
    tf, m = best(fit)
    out = P()

    def predict():
        check(ds.ds_classic_predict(m, q, ctypes.byref(out)))
        n, w = len(xte), ds_width(out)
        p = np.ctypeslib.as_array(ds.ds_tensor_data(out), shape=(n * w,)).reshape(n, w).argmax(1)
        ds.ds_tensor_free(out)
        return p
    tp, pred = best(predict)
    for mm in models:
        ds.ds_classic_free(mm)
    for t in (x, y, q):
        ds.ds_tensor_free(t)
    return tf, tp, pred


def ds_width(t):
    ds.ds_tensor_shape.restype = ctypes.POINTER(ctypes.c_int64)
    ds.ds_tensor_shape.argtypes = [P]
    return ds.ds_tensor_shape(t)[1]


def sklearn(make, xtr, ytr, xte):
    tf, m = best(lambda: make().fit(xtr, ytr))
    tp, pred = best(lambda: m.predict(xte))
    return tf, tp, pred


x, y = make_classification(n_samples=100000, n_features=20, n_informative=10, random_state=0)
x = x.astype(np.float32)
xtr, ytr, xte, yte = x[:80000], y[:80000].astype(np.float32), x[80000:], y[80000:]
cases = [
    ("random forest, 20 trees", "random-forest", {"n-trees": 20},
     lambda: RandomForestClassifier(n_estimators=20, n_jobs=THREADS, random_state=0),
     xtr, ytr, xte, yte),
    ("gradient boosting, 100 rounds, depth 3", "gradient-boosting", {},
     lambda: HistGradientBoostingClassifier(max_iter=100, max_depth=3, max_leaf_nodes=None,
                                            min_samples_leaf=1, early_stopping=False),
     xtr, ytr, xte, yte),
    ("SVM (RBF), 5000 samples", "svm", {},
     lambda: SVC(C=1.0, gamma="scale"), xtr[:5000], ytr[:5000], xte[:5000], yte[:5000]),
    ("k-NN (k 5), 2000 queries", "knn", {"k": 5, "algorithm": "kd-tree"},
     lambda: KNeighborsClassifier(5, algorithm="kd_tree", n_jobs=THREADS),
     xtr, ytr, xte[:2000], yte[:2000]),
]
print("| Method | deepsky fit (s) | scikit-learn fit (s) | fit ratio | deepsky predict (s) | "
      "scikit-learn predict (s) | predict ratio | accuracy deepsky / scikit-learn |")
print("|---|---|---|---|---|---|---|---|")
for name, method, opts, make, a, b, c, d in cases:
    df, dp, dpred = deepsky(method, opts, a, b, c)
    sf, sp, spred = sklearn(make, a, b, c)
    print("| %s | %.3g | %.3g | %.2f | %.3g | %.3g | %.2f | %.4f / %.4f |" % (
        name, df, sf, df / sf, dp, sp, dp / sp, np.mean(dpred == d), np.mean(spred == d)))
    sys.stdout.flush()
print("\n%d threads, best of %d; ratio = deepsky's time / scikit-learn's (below 1: deepsky "
      "faster)." % (THREADS, REPEAT))
