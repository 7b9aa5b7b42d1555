/* app.js - the playground page: state (and its permalink), data, the network view, the
 * output view, and the worker that runs deepsky's engine. */
"use strict";

const $ = (id) => document.getElementById(id);
const GRID = 50;                 /* the output is computed on GRID x GRID points */
const MAX_LAYERS = 6, MAX_UNITS = 8;
const CLASS_COLOURS = [[8, 119, 189], [245, 147, 34], [46, 160, 67], [173, 73, 200], [214, 39, 40], [120, 120, 120]];

/* ---- state: everything a permalink holds ---- */
const DEFAULTS = { dataset: "circle", noise: 0, ratio: 50, batch: 10, features: ["x1", "x2"], layers: [4, 2],
  activation: "tanh", lr: 0.03, reg: "none", regrate: 0, problem: "class", optimizer: "sgd", momentum: 0,
  schedule: "constant", loss: "mse", dropout: 0, batchnorm: false, seed: 1, showTest: false, discretize: false };
const S = JSON.parse(JSON.stringify(DEFAULTS));

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  for (const [k, v] of h) {
    if (!(k in DEFAULTS)) continue;
    const d = DEFAULTS[k];
    if (Array.isArray(d)) S[k] = v ? v.split(",").map((x) => (k === "layers" ? Math.max(1, Math.min(MAX_UNITS, parseInt(x, 10) || 1)) : x)) : [];
    else if (typeof d === "number") { const n = Number(v); if (Number.isFinite(n)) S[k] = n; }
    else if (typeof d === "boolean") S[k] = v === "true" || v === "1";
    else S[k] = v;
  }
  S.layers = S.layers.slice(0, MAX_LAYERS);
  S.features = S.features.filter((f) => f in FEATURES);
  if (!S.features.length) S.features = ["x1", "x2"];
  if (!(S.dataset in DATASETS)) S.dataset = "circle";
  S.problem = DATASETS[S.dataset].kind;
}
function writeHash() {
  const h = new URLSearchParams();
  for (const k in DEFAULTS) h.set(k, Array.isArray(S[k]) ? S[k].join(",") : String(S[k]));
  return "#" + h.toString();
}

/* ---- data ---- */
let D = null;   /* {kind, classes, train, test, nfeat, header, title, custom, extent} */

function makeData() {
  const ds = DATASETS[S.dataset], r = makeRng(S.seed * 7919 + 17);
  const n = ds.kind === "class" ? 500 : 1200;
  const pts = ds.gen(n, S.noise / 100, r);
  return splitData({ kind: ds.kind, classes: ds.kind === "class" ? 2 : 0, points: pts, nfeat: 2,
                     header: null, title: ds.title, custom: false, extent: 6 });
}
function splitData(d) {
  const r = makeRng(S.seed * 104729 + 3), pts = d.points.slice();
  for (let i = pts.length - 1; i > 0; i--) { const j = Math.floor(r.next() * (i + 1)); [pts[i], pts[j]] = [pts[j], pts[i]]; }
  const nt = Math.max(1, Math.min(pts.length - 1, Math.round(pts.length * S.ratio / 100)));
  return Object.assign({}, d, { train: pts.slice(0, nt), test: pts.slice(nt) });
}
function activeFeatures() { return D.nfeat > 2 ? D.header.slice(0, D.nfeat) : S.features; }
function labelsOf(pts) {
  if (D.kind === "class" && D.classes > 2) return { y: Float32Array.from(pts, (p) => p.label), ycols: 0 };
  if (D.kind === "class") return { y: Float32Array.from(pts, (p) => (p.label > 0 ? 1 : 0)), ycols: 1 };
  return { y: Float32Array.from(pts, (p) => p.label), ycols: 1 };
}
function gridPoints() {
  const e = D.extent, pts = [];
  for (let i = 0; i < GRID; i++)          /* rows from the top: y = +e ... -e */
    for (let j = 0; j < GRID; j++)
      pts.push({ x: D.cx - e + (2 * e * (j + 0.5)) / GRID, y: D.cy + e - (2 * e * (i + 0.5)) / GRID });
  return pts;
}

