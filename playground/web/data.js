/* data.js - the playground's data: TF Playground's six data sets (seeded), the input
 * features, CSV parsing with clear messages, and the model file the page's choices make. */
"use strict";

/* mulberry32: a small seeded generator, so a permalink gives the same points. */
function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const uniform = (lo, hi) => lo + (hi - lo) * next();
  const normal = (mean, variance) => {
    let u = 0, v = 0;
    while (u === 0) u = next();
    v = next();
    return mean + Math.sqrt(variance) * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  return { next, uniform, normal };
}

/* Each generator returns points {x, y, label}: label -1/+1 (classification) or in
 * [-1, 1] (regression), on the square [-6, 6]^2, as TF Playground's dataset.ts. */
const DATASETS = {
  circle: { kind: "class", title: "Circle", gen(n, noise, r) {
    const pts = [], radius = 5;
    const label = (x, y) => (Math.hypot(x, y) < radius * 0.5 ? 1 : -1);
    for (let i = 0; i < n; i++) {
      const inside = i < n / 2;
      const rr = inside ? r.uniform(0, radius * 0.5) : r.uniform(radius * 0.7, radius);
      const a = r.uniform(0, 2 * Math.PI);
      const x = rr * Math.sin(a), y = rr * Math.cos(a);
      const nx = r.uniform(-radius, radius) * noise, ny = r.uniform(-radius, radius) * noise;
      pts.push({ x, y, label: label(x + nx, y + ny) });
    }
    return pts;
  } },
  xor: { kind: "class", title: "Exclusive or", gen(n, noise, r) {
    const pts = [], pad = 0.3;
    for (let i = 0; i < n; i++) {
      let x = r.uniform(-5, 5); x += x > 0 ? pad : -pad;
      let y = r.uniform(-5, 5); y += y > 0 ? pad : -pad;
      const nx = r.uniform(-5, 5) * noise, ny = r.uniform(-5, 5) * noise;
      pts.push({ x, y, label: (x + nx) * (y + ny) >= 0 ? 1 : -1 });
    }
    return pts;
  } },
  gauss: { kind: "class", title: "Gaussian", gen(n, noise, r) {
    const pts = [], variance = 0.5 + 3.5 * (noise / 0.5);
    for (let i = 0; i < n; i++) {
      const lab = i < n / 2 ? 1 : -1, c = lab > 0 ? 2 : -2;
      pts.push({ x: r.normal(c, variance), y: r.normal(c, variance), label: lab });
    }
    return pts;
  } },
  spiral: { kind: "class", title: "Spiral", gen(n, noise, r) {
    const pts = [], m = n / 2;
    const arm = (dt, lab) => {
      for (let i = 0; i < m; i++) {
        const rr = (i / m) * 5, t = (1.75 * i / m) * 2 * Math.PI + dt;
        pts.push({ x: rr * Math.sin(t) + r.uniform(-1, 1) * noise,
                   y: rr * Math.cos(t) + r.uniform(-1, 1) * noise, label: lab });
      }
    };
    arm(0, 1);
    arm(Math.PI, -1);
    return pts;
  } },
  plane: { kind: "reg", title: "Plane (regression)", gen(n, noise, r) {
    const pts = [];
    for (let i = 0; i < n; i++) {
      const x = r.uniform(-6, 6), y = r.uniform(-6, 6);
      const nx = r.uniform(-6, 6) * noise, ny = r.uniform(-6, 6) * noise;
      pts.push({ x, y, label: (x + nx + y + ny) / 10 });
    }
    return pts;
  } },
  mgauss: { kind: "reg", title: "Multi Gaussian (regression)", gen(n, noise, r) {
    const g = [[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1], [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]];
    const label = (x, y) => {
      let l = 0;
      for (const [cx, cy, s] of g) {
        const v = s * Math.max(0, 1 - Math.hypot(x - cx, y - cy) / 2);
        if (Math.abs(v) > Math.abs(l)) l = v;
      }
      return l;
    };
    const pts = [];
    for (let i = 0; i < n; i++) {
      const x = r.uniform(-6, 6), y = r.uniform(-6, 6);
      const nx = r.uniform(-6, 6) * noise, ny = r.uniform(-6, 6) * noise;
      pts.push({ x, y, label: label(x + nx, y + ny) });
    }
    return pts;
  } },
};

const FEATURES = {
  x1: { label: "X<sub>1</sub>", f: (x) => x },
  x2: { label: "X<sub>2</sub>", f: (x, y) => y },
  x1sq: { label: "X<sub>1</sub><sup>2</sup>", f: (x) => x * x },
  x2sq: { label: "X<sub>2</sub><sup>2</sup>", f: (x, y) => y * y },
  x1x2: { label: "X<sub>1</sub>X<sub>2</sub>", f: (x, y) => x * y },
  sinx1: { label: "sin(X<sub>1</sub>)", f: (x) => Math.sin(x) },
  sinx2: { label: "sin(X<sub>2</sub>)", f: (x, y) => Math.sin(y) },
};

