#!/usr/bin/env python3
"""make_iris.py - writes the iris example files of README's walkthrough from scikit-learn's
iris.csv (Fisher's 150 flowers, as R and scikit-learn ship them; its first line is
"150,4,setosa,versicolor,virginica"): iris_train.csv and iris_test.csv, headerless (four
measurements in cm, then the class 0 setosa, 1 versicolor, 2 virginica), and iris.fits, the
same rows as two binary tables with EXTNAME TRAIN and TEST (columns SEPAL_LENGTH, SEPAL_WIDTH,
PETAL_LENGTH, PETAL_WIDTH, SPECIES as text, CLASS). Every fifth flower is a test flower (10 of
each species). Python's standard library only; the outputs are committed, so nothing else
needs Python.
Usage: python3 examples/data/make_iris.py /usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv"""
import os, struct, sys

here = os.path.dirname(os.path.abspath(__file__))
names = ["setosa", "versicolor", "virginica"]
rows = [line.strip().split(",") for line in open(sys.argv[1])][1:]
rows = [r for r in rows if len(r) == 5]
assert len(rows) == 150, len(rows)
sets = {"train": [r for i, r in enumerate(rows) if i % 5 != 4],
        "test": [r for i, r in enumerate(rows) if i % 5 == 4]}
for name, rs in sets.items():
    with open(os.path.join(here, "iris_%s.csv" % name), "w") as f:
        f.writelines(",".join(r) + "\n" for r in rs)

def card(key, value=None, comment=None):
    if value is None:
        s = key
    else:
        if isinstance(value, bool):
            v = "T" if value else "F"
        elif isinstance(value, str):
            v = "'%-8s'" % value.replace("'", "''")
        else:
            v = str(value)
        s = "%-8s= %20s" % (key, v) if not isinstance(value, str) else "%-8s= %s" % (key, v)
        if comment:
            s += " / " + comment
    assert len(s) <= 80, s
    return s.ljust(80)

def header(cards):
    text = "".join(cards) + "END".ljust(80)
    return (text + " " * (-len(text) % 2880)).encode("ascii")

cols = [("SEPAL_LENGTH", "E", "cm"), ("SEPAL_WIDTH", "E", "cm"), ("PETAL_LENGTH", "E", "cm"),
        ("PETAL_WIDTH", "E", "cm"), ("SPECIES", "10A", None), ("CLASS", "I", None)]
out = header([card("SIMPLE", True), card("BITPIX", 8), card("NAXIS", 0), card("EXTEND", True),
              card("ORIGIN", "deepsky examples/data/make_iris.py"),
              card("COMMENT   Fisher's iris flowers (1936), as scikit-learn ships them.")])
for ext in ("TRAIN", "TEST"):
    rs = sets[ext.lower()]
    data = b"".join(struct.pack(">4f10sh", *[float(v) for v in r[:4]],
                                names[int(r[4])].encode(), int(r[4])) for r in rs)
    cards = [card("XTENSION", "BINTABLE"), card("BITPIX", 8), card("NAXIS", 2),
             card("NAXIS1", 28, "bytes per row"), card("NAXIS2", len(rs), "flowers"),
             card("PCOUNT", 0), card("GCOUNT", 1), card("TFIELDS", len(cols))]
    for i, (n, form, unit) in enumerate(cols, 1):
        cards += [card("TTYPE%d" % i, n), card("TFORM%d" % i, form)]
        if unit:
            cards.append(card("TUNIT%d" % i, unit))
    cards.append(card("EXTNAME", ext))
    out += header(cards) + data + b"\0" * (-len(data) % 2880)
with open(os.path.join(here, "iris.fits"), "wb") as f:
    f.write(out)
