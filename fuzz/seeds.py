#!/usr/bin/env python3
"""seeds.py - writes the starting corpora fuzz/corpus/<target>/seed-* (small valid files of
every kind each reader accepts, and the README's example models and command lines). The
fuzzer grows the corpora from these; the committed corpora are its result, minimized.
Needs numpy. Usage: python3 fuzz/seeds.py"""
import gzip, io, json, os, struct, glob
import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

def npy(a, version=None):
    b = io.BytesIO()
    if version:
        np.lib.format.write_array(b, a, version=version)
    else:
        np.save(b, a)
    return b.getvalue()

# ---- .npy
r = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
put("npy", "f4", npy(r))
put("npy", "f8-fortran", npy(np.asfortranarray(r.astype(np.float64))))
put("npy", "u1", npy(np.arange(6, dtype=np.uint8).reshape(2, 3)))
put("npy", "i1", npy(np.array([-3, 4], dtype=np.int8)))
put("npy", "be-i4", npy(np.arange(4, dtype=">i4")))
put("npy", "i2-3d", npy(np.arange(8, dtype=np.int16).reshape(2, 2, 2)))
put("npy", "i8", npy(np.arange(3, dtype=np.int64)))
put("npy", "bool", npy(np.array([True, False, True])))
put("npy", "scalar", npy(np.float32(2.5)))
put("npy", "empty", npy(np.zeros((0, 3), np.float32)))
put("npy", "v2", npy(r, version=(2, 0)))
put("npy", "v3", npy(r, version=(3, 0)))