/* ---- the worker ---- */
const worker = new Worker("worker.js");
let nextId = 1;
const pending = new Map();
function rpc(cmd, o) {
  const id = nextId++;
  return new Promise((res) => { pending.set(id, res); worker.postMessage(Object.assign({ id, cmd }, o || {})); });
}
worker.onmessage = (ev) => {
  const m = ev.data;
  if (m.cmd === "progress") return render(m.state);
  if (m.cmd === "paused") return setPlaying(false);
  if (m.cmd === "error") { setPlaying(false); return say(m.error); }
  const res = pending.get(m.id);
  if (res) { pending.delete(m.id); res(m); }
};
worker.onerror = (e) => say("worker: " + e.message);

/* ---- messages ---- */
function say(text, ok) { const el = $("message"); el.textContent = text || ""; el.className = ok ? "ok" : ""; }

/* ---- building the net ---- */
let built = null;     /* {text, layers (names), params, steps per epoch} */
let history = [];
let last = null;
let playing = false;
let busy = Promise.resolve();

function modelState() {
  return { dataTitle: D.title, nfeatRaw: D.nfeat, header: D.header || [], features: activeFeatures(),
    layers: S.layers, activation: S.activation, batchnorm: S.batchnorm, dropout: S.dropout, kind: D.kind,
    classes: D.classes, loss: S.loss, optimizer: S.optimizer, lr: S.lr, momentum: S.momentum,
    schedule: S.schedule, l1: S.reg === "l1" ? S.regrate : 0, l2: S.reg === "l2" ? S.regrate : 0 };
}

async function rebuild() {
  await pause();
  const feats = activeFeatures();
  const text = modelText(modelState());
  const b = await rpc("build", { text, seed: S.seed, batch: S.batch, l1: S.reg === "l1" ? S.regrate : 0 });
  if (!b.ok) { say(b.error); return false; }
  const tr = labelsOf(D.train), te = labelsOf(D.test);
  const d = await rpc("data", {
    train: { x: featureMatrix(D.train, feats), y: tr.y, n: D.train.length, nf: feats.length, ycols: tr.ycols },
    test: { x: featureMatrix(D.test, feats), y: te.y, n: D.test.length, nf: feats.length, ycols: te.ycols } });
  if (!d.ok) { say(d.error); return false; }
  const layers = S.layers.map((_, k) => `h${k + 1}`);
  const params = S.layers.map((_, k) => `${S.batchnorm ? "d" : "h"}${k + 1}.weight`);
  const twoD = D.nfeat === 2;
  built = { text, layers, params, feats, twoD, summary: b.summary };
  $("summary").textContent = b.summary;
  $("modelText").textContent = text;
  history = [];
  drawNetwork();
  const v = await rpc("view", { view: {
    grid: twoD ? featureMatrix(gridPoints(), feats) : null, gridN: GRID * GRID,
    layers: twoD ? layers : [], params, test: featureMatrix(D.test, feats), testN: D.test.length,
    stepsPerEpoch: Math.ceil(D.train.length / S.batch) } });
  render(v.state);
  return true;
}
function reset() { busy = busy.then(rebuild); return busy; }

/* ---- play, pause, step ---- */
function setPlaying(on) {
  playing = on;
  const b = $("play");
  b.innerHTML = on ? "&#x275a;&#x275a;" : "&#x25b6;";
  b.setAttribute("aria-label", on ? "Pause" : "Run");
}
async function pause() { if (playing) { setPlaying(false); await rpc("pause"); } }
async function togglePlay() {
  await busy;
  if (playing) return pause();
  setPlaying(true);
  await rpc("play");
}
async function step(epochs) {
  await busy;
  await pause();
  const r = await rpc("step", { epochs: epochs || 1 });
  if (!r.ok) return say(r.error);
  render(r.state);
  return r.state;
}

