/* worker.js - the playground's Web Worker: deepsky's engine (engine.wasm) builds the net,
 * trains it in slices while "play" runs, and answers the page's requests. */
"use strict";
importScripts("engine.js");

let E = null;            /* the engine module */
let playing = false;
let view = null;         /* what each progress message carries: grid, layers, params, test x */
let stepsDone = 0;

const ready = createEngine().then((m) => { E = m; });

/* Copies a Float32Array into the engine's memory; the caller frees the pointer. */
function put(arr) {
  const p = E._malloc(Math.max(4, arr.length * 4));
  E.HEAPF32.set(arr, p >> 2);
  return p;
}
function take(p, n) { return E.HEAPF32.slice(p >> 2, (p >> 2) + n); }
function str(s) {
  const n = E.lengthBytesUTF8(s) + 1, p = E._malloc(n);
  E.stringToUTF8(s, p, n);
  return p;
}
const error = () => E.UTF8ToString(E._pg_error());

function build(m) {
  const t = str(m.text);
  const rc = E._pg_build(t, m.seed, m.batch, m.l1 || 0);
  E._free(t);
  if (rc) return { ok: false, error: error() };
  const sp = E._pg_summary();
  const summary = sp ? E.UTF8ToString(sp) : "";
  E._pg_free(sp);
  stepsDone = 0;
  return { ok: true, summary, features: E._pg_features(), classes: E._pg_classes() };
}

function setData(m) {
  for (const [k, d] of [[0, m.train], [1, m.test]]) {
    const px = put(d.x), py = put(d.y);
    const rc = E._pg_set_data(k, px, py, d.n, d.nf, d.ycols);
    E._free(px); E._free(py);
    if (rc) return { ok: false, error: error() };
  }
  return { ok: true };
}

function predict(x, n) {
  const nf = E._pg_features(), px = put(x), out = E._malloc(Math.max(4, n * 8 * 4));
  const k = E._pg_predict(px, n, out);
  const r = k > 0 ? take(out, n * k) : null;
  E._free(px); E._free(out);
  return { k, out: r };
}

/* The picture after a step: losses, the output on the grid, each layer's values, weights. */
function snapshot() {
  const s = { epoch: E._pg_epoch(), trainLoss: E._pg_loss(0), testLoss: E._pg_loss(1),
              lr: E._pg_lr(), steps: stepsDone };
  if (!view) return s;
  if (view.grid) {
    const g = predict(view.grid, view.gridN);
    s.grid = g.out; s.k = g.k;
    if (view.layers && view.layers.length) {
      const px = put(view.grid);
      if (!E._pg_viz(px, view.gridN)) {
        const cap = view.gridN * 8, out = E._malloc(cap * 4);
        s.layers = view.layers.map((name) => {
          const p = str(name), k = E._pg_viz_read(p, out, cap);
          E._free(p);
          return k > 0 ? { k, v: take(out, view.gridN * k) } : null;
        });
        E._free(out);
      }
      E._free(px);
    }
  }
  if (view.params) {
    const cap = 64 * 8, out = E._malloc(cap * 4);
    s.params = view.params.map((name) => {
      const p = str(name), k = E._pg_param(p, out, cap);
      E._free(p);
      return k > 0 ? take(out, k) : null;
    });
    E._free(out);
  }
  for (const which of ["train", "test"]) {
    if (view[which]) s[which + "Pred"] = predict(view[which], view[which + "N"]).out;
  }
  return s;
}

function trainEpochs(n) {
  const t0 = performance.now();
  const loss = E._pg_train(n);
  if (Number.isNaN(loss)) return { ok: false, error: error() };
  stepsDone += n * view.stepsPerEpoch;
  return { ok: true, ms: performance.now() - t0 };
}

/* Play: slices of training of about 40 ms, a snapshot after each, until paused. */
async function play(id) {
  let rate = 0, steps = 0, t0 = performance.now(), per = 1;
  while (playing) {
    const r = trainEpochs(per);
    if (!r.ok) { playing = false; postMessage({ id, cmd: "error", error: r.error }); return; }
    steps += per * view.stepsPerEpoch;
    per = Math.max(1, Math.min(50, Math.round(per * (r.ms > 40 ? 0.5 : r.ms < 15 ? 2 : 1))));
    const dt = (performance.now() - t0) / 1000;
    if (dt > 0.5) { rate = steps / dt; steps = 0; t0 = performance.now(); }
    const s = snapshot();
    s.stepsPerSecond = rate;
    postMessage({ cmd: "progress", state: s });
    if (view.maxEpochs && s.epoch >= view.maxEpochs) { playing = false; postMessage({ cmd: "paused" }); }
    await new Promise((res) => setTimeout(res, 0));   /* lets "pause" in */
  }
}

onmessage = async (ev) => {
  await ready;
  const m = ev.data, reply = (o) => postMessage(Object.assign({ id: m.id, cmd: m.cmd }, o));
  try {
    switch (m.cmd) {
      case "build": reply(build(m)); break;
      case "data": reply(setData(m)); break;
      case "view": view = m.view; reply({ ok: true, state: snapshot() }); break;
      case "step": { const r = trainEpochs(m.epochs || 1); reply(r.ok ? { ok: true, state: snapshot() } : r); break; }
      case "play": if (!playing) { playing = true; reply({ ok: true }); play(m.id); } break;
      case "pause": playing = false; reply({ ok: true }); break;
      case "predict": reply(predict(m.x, m.n)); break;
      case "export": {
        const lp = E._malloc(4), p = E._pg_export_weights(lp), n = E.getValue(lp, "i32");
        const bytes = p ? E.HEAPU8.slice(p, p + n) : null;
        E._pg_free(p); E._free(lp);
        reply(bytes ? { ok: true, bytes } : { ok: false, error: error() });
        break;
      }
      case "loss": reply({ train: E._pg_loss(0), test: E._pg_loss(1) }); break;
      default: reply({ ok: false, error: "unknown command " + m.cmd });
    }
  } catch (e) {
    reply({ ok: false, error: String(e && e.message || e) });
  }
};