# ---- safetensors
def st(tensors, meta=None):
    hdr, blob = {}, b""
    if meta:
        hdr["__metadata__"] = meta
    for name, (dtype, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob

f32 = np.arange(6, dtype="<f4").reshape(2, 3)
put("safetensors", "f32", st({"w": ("F32", [2, 3], f32.tobytes()), "b": ("F32", [3], f32[0].tobytes())},
                             {"format": "pt", "deepsky.scaling": "none"}))
put("safetensors", "mixed", st({"h": ("F16", [2], np.array([1, -2], "<f2").tobytes()),
                                "d": ("F64", [1, 2], np.array([[0.5, 3]], "<f8").tobytes()),
                                "i": ("I64", [2], np.array([7, -1], "<i8").tobytes()),
                                "bf": ("BF16", [2], b"\x80\x3f\x00\x40"),
                                "u8": ("U8", [3], b"\x01\x02\x03"),
                                "s": ("F32", [], struct.pack("<f", 4.0))}))
put("safetensors", "empty-set", st({}))
for p in ["tests/fixtures/io_reference.safetensors", "tests/fixtures/net_spectra.weights.safetensors"]:
    put("safetensors", os.path.basename(p), open(p, "rb").read())

# ---- IDX (first byte: bit 0 = a .gz name)
def idx(a, code):
    return struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(">%dI" % a.ndim, *a.shape) + a.tobytes()
u8 = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
for name, data in [("u8-3d", idx(u8, 0x08)), ("i8", idx(np.array([-1, 2], ">i1"), 0x09)),
                   ("i16", idx(np.array([300, -2], ">i2"), 0x0B)),
                   ("i32-2d", idx(np.arange(4, dtype=">i4").reshape(2, 2), 0x0C)),
                   ("f32", idx(np.array([1.5, -2], ">f4"), 0x0D)),
                   ("f64", idx(np.array([1.5], ">f8"), 0x0E)), ("labels", idx(np.array([3, 1, 4], np.uint8), 0x08))]:
    put("idx", name, b"\x00" + data)
    put("idx", name + ".gz", b"\x01" + gzip.compress(data, mtime=0))

# ---- CSV (first byte: bits 0-2 a column list, bit 3 also list the columns, bits 4-5 the
# header mode: 0 or 3 guessed, 1 names, 2 none; bit 6 a range list instead, as columns (even
# lists) or left out (odd); bit 7 a .tsv name)
csvs = {
    "plain": b"a,b,c\n1,2,3\n4.5,-6e2,7\n",
    "quoted": b'"a","b,x",c\n"1",2,"3"\n',
    "tab": b"x\ty\n1\t2\n3\t4\n",
    "semicolon": b"# comment\nA;B\n1;2\n",
    "crlf": b"a,b\r\n1,2\r\n3,4\r\n",
    "missing": b"a,b\n1,\n,2\nnan,inf\n",
    "noheader": b"1,2\n3,4\n",
    "text": b"name,ra,dec\nm31,10.68,41.27\nm33,23.46,30.66\n",
}
for name, data in csvs.items():
    put("csv", name, b"\x00" + data)             # every numeric column
put("csv", "plain-named", b"\x0b" + csvs["plain"])  # columns a,b, and list the columns
put("csv", "plain-numbered", b"\x02" + csvs["plain"])
firsts = {   # first lines that are not column names (issue 12), and other separators
    "sk-iris": b"150,4,setosa,versicolor,virginica\n5.1,3.5,1.4,0.2,0\n7.0,3.2,4.7,1.4,1\n",
    "sk-wine": b"178,13,class_0,class_1\n14.2,1.7,0\n13.2,1.8,1\n",
    "sk-boston": b'2,3,,\n"CRIM","ZN","AGE","MEDV"\n0.006,18,65.2,24\n0.03,0,78.9,21.6\n',
    "uci-iris": b"5.1,3.5,Iris-setosa\n7.0,3.2,Iris-versicolor\n",
    "blanks": b"  1  2.5 -3 \n4\t5   6e3\n",
    "bom": b"\xef\xbb\xbf5.1,3.5,0\n4.9,3.0,1\n",
    "quoted-numbers": b'"1","2"\n3,4\n',
}
for name, data in firsts.items():
    put("csv", name, b"\x08" + data)             # guessed, and list the columns
put("csv", "noheader-none-last", b"\x60" + csvs["noheader"])   # no header, columns -1
put("csv", "plain-exclude-range", b"\x43" + csvs["plain"])     # left out: a-b
put("csv", "sk-iris-names", b"\x18" + firsts["sk-iris"])       # the first line as names
put("csv", "tsv", b"\x80" + b"a b\tc\n1\t2\n")
put("csv", "gz", b"\x44" + gzip.compress(csvs["plain"], mtime=0))   # columns 1--1

# ---- FITS (first byte: bits 0-2 a column list, 3-4 the HDU, 5 a .gz name, 6 list columns,
# 7 the HDU named TEST with the last column left out, and its header read)
def card(k, v=None, c=""):
    if v is None:
        s = k.ljust(80)
    elif isinstance(v, bool):
        s = "%-8s= %20s" % (k, "T" if v else "F")
    elif isinstance(v, str):
        s = "%-8s= %-20s" % (k, "'%-8s'" % v)
    else:
        s = "%-8s= %20s" % (k, v)
    return s.ljust(80)[:80].encode()
def block(b, fill=b" "):
    return b + fill * (-len(b) % 2880)
def header(cards):
    return block(b"".join(cards) + card("END"))
def image(a, bitpix, primary=True, extra=()):
    cards = [card("SIMPLE", True) if primary else card("XTENSION", "IMAGE"), card("BITPIX", bitpix),
             card("NAXIS", a.ndim)] + [card("NAXIS%d" % (i + 1), n) for i, n in enumerate(a.shape[::-1])]
    if not primary:
        cards += [card("PCOUNT", 0), card("GCOUNT", 1)]
    return header(cards + list(extra)) + block(a.tobytes(), b"\0")
def bintable(cols, n):
    width = sum(np.dtype(d).itemsize for _, _, d in cols)
    cards = [card("XTENSION", "BINTABLE"), card("BITPIX", 8), card("NAXIS", 2), card("NAXIS1", width),
             card("NAXIS2", n), card("PCOUNT", 0), card("GCOUNT", 1), card("TFIELDS", len(cols))]
    for i, (name, form, _) in enumerate(cols):
        cards += [card("TTYPE%d" % (i + 1), name), card("TFORM%d" % (i + 1), form)]
    rec = np.zeros(n, dtype=[(c[0], c[2]) for c in cols])
    for c in cols:
        rec[c[0]] = np.arange(n)
    return header(cards) + block(rec.tobytes(), b"\0")
def asciitable(n):
    cards = [card("XTENSION", "TABLE"), card("BITPIX", 8), card("NAXIS", 2), card("NAXIS1", 16),
             card("NAXIS2", n), card("PCOUNT", 0), card("GCOUNT", 1), card("TFIELDS", 2),
             card("TTYPE1", "a"), card("TFORM1", "E8.2"), card("TBCOL1", 1),
             card("TTYPE2", "b"), card("TFORM2", "I8"), card("TBCOL2", 9)]
    rows = b"".join(b"%8.2f%8d" % (i / 3, i) for i in range(n))
    return header(cards) + block(rows)
empty = header([card("SIMPLE", True), card("BITPIX", 8), card("NAXIS", 0), card("EXTEND", True)])
cube = np.arange(2 * 3 * 4, dtype=">f4").reshape(2, 3, 4)
fits = {
    "f32-cube": image(cube, -32),
    "i16-bscale": image(np.arange(6, dtype=">i2").reshape(2, 3), 16, extra=[card("BSCALE", 0.5), card("BZERO", 10)]),
    "u8": image(np.arange(4, dtype=np.uint8).reshape(2, 2), 8),
    "f64": image(np.array([[1.5, 2]], ">f8"), -64),
    "i32-blank": image(np.array([1, -5], ">i4"), 32, extra=[card("BLANK", -5)]),
    "bintable": empty + bintable([("a", "E", ">f4"), ("b", "D", ">f8"), ("c", "J", ">i4"), ("d", "I", ">i2")], 3),
    "asciitable": empty + asciitable(3),
    "image-ext": empty + image(cube[0], -32, primary=False),
}
for name, data in fits.items():
    put("fits", name, b"\x00" + data)            # first HDU with data, every column
    put("fits", name + ".gz", b"\x60" + gzip.compress(data, mtime=0))
put("fits", "bintable-hdu2-cols", b"\x12" + fits["bintable"])   # HDU 2, columns 2,1
put("fits", "asciitable-named", b"\x53" + fits["asciitable"])  # HDU 2, columns a,b, list
put("fits", "image-ext-hdu2", b"\x10" + fits["image-ext"])
iris = open(os.path.join(os.path.dirname(root), "..", "examples", "data", "iris.fits"), "rb").read()
put("fits", "iris-test-named", b"\xc0" + iris)   # EXTNAME TEST, list its columns
put("fits", "iris-text-column", b"\x04" + iris)  # column 'x': an error that lists them

# ---- model descriptions: the examples and test networks, and the README's snippets
for p in sorted(glob.glob("examples/*.model") + glob.glob("tests/fixtures/*.model")):
    put("model", os.path.basename(p), open(p, "rb").read())
models = {
    "residual": """input name=img shape=3x8x8
conv2d name=c1 filters=4 kernel=3 padding=same activation=relu
conv2d name=c2 filters=4 kernel=3 padding=same
add inputs=c1,c2
relu
globalavgpool
input name=meta shape=4
concat inputs=global_average_pooling2d_1,meta axis=1
dense units=1
loss mse
""",
    "unet": """input shape=1x8x8
conv2d name=d1 filters=2 kernel=3 padding=same activation=relu
maxpool size=2
conv2d filters=4 kernel=3 padding=1 dilation=1 stride=1
batchnorm momentum=0.1 eps=1e-5
leaky_relu alpha=0.1
conv2d_transpose filters=2 kernel=2 stride=2 output_padding=0
concat inputs=d1,conv2d_transpose_1
upsample2d size=2 mode=bilinear
avgpool size=2 exclude_pad=true
conv2d filters=1 kernel=1 activation=sigmoid
loss binary_crossentropy
optimizer sgd lr=0.1 momentum=0.9 nesterov=true schedule=cosine t_max=10
""",
    "hetero": """input shape=5
dense name=h units=4 activation=tanh init=he_normal bias_init=0.1
dense name=mean inputs=h units=1
dense name=logvar inputs=h units=1
loss gaussian_nll mean=mean logvar=logvar
optimizer adamw lr=1e-3 weight_decay=0.01 amsgrad=true clipnorm=1
""",
    "vae": """input shape=6
dense name=mu units=2
dense name=lv inputs=input_1 units=2
loss kl_gaussian mean=mu logvar=lv weight=0.5
dense inputs=mu units=6 activation=sigmoid
loss mse output=dense_3 reduction=sum
""",
    "spectra": """input shape=1x16
conv1d filters=3 kernel=5 padding=same activation=elu
sumpool size=2
l2pool size=2 stride=1
conv3d filters=1 kernel=1
""",
    "classifier": """input shape=1x6x6
conv2d filters=2 kernel=3 stride=2 padding=valid
prelu shared=true
flatten
dropout rate=0.25
dense units=3 activation=softmax
loss categorical_crossentropy
optimizer rmsprop lr=1e-2 alpha=0.9 schedule=step step_size=2 gamma=0.5
""",
    "misc": """# all activations
input shape=4
reshape shape=2x2
flatten
softplus
sigmoid
activation fn=tanh
elu alpha=1
log_softmax axis=1
multiply inputs=log_softmax_1,input_1
subtract inputs=multiply_1,input_1
dense units=2 bias=false
loss mae
optimizer adagrad lr=0.1 schedule=exponential gamma=0.9 per_epoch=true
""",
    "conv3d": """input shape=1x4x4x4
conv3d filters=2 kernel=3 padding=same
maxpool3d size=2
globalmaxpool
dense units=1 activation=sigmoid
loss binary_crossentropy
""",
}
for name, text in models.items():
    put("model", name, text.encode())

# ---- command lines (one argument per line)
clis = [
    "summary\nexamples/ellipticity.model",
    "summary\nm.model\n--batch-size\n8",
    "init\nm.model\n--seed\n3\n-o\nw.safetensors",
    "train\nm.model\n--data\nx.npy\n--labels\ny.npy\n--epochs\n3\n--batch-size=16\n--optimizer\nsgd\n--lr\n0.1\n"
    "--val-split\n0.2\n--early-stopping\n2\n--scale\nasinh:3\n--augment\nflips,rot90\n--threads\n1\n-q\n-o\nw.safetensors",
    "train\nm.model\n--data\nt.fits\n--hdu\n2\n--columns\nmag_u,mag_g\n--label-columns\nz\n--val\nv.fits\n"
    "--val-labels\nv.fits\n--scale\ndivide:255\n--resume\n--skip-nonfinite\n--no-shuffle\n--log\nl.csv\n--curve\nc.png\n-o\nw",
    "train\nm.model\n--data\nx.npy\n--labels\ny.npy\n--scale\nstandardize\n--seed\n7\n-o\nw.safetensors",
    "eval\nm.model\n--weights\nw.safetensors\n--data\nx.npy\n--labels\ny.npy\n--batch-size\n64",
    "predict\nm.model\n--weights\nw.safetensors\n--data\nx.csv\n--columns\n1,2\n-o\np.npy\n--mc-dropout\n10\n--seed\n1",
    "grad\nm.model\n--weights\nw.safetensors\n--data\nx.npy\n--labels\ny.npy\n-o\ng.safetensors",
    "sim\ngalaxies\n--count\n10\n--size\n32\n--n\n0.5:6\n--hlr\n1.5:5\n--e-max\n0.6\n--snr\n10:100\n--psf\nmoffat\n"
    "--psf-fwhm\n2:3\n--beta\n3\n--offset\n0.5\n--sky-sigma\n1\n--gain\n0\n--seed\n2\n-o\ni.fits\n--truth\nt.csv",
    "sim\ngalaxies\n--params\np.csv\n-o\ni.npy\n--truth\nt.fits",
    "train\nm.model\n--data\nt.csv\n--no-header\n--label-columns\n-1\n--columns\n1-4\n--nan\nmean\n-o\nw",
    "predict\nm.model\n--weights\nw\n--data\ni.fits\n--hdu\nSCI\n--nan\nfill:0\n--classes\n-o\np.fits",
    "eval\nm.model\n--weights\nw\n--data\nt.tsv\n--header\n--label-columns\n-2--1\n--hdu\n0\n--nan\ndrop-samples",
    "help\ntrain", "--version", "train\n--help", "bogus",
]
for i, text in enumerate(clis):
    put("cli", "%02d" % i, text.encode())
print("seeds written to", root)