/* ---- drawing ---- */
function colourOf(v) {   /* v in [-1, 1]: orange - white - blue, as TF Playground */
  v = Math.max(-1, Math.min(1, v));
  const w = [232, 234, 235], c = v >= 0 ? [8, 119, 189] : [245, 147, 34], t = Math.abs(v);
  return [0, 1, 2].map((i) => Math.round(w[i] + (c[i] - w[i]) * t));
}
function paintMap(canvas, n, valueAt, smooth) {
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const c = valueAt(i);
    img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
  }
  const off = document.createElement("canvas");
  off.width = off.height = n;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = !!smooth;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
}
function outputColour(s, i) {
  const k = s.k;
  if (D.kind === "class" && D.classes > 2) {
    let best = 0;
    for (let c = 1; c < k; c++) if (s.grid[i * k + c] > s.grid[i * k + best]) best = c;
    const p = s.grid[i * k + best], t = S.discretize ? 1 : Math.max(0, (p - 1 / k) / (1 - 1 / k));
    const col = CLASS_COLOURS[best];
    return col.map((x) => Math.round(240 + (x - 240) * (0.25 + 0.6 * t)));
  }
  let v = D.kind === "class" ? 2 * s.grid[i] - 1 : s.grid[i];
  if (S.discretize) v = v >= 0 ? 1 : -1;
  return colourOf(v);
}
function pointColour(label) {
  if (D.kind === "class" && D.classes > 2) return `rgb(${CLASS_COLOURS[label].join(",")})`;
  return `rgb(${colourOf(D.kind === "class" ? label : label).join(",")})`;
}
function drawBoundary(s) {
  const cv = $("boundary"), ctx = cv.getContext("2d");
  if (!built.twoD || !s.grid) {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cv.width, cv.height);
    ctx.fillStyle = "#777"; ctx.font = "13px sans-serif";
    ctx.fillText(`${D.nfeat} features: no 2-D view`, 20, cv.height / 2);
    return;
  }
  paintMap(cv, GRID, (i) => outputColour(s, i).map((x) => Math.round(x + (255 - x) * 0.3)), true);
  const e = D.extent, sx = (x) => ((x - D.cx + e) / (2 * e)) * cv.width, sy = (y) => ((D.cy + e - y) / (2 * e)) * cv.height;
  const draw = (pts, test) => {
    for (const p of pts) {
      ctx.beginPath(); ctx.arc(sx(p.x), sy(p.y), 3, 0, 2 * Math.PI);
      ctx.fillStyle = pointColour(p.label); ctx.fill();
      ctx.lineWidth = 1; ctx.strokeStyle = test ? "#000" : "#fff"; ctx.stroke();
    }
  };
  draw(D.train, false);
  if (S.showTest) draw(D.test, true);
}
function drawCurve() {
  const cv = $("curve"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (history.length < 2) return;
  const max = Math.max(...history.map((h) => Math.max(h.train || 0, h.test || 0)), 1e-9);
  const line = (key, colour) => {
    ctx.beginPath();
    history.forEach((h, i) => {
      const x = (i / (history.length - 1)) * cv.width, y = cv.height - (h[key] / max) * (cv.height - 4) - 2;
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.stroke();
  };
  line("train", "#999");
  line("test", "#000");
}

/* The network: a column of features, one per hidden layer; links drawn over them. */
function drawNetwork() {
  const cols = $("columns");
  cols.innerHTML = "";
  const col = (head) => { const c = document.createElement("div"); c.className = "col"; c.innerHTML = `<div class="head">${head}</div>`; cols.appendChild(c); return c; };
  const fc = col("Features");
  if (D.nfeat > 2) {
    D.header.slice(0, D.nfeat).forEach((h) => {
      const d = document.createElement("div"); d.className = "feature neuron"; d.textContent = h; fc.appendChild(d);
    });
  } else {
    const grid = gridPoints();
    for (const name in FEATURES) {
      const on = S.features.includes(name);
      const d = document.createElement("div");
      d.className = "feature" + (on ? "" : " off");
      d.innerHTML = `<input type="checkbox" aria-label="feature ${name}" ${on ? "checked" : ""}><span class="fname">${FEATURES[name].label}</span><span class="neuron"><canvas width="36" height="36" data-node="in:${name}"></canvas></span>`;
      d.querySelector("input").onchange = (ev) => {
        S.features = ev.target.checked ? Object.keys(FEATURES).filter((f) => f === name || S.features.includes(f)) : S.features.filter((f) => f !== name);
        if (!S.features.length) S.features = [name];
        reset();
      };
      fc.appendChild(d);
      const vals = grid.map((p) => FEATURES[name].f(p.x, p.y)), m = Math.max(...vals.map(Math.abs), 1e-9);
      paintMap(d.querySelector("canvas"), GRID, (i) => colourOf(vals[i] / m));
    }
  }
  S.layers.forEach((units, k) => {
    const c = col(`<button aria-label="Add a neuron to layer ${k + 1}">+</button><button aria-label="Remove a neuron from layer ${k + 1}">&minus;</button><br>${units} neuron${units > 1 ? "s" : ""}`);
    const [plus, minus] = c.querySelectorAll("button");
    plus.onclick = () => { if (S.layers[k] < MAX_UNITS) { S.layers[k]++; reset(); } };
    minus.onclick = () => { if (S.layers[k] > 1) { S.layers[k]--; reset(); } };
    for (let j = 0; j < units; j++) {
      const n = document.createElement("div");
      n.className = "neuron";
      n.innerHTML = `<canvas width="36" height="36" data-node="h${k + 1}:${j}" title="layer ${k + 1}, neuron ${j + 1}"></canvas>`;
      c.appendChild(n);
    }
  });
  $("layerCount").textContent = `${S.layers.length} hidden layer${S.layers.length === 1 ? "" : "s"}`;
  $("links").innerHTML = "";
}
/* The canvases of column c (0: features in use, k: hidden layer k), in the weights' order. */
function columnNodes(c) {
  if (c === 0) {
    if (D.nfeat > 2) return [...$("columns").firstChild.querySelectorAll(".neuron")];
    return activeFeatures().map((f) => document.querySelector(`[data-node="in:${f}"]`));
  }
  return [...document.querySelectorAll(`[data-node^="h${c}:"]`)];
}
function drawLinks(s) {
  const svg = $("links"), box = $("net").getBoundingClientRect();
  const parts = [];
  if (s.params) {
    S.layers.forEach((units, k) => {
      const from = columnNodes(k), to = columnNodes(k + 1), W = s.params[k];
      if (!W) return;
      const nin = from.length;
      to.forEach((t, j) => from.forEach((f, i) => {
        const w = W[j * nin + i], a = f.getBoundingClientRect(), b = t.getBoundingClientRect();
        const x1 = a.right - box.left, y1 = a.top + a.height / 2 - box.top, x2 = b.left - box.left, y2 = b.top + b.height / 2 - box.top;
        const width = Math.min(6, 0.5 + Math.abs(w) * 2).toFixed(2), col = w >= 0 ? "#0877bd" : "#f59322";
        parts.push(`<path d="M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}" stroke="${col}" stroke-width="${width}" fill="none" opacity="0.7"/>`);
      }));
    });
  }
  svg.innerHTML = parts.join("");
}
function drawNeurons(s) {
  if (!s.layers) return;
  s.layers.forEach((L, k) => {
    if (!L) return;
    for (let j = 0; j < L.k; j++) {
      const cv = document.querySelector(`[data-node="h${k + 1}:${j}"]`);
      if (!cv) continue;
      let m = 1e-9;
      for (let i = 0; i < GRID * GRID; i++) m = Math.max(m, Math.abs(L.v[i * L.k + j]));
      paintMap(cv, GRID, (i) => colourOf(L.v[i * L.k + j] / m));
    }
  });
}
function accuracy(pred, pts) {
  if (!pred || D.kind !== "class") return NaN;
  let ok = 0;
  const k = D.classes > 2 ? D.classes : 1;
  pts.forEach((p, i) => {
    if (k === 1) ok += (pred[i] > 0.5) === (p.label > 0) ? 1 : 0;
    else { let b = 0; for (let c = 1; c < k; c++) if (pred[i * k + c] > pred[i * k + b]) b = c; ok += b === p.label ? 1 : 0; }
  });
  return ok / pts.length;
}
function rmse(pred, pts) {
  if (!pred || D.kind !== "reg") return NaN;
  let e = 0;
  pts.forEach((p, i) => { e += (pred[i] - p.label) ** 2; });
  return Math.sqrt(e / pts.length);
}
function render(s) {
  last = s;
  $("epoch").textContent = String(s.epoch).padStart(6, "0").replace(/(\d{3})$/, ",$1");
  $("testLoss").textContent = Number.isFinite(s.testLoss) ? s.testLoss.toFixed(3) : "-";
  $("trainLoss").textContent = Number.isFinite(s.trainLoss) ? s.trainLoss.toFixed(3) : "-";
  s.testAcc = accuracy(s.testPred, D.test);
  s.testRmse = rmse(s.testPred, D.test);
  $("metricName").textContent = D.kind === "class" ? "Test accuracy" : "Test RMSE";
  $("testAcc").textContent = D.kind === "class" ? (Number.isFinite(s.testAcc) ? (100 * s.testAcc).toFixed(1) + "%" : "-")
    : (Number.isFinite(s.testRmse) ? s.testRmse.toFixed(3) : "-");
  if (s.stepsPerSecond) $("rate").textContent = Math.round(s.stepsPerSecond).toLocaleString("en");
  if (!history.length || history[history.length - 1].epoch !== s.epoch) history.push({ epoch: s.epoch, train: s.trainLoss, test: s.testLoss });
  drawCurve();
  drawBoundary(s);
  drawNeurons(s);
  drawLinks(s);
}

/* ---- controls ---- */
function download(name, data, type) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([data], { type }));
  a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
function dataCsv() {
  const feats = activeFeatures(), lab = (p) => (D.kind === "class" && D.classes === 2 ? (p.label > 0 ? 1 : 0) : p.label);
  const rows = [feats.concat(["label", "split"]).join(",")];
  const add = (pts, split) => { const X = featureMatrix(pts, feats); pts.forEach((p, i) => rows.push([...X.subarray(i * feats.length, (i + 1) * feats.length)].join(",") + `,${lab(p)},${split}`)); };
  add(D.train, "train"); add(D.test, "test");
  return rows.join("\n") + "\n";
}
async function exportWeights() { const r = await rpc("export"); if (!r.ok) say(r.error); return r.bytes; }

function datasetButtons() {
  const box = $("datasets");
  box.innerHTML = "";
  for (const name in DATASETS) {
    const b = document.createElement("button");
    b.setAttribute("role", "radio");
    b.setAttribute("aria-checked", String(S.dataset === name && !(D && D.custom)));
    b.setAttribute("aria-label", DATASETS[name].title);
    b.title = DATASETS[name].title;
    b.dataset.name = name;
    const cv = document.createElement("canvas"); cv.width = cv.height = 56;
    b.appendChild(cv);
    const pts = DATASETS[name].gen(200, 0, makeRng(5)), ctx = cv.getContext("2d");
    ctx.fillStyle = "#f5f5f5"; ctx.fillRect(0, 0, 56, 56);
    for (const p of pts) { ctx.fillStyle = `rgb(${colourOf(p.label).join(",")})`; ctx.fillRect((p.x + 6) / 12 * 56 - 1, (6 - p.y) / 12 * 56 - 1, 2, 2); }
    b.onclick = () => { S.dataset = name; S.problem = DATASETS[name].kind; $("problem").value = S.problem; D = makeData(); prepData(); datasetButtons(); reset(); };
    box.appendChild(b);
  }
}
function prepData() {
  if (!D.custom) { D.cx = 0; D.cy = 0; D.extent = 6; return; }
  if (D.nfeat !== 2) return;
  const all = D.train.concat(D.test), xs = all.map((p) => p.x), ys = all.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  D.cx = (x0 + x1) / 2; D.cy = (y0 + y1) / 2; D.extent = Math.max(x1 - x0, y1 - y0) / 2 * 1.1 || 1;
}

function bind() {
  const sel = (id, key, num) => { const el = $(id); el.value = String(S[key]); el.onchange = () => { S[key] = num ? Number(el.value) : el.value; reset(); }; };
  sel("lr", "lr", true); sel("activation", "activation"); sel("reg", "reg"); sel("regrate", "regrate", true);
  sel("optimizer", "optimizer"); sel("momentum", "momentum", true); sel("schedule", "schedule"); sel("loss", "loss");
  sel("dropout", "dropout", true);
  $("problem").value = S.problem;
  $("problem").onchange = () => {
    if (D.custom) { $("problem").value = D.kind; say("the problem type of uploaded data follows its labels"); return; }
    S.problem = $("problem").value;
    S.dataset = S.problem === "class" ? "circle" : "plane";
    D = makeData(); prepData(); datasetButtons(); reset();
  };
  $("batchnorm").checked = S.batchnorm; $("batchnorm").onchange = () => { S.batchnorm = $("batchnorm").checked; reset(); };
  $("seed").value = S.seed; $("seed").onchange = () => { S.seed = Math.max(0, parseInt($("seed").value, 10) || 0); if (!D.custom) D = makeData(); else D = splitData(D); prepData(); reset(); };
  const slider = (id, key, regen) => { const el = $(id), out = $(id + "Out"); el.value = S[key]; out.textContent = S[key];
    el.oninput = () => { out.textContent = el.value; };
    el.onchange = () => { S[key] = Number(el.value); if (regen) { D = D.custom ? splitData(D) : makeData(); prepData(); } reset(); }; };
  slider("ratio", "ratio", true); slider("noise", "noise", true); slider("batch", "batch", false);
  $("regen").onclick = () => { S.seed++; $("seed").value = S.seed; if (!D.custom) D = makeData(); else D = splitData(D); prepData(); reset(); };
  $("showTest").checked = S.showTest; $("showTest").onchange = () => { S.showTest = $("showTest").checked; if (last) drawBoundary(last); };
  $("discretize").checked = S.discretize; $("discretize").onchange = () => { S.discretize = $("discretize").checked; if (last) drawBoundary(last); };
  $("play").onclick = togglePlay;
  $("step").onclick = () => step(1);
  $("reset").onclick = reset;
  $("addLayer").onclick = () => { if (S.layers.length < MAX_LAYERS) { S.layers.push(2); reset(); } };
  $("removeLayer").onclick = () => { if (S.layers.length > 0) { S.layers.pop(); reset(); } };
  $("exportModel").onclick = () => download("playground.model", built.text, "text/plain");
  $("exportWeights").onclick = async () => { const b = await exportWeights(); if (b) download("playground.safetensors", b, "application/octet-stream"); };
  $("exportData").onclick = () => download("playground-data.csv", dataCsv(), "text/csv");
  $("permalink").onclick = () => {
    history.replaceState(null, "", writeHash());
    if (navigator.clipboard) navigator.clipboard.writeText(location.href).catch(() => {});
    say(D.custom ? "Permalink in the address bar (uploaded data is not part of it)" : "Permalink in the address bar (copied)", true);
  };
  $("csv").onchange = async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    await loadCsv(await f.text(), f.name);
    ev.target.value = "";
  };
  document.addEventListener("keydown", (e) => {
    const t = e.target.tagName;
    if (t === "INPUT" || t === "SELECT" || t === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === " " && t !== "BUTTON") { e.preventDefault(); togglePlay(); }
    else if (e.key === "s") step();
    else if (e.key === "r") reset();
  });
}

/* An uploaded table: on any error the message names the line, and the data stay as they were. */
async function loadCsv(text, name) {
  let d;
  try {
    d = csvToPoints(parseCsv(text, name));
  } catch (e) {
    say(`${e.message}. The previous data are kept.`);
    return false;
  }
  const prev = D;
  D = splitData({ kind: d.kind, classes: d.classes, points: d.points, nfeat: d.nfeat, header: d.header, title: name, custom: true });
  prepData();
  S.problem = d.kind;
  $("problem").value = d.kind;
  if (!(await reset())) { D = prev; prepData(); await reset(); return false; }
  datasetButtons();
  say(`${name}: ${d.points.length} rows, ${d.nfeat} features, ${d.kind === "class" ? d.classes + " classes" : "regression"}`, true);
  return true;
}

/* For tests and the curious: the page's pieces. */
window.playground = { S, get D() { return D; }, get history() { return history; }, get last() { return last; }, get built() { return built; },
  rpc, render, reset, togglePlay, step, pause, loadCsv, exportWeights, dataCsv, featureMatrix, writeHash };

readHash();
D = makeData();
prepData();
bind();
datasetButtons();
reset().then(() => { window.playground.ready = true; });