/* Points -> the feature matrix (Float32Array, row-major) for the chosen features. */
function featureMatrix(points, feats) {
  const out = new Float32Array(points.length * feats.length);
  points.forEach((p, i) => {
    if (p.v) { feats.forEach((_, j) => { out[i * feats.length + j] = p.v[j]; }); return; }
    feats.forEach((name, j) => { out[i * feats.length + j] = FEATURES[name].f(p.x, p.y); });
  });
  return out;
}

/* A CSV (or TSV, or ;-separated) table: numeric columns, the last one the label; an optional
 * header line. Returns {cols, rows, header} or throws Error with a message naming the line. */
function parseCsv(text, name) {
  name = name || "the file";
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const rows = [];
  let header = null, width = 0, sep = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    if (sep === null) sep = line.includes(",") ? "," : line.includes("\t") ? "\t" : line.includes(";") ? ";" : /\s+/;
    const fields = line.split(sep).map((s) => s.trim());
    if (!width) {
      width = fields.length;
      if (fields.some((f) => f !== "" && isNaN(Number(f)))) { header = fields; continue; }
    }
    if (fields.length !== width)
      throw new Error(`${name}, line ${i + 1}: ${fields.length} fields, but the ${header ? "header" : "first row"} has ${width}`);
    const vals = fields.map((f, j) => {
      const v = f === "" ? NaN : Number(f);
      if (!Number.isFinite(v))
        throw new Error(`${name}, line ${i + 1}, column ${j + 1}${header ? ` (${header[j]})` : ""}: '${f}' is not a number`);
      return v;
    });
    rows.push(vals);
  }
  if (!rows.length) throw new Error(`${name}: no data rows (the file is empty${header ? " but for its header" : ""})`);
  if (width < 2) throw new Error(`${name}: needs at least 2 columns (features, then the label), found ${width}`);
  if (rows.length < 4) throw new Error(`${name}: ${rows.length} rows; at least 4 are needed to train and test`);
  return { header: header || Array.from({ length: width }, (_, j) => (j === width - 1 ? "label" : `x${j + 1}`)), rows };
}

/* A parsed CSV as playground points: integer labels 0..K-1 with K <= 6 make a classification
 * (K = 2: binary), anything else a regression. */
function csvToPoints(table) {
  const w = table.rows[0].length, labels = table.rows.map((r) => r[w - 1]);
  const ints = labels.every((l) => Number.isInteger(l) && l >= 0 && l < 6);
  const k = ints ? Math.max(...labels) + 1 : 0;
  const kind = ints && k >= 2 ? "class" : "reg";
  const points = table.rows.map((r) => ({
    x: r[0], y: r[1], v: w - 1 > 2 ? r.slice(0, w - 1) : null,
    label: kind === "class" ? (k === 2 ? (r[w - 1] ? 1 : -1) : r[w - 1]) : r[w - 1] }));
  return { kind, classes: kind === "class" ? k : 0, points, nfeat: w - 1, header: table.header };
}

/* The model file of the page's choices (s: the state). */
function modelText(s) {
  const L = [];
  const feats = s.nfeatRaw > 2 ? s.header.slice(0, s.nfeatRaw) : s.features;
  L.push(`# deepsky playground: ${s.dataTitle}; inputs: ${feats.join(", ")}`);
  if (s.l1 > 0) L.push(`# L1 regularization ${s.l1} of the dense weights was applied by the page (not a model-file option)`);
  L.push(`input name=x shape=${feats.length}`);
  const act = s.activation;
  s.layers.forEach((units, k) => {
    const i = k + 1;
    if (s.batchnorm) {
      L.push(`dense name=d${i} units=${units}`);
      L.push(act === "linear" ? `batchnorm name=h${i}` : `batchnorm name=bn${i}`);
      if (act !== "linear") L.push(`${act} name=h${i}`);
    } else {
      L.push(`dense name=h${i} units=${units} activation=${act}`);
    }
    if (s.dropout > 0) L.push(`dropout name=do${i} rate=${s.dropout}`);
  });
  const k = s.classes;
  if (s.kind === "class" && k > 2) {
    L.push(`dense name=out units=${k} activation=softmax`);
    L.push("loss categorical_crossentropy");
  } else if (s.kind === "class") {
    L.push("dense name=out units=1 activation=sigmoid");
    L.push("loss binary_crossentropy");
  } else {
    L.push("dense name=out units=1");
    L.push(`loss ${s.loss === "mae" ? "mae" : "mse"}`);
  }
  let opt = `optimizer ${s.optimizer} lr=${s.lr}`;
  if (s.l2 > 0) opt += ` weight_decay=${s.l2}`;
  if (s.optimizer === "sgd" && s.momentum > 0) opt += ` momentum=${s.momentum}`;
  if (s.schedule !== "constant") {
    opt += ` schedule=${s.schedule} per_epoch=true`;
    if (s.schedule === "step") opt += " step_size=50 gamma=0.5";
    if (s.schedule === "exponential") opt += " gamma=0.99";
    if (s.schedule === "inverse_time") opt += " decay=0.01";
    if (s.schedule === "cosine") opt += " t_max=500";
  }
  L.push(opt);
  return L.join("\n") + "\n";
}

if (typeof module !== "undefined") module.exports = { makeRng, DATASETS, FEATURES, featureMatrix, parseCsv, csvToPoints, modelText };
