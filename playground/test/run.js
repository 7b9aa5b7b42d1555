#!/usr/bin/env node
/* run.js - make test-playground: the built page in a headless Chromium (the system's, driven
 * by puppeteer-core: no browser download), served from a local static server.
 * Usage: node playground/test/run.js --out BUILD/playground --native BUILD/playground-native
 *          --cli BUILD/deepsky [--shots DIR] [--only NAME,...]
 * Prints "ok|FAIL|skip  NAME  detail" per check, then "test-playground: N passed, N failed,
 * N skipped" as the other runners do, and exits 1 if any failed. */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const http = require("http");
const { execFileSync } = require("child_process");
const puppeteer = require("puppeteer-core");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const OUT = path.resolve(args.out || "build/playground");
const only = args.only ? args.only.split(",") : null;
let failed = 0, passed = 0, skipped = 0;
const report = (status, name, detail) => {
  if (status === "FAIL") failed++;
  else if (status === "ok") passed++;
  else skipped++;
  console.log(`${status.padEnd(5)} ${name.padEnd(26)} ${detail}`);
};

/* ---- a static server for the built page ---- */
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm" };
function serve(dir) {
  const srv = http.createServer((req, res) => {
    const p = path.join(dir, decodeURIComponent(req.url.split(/[?#]/)[0]).replace(/^\/$/, "/index.html"));
    if (!p.startsWith(dir) || !fs.existsSync(p)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "Content-Type": TYPES[path.extname(p)] || "application/octet-stream" });
    fs.createReadStream(p).pipe(res);
  });
  return new Promise((ok) => srv.listen(0, "127.0.0.1", () => ok(srv)));
}

function chromiumPath() {
  for (const p of [process.env.CHROMIUM, "/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"])
    if (p && fs.existsSync(p)) return p;
  return null;
}

/* ---- .npy for the native tool ---- */
function npy(arr, shape) {
  let h = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  while ((10 + h.length + 1) % 64) h += " ";
  h += "\n";
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(h.length, 8);
  return Buffer.concat([head, Buffer.from(h, "latin1"), Buffer.from(new Float32Array(arr).buffer)]);
}
function readNpy(buf) {
  const hl = buf.readUInt16LE(8), off = 10 + hl;
  const f = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return f;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const exe = chromiumPath();
  if (!exe) { report("skip", "playground", "no Chromium (apt-get install chromium)"); return; }
  if (!fs.existsSync(path.join(OUT, "engine.wasm"))) { report("FAIL", "playground", `${OUT}/engine.wasm missing: make playground`); return; }
  const srv = await serve(OUT);
  const base = `http://127.0.0.1:${srv.address().port}/index.html`;
  const launch = ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"];
  if (process.getuid && process.getuid() === 0) launch.push("--no-sandbox");
  const browser = await puppeteer.launch({ executablePath: exe, args: launch, headless: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deepsky-playground-"));
  const consoleErrors = [];
  const open = async (hash, viewport) => {
    const page = await browser.newPage();
    await page.setViewport(viewport || { width: 1280, height: 900 });
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    await page.goto(base + (hash || ""), { waitUntil: "load" });
    await page.waitForFunction(() => window.playground && window.playground.ready, { timeout: 60000 });
    return page;
  };
  const want = (n) => !only || only.includes(n);
  /* Plays until the test loss is below thr or 500 epochs; the first epoch below it. */
  const trainTo = async (page, thr, metric) => {
    await page.evaluate(() => window.playground.togglePlay());
    const t0 = Date.now();
    let s;
    for (;;) {
      await sleep(200);
      s = await page.evaluate(() => { const l = window.playground.last; return { epoch: l.epoch, test: l.testLoss, acc: l.testAcc, rate: l.stepsPerSecond }; });
      const done = metric === "acc" ? s.acc > thr : s.test < thr;
      if (done || s.epoch >= 500 || Date.now() - t0 > 120000) break;
    }
    await page.evaluate(() => window.playground.pause());
    /* the first epoch at which the page showed the loss below thr */
    if (metric !== "acc") {
      const first = await page.evaluate((thr) => { const h = window.playground.history.find((x) => x.test < thr); return h ? h.epoch : null; }, thr);
      if (first !== null) s.first = first;
    }
    return s;
  };

  /* The page's model file and weights through the native `deepsky predict` on the test
   * points: its outputs against the page's. */
  const exportCheck = async (page, name) => {
    if (!args.cli || !fs.existsSync(args.cli)) return report("skip", name, "no --cli tool");
    const e = await page.evaluate(async () => {
      const p = window.playground, b = await p.exportWeights();
      const x = p.featureMatrix(p.D.test, p.built.feats);
      return { text: p.built.text, w: Array.from(b), x: Array.from(x), nf: p.built.feats.length, pred: Array.from(p.last.testPred) };
    });
    fs.writeFileSync(path.join(tmp, "playground.model"), e.text);
    fs.writeFileSync(path.join(tmp, "playground.safetensors"), Buffer.from(e.w));
    fs.writeFileSync(path.join(tmp, "x.npy"), npy(e.x, [e.x.length / e.nf, e.nf]));
    execFileSync(args.cli, ["predict", path.join(tmp, "playground.model"), "--weights", path.join(tmp, "playground.safetensors"),
      "--data", path.join(tmp, "x.npy"), "-o", path.join(tmp, "pred.npy")], { stdio: "pipe" });
    const nat = readNpy(fs.readFileSync(path.join(tmp, "pred.npy")));
    let md = 0;
    for (let i = 0; i < nat.length; i++) md = Math.max(md, Math.abs(nat[i] - e.pred[i]));
    report(nat.length === e.pred.length && md <= 1e-5 ? "ok" : "FAIL", name,
           `${nat.length} outputs, largest |native - page| = ${md.toExponential(2)} (limit 1e-5)`);
  };
  try {
    /* 1. loads with no console error; the 4 classification sets reach TF Playground's losses */
    const sets = [
      ["circle", "", 0.1], ["xor", "", 0.1], ["gauss", "", 0.1],
      ["spiral", "&features=x1,x2,sinx1,sinx2&layers=8,8", 0.25]];
    for (const [name, extra, thr] of sets) {
      if (!want(name)) continue;
      const page = await open(`#dataset=${name}${extra}`);
      let before = null;
      if (name === "circle") before = await page.evaluate(() => Array.from($("boundary").getContext("2d").getImageData(0, 0, 300, 300).data));
      const s = await trainTo(page, thr);
      report(s.first !== undefined && s.first <= 500 ? "ok" : "FAIL", `loss ${name}`,
             `test loss below ${thr} first at epoch ${s.first} (limit 500); ${s.test.toFixed(4)} at epoch ${s.epoch}`);
      if (before) {
        const after = await page.evaluate(() => Array.from($("boundary").getContext("2d").getImageData(0, 0, 300, 300).data));
        let diff = 0;
        for (let i = 0; i < after.length; i += 4) if (Math.abs(after[i] - before[i]) + Math.abs(after[i + 1] - before[i + 1]) + Math.abs(after[i + 2] - before[i + 2]) > 30) diff++;
        report(diff > 1000 ? "ok" : "FAIL", "boundary changes", `${diff} of 90000 pixels changed by training`);
        await page.$eval("#boundary", (c) => c.scrollIntoView());
        fs.writeFileSync(path.join(tmp, "boundary-after.png"), await (await page.$("#boundary")).screenshot());
        if (want("export")) await exportCheck(page, "export -> deepsky predict");
      }
      await page.close();
    }

    /* 1b. the options beyond TF Playground: batch norm, dropout, ReLU, Adam with a cosine
     * schedule, L1, on a regression; trains, and exports to the native predict too */
    if (want("options")) {
      const page = await open("#dataset=mgauss&problem=reg&layers=8,8&activation=relu&batchnorm=true&dropout=0.1&optimizer=adam&lr=0.01&schedule=cosine&reg=l1&regrate=0.001&features=x1,x2,x1sq,x2sq");
      const s0 = await page.evaluate(() => window.playground.last.testLoss);
      const r = await page.evaluate(async () => { const s = await window.playground.step(100); return s ? { testLoss: s.testLoss, lr: s.lr } : { error: $("message").textContent }; });
      const text = await page.evaluate(() => window.playground.built.text);
      report(r.testLoss < 0.5 * s0 && /batchnorm/.test(text) && /dropout/.test(text) ? "ok" : "FAIL", "batch norm, dropout, adam",
             r.error || `regression test loss ${s0.toFixed(4)} -> ${r.testLoss.toFixed(4)} in 100 epochs (lr ${r.lr.toExponential(2)} at the end)`);
      await exportCheck(page, "export with batch norm");
      await page.close();
    }

    /* 2. a 3-class CSV upload trains above 90% */
    if (want("csv3")) {
      const r = (() => { let a = 12345; return () => ((a = (a * 1103515245 + 12345) % 2147483648) / 2147483648); })();
      const rows = ["u,v,class"];
      const centres = [[-3, -2], [3, -2], [0, 3]];
      for (let i = 0; i < 300; i++) {
        const c = i % 3, g = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
        rows.push(`${(centres[c][0] + g()).toFixed(4)},${(centres[c][1] + g()).toFixed(4)},${c}`);
      }
      const f = path.join(tmp, "three.csv");
      fs.writeFileSync(f, rows.join("\n") + "\n");
      const page = await open("");
      await (await page.$("#csv")).uploadFile(f);
      await page.waitForFunction(() => window.playground.D.custom && window.playground.built && window.playground.built.text.includes("units=3"), { timeout: 20000 })
        .catch(async (e) => { throw new Error(`3-class upload: ${await page.$eval("#message", (m) => m.textContent)} (${e.message})`); });
      const msg = await page.$eval("#message", (e) => e.textContent);
      const s = await trainTo(page, 0.9, "acc");
      report(s.acc > 0.9 ? "ok" : "FAIL", "3-class CSV", `${msg}; test accuracy ${(100 * s.acc).toFixed(1)}% at epoch ${s.epoch}`);
      await page.close();
    }

    /* 2b. a CSV of 4 features and a real label: a regression trained without the plane */
    if (want("csv4")) {
      const rows = ["a,b,c,d,y"];
      let a = 7;
      const r = () => ((a = (a * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
      for (let i = 0; i < 200; i++) { const v = [r(), r(), r(), r()]; rows.push(`${v.map((x) => x.toFixed(4)).join(",")},${(0.5 * v[0] - v[1] + 0.3 * v[2] * v[3]).toFixed(4)}`); }
      const f = path.join(tmp, "four.csv");
      fs.writeFileSync(f, rows.join("\n") + "\n");
      const page = await open("");
      await (await page.$("#csv")).uploadFile(f);
      await page.waitForFunction(() => window.playground.D.custom && window.playground.built && window.playground.built.text.includes("shape=4"), { timeout: 20000 });
      const s0 = await page.evaluate(() => window.playground.last.testLoss);
      const s = await page.evaluate(async () => { const st = await window.playground.step(100); return { loss: st.testLoss, rmse: st.testRmse }; });
      const shown = await page.$eval("#testAcc", (e) => e.textContent);
      report(s.loss < 0.2 * s0 ? "ok" : "FAIL", "4-feature CSV regression", `test MSE ${s0.toFixed(4)} -> ${s.loss.toFixed(4)} in 100 epochs; test RMSE shown ${shown}`);
      await page.close();
    }

    /* 3. bad CSVs: a clear message, the previous data kept */
    if (want("badcsv")) {
      const page = await open("#dataset=xor");
      const bad = [["ragged.csv", "a,b,label\n1,2,0\n3,4\n5,6,1\n", "ragged.csv, line 3: 2 fields, but the header has 3"],
                   ["words.csv", "a,b,label\n1,2,0\n3,x,1\n5,6,1\n7,8,0\n", "words.csv, line 3, column 2 (b): 'x' is not a number"],
                   ["empty.csv", "", "empty.csv: no data rows"]];
      for (const [name, text, expect] of bad) {
        const f = path.join(tmp, name);
        fs.writeFileSync(f, text);
        const before = await page.evaluate(() => window.playground.D.title + ":" + window.playground.D.train.length);
        await (await page.$("#csv")).uploadFile(f);
        await page.waitForFunction((n) => $("message").textContent.includes(n), { timeout: 10000 }, name).catch(() => {});
        const msg = await page.$eval("#message", (e) => e.textContent);
        const after = await page.evaluate(() => window.playground.D.title + ":" + window.playground.D.train.length);
        report(msg.includes(expect) && before === after ? "ok" : "FAIL", `bad CSV ${name}`, `"${msg}"; data ${before === after ? "kept" : "CHANGED"}`);
      }
      await page.close();
    }

    /* 4. the same seed and steps: the WASM engine's loss against the native build's */
    if (want("native") && args.native && fs.existsSync(args.native)) {
      const page = await open("#dataset=spiral&features=x1,x2,sinx1,sinx2&layers=8,8&seed=3");
      const E = 20;
      const w = await page.evaluate(async (E) => {
        const p = window.playground, r = await p.rpc("step", { epochs: E });
        const f = p.built.feats, row = (pts) => { const X = p.featureMatrix(pts, f); return pts.map((q, i) => [...X.subarray(i * f.length, (i + 1) * f.length), q.label > 0 ? 1 : 0].join(" ")); };
        return { text: p.built.text, train: r.state.trainLoss, test: r.state.testLoss, epoch: r.state.epoch,
                 data: `${p.D.train.length} ${p.D.test.length} ${f.length} 1\n` + row(p.D.train).join("\n") + "\n" + row(p.D.test).join("\n") + "\n",
                 seed: p.S.seed, batch: p.S.batch };
      }, E);
      fs.writeFileSync(path.join(tmp, "n.model"), w.text);
      fs.writeFileSync(path.join(tmp, "n.txt"), w.data);
      const out = execFileSync(args.native, [path.join(tmp, "n.model"), path.join(tmp, "n.txt"), String(w.seed), String(w.batch), "0", String(E)]).toString().trim().split("\n");
      const [, ntrain, ntest] = out[out.length - 1].split(" ").map(Number);
      const rel = Math.max(Math.abs(ntrain - w.train) / Math.abs(ntrain), Math.abs(ntest - w.test) / Math.abs(ntest));
      report(rel <= 1e-5 ? "ok" : "FAIL", "WASM vs native loss",
             `${E} epochs (${w.epoch}): train ${w.train.toPrecision(9)} vs ${ntrain.toPrecision(9)}, test ${w.test.toPrecision(9)} vs ${ntest.toPrecision(9)}; relative difference ${rel.toExponential(2)} (limit 1e-5)`);
      await page.close();
    }

    /* 4b. the permalink's state builds the net it names; keys step and run */
    if (want("permalink")) {
      const page = await open("#dataset=xor&layers=3,5&activation=relu&optimizer=adam&lr=0.01&features=x1,x2,x1x2");
      const st = await page.evaluate(() => ({ text: window.playground.built.text, hash: window.playground.writeHash() }));
      const okText = /shape=3/.test(st.text) && /units=3 activation=relu/.test(st.text) && /units=5 activation=relu/.test(st.text) && /optimizer adam lr=0.01/.test(st.text);
      await page.keyboard.press("s");
      await page.waitForFunction(() => window.playground.last.epoch === 1, { timeout: 10000 }).catch(() => {});
      const e1 = await page.evaluate(() => window.playground.last.epoch);
      await page.keyboard.press(" ");
      await sleep(600);
      await page.keyboard.press(" ");
      await sleep(300);
      const e2 = await page.evaluate(() => window.playground.last.epoch);
      report(okText && /dataset=xor/.test(st.hash) && /layers=3%2C5/.test(st.hash) && e1 === 1 && e2 > 1 ? "ok" : "FAIL", "permalink and keys",
             `model from the URL ${okText ? "as named" : "WRONG"}; 's' -> epoch ${e1}; space, space -> epoch ${e2}`);
      await page.close();
    }

    /* 5. steps per second: 6 hidden layers of 8 on the spiral at batch 10 */
    if (want("speed")) {
      const page = await open("#dataset=spiral&features=x1,x2,x1sq,x2sq,x1x2,sinx1,sinx2&layers=8,8,8,8,8,8&batch=10");
      await page.evaluate(() => window.playground.togglePlay());
      await sleep(4000);
      const s = await page.evaluate(() => window.playground.last);
      await page.evaluate(() => window.playground.pause());
      report(s.stepsPerSecond >= 20 ? "ok" : "FAIL", "steps per second", `${Math.round(s.stepsPerSecond)} steps/s with 6x8 hidden, 7 features, batch 10, while drawing (at least 20)`);
      await page.close();
    }

    /* 6. screenshots at two sizes */
    if (args.shots && want("shots")) {
      for (const [file, vp] of [["playground.png", { width: 1280, height: 860 }], ["playground-phone.png", { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true }]]) {
        const page = await open("#dataset=spiral&features=x1,x2,sinx1,sinx2&layers=8,8&optimizer=adam&lr=0.01", vp);
        await trainTo(page, 0.05);
        await page.screenshot({ path: path.join(args.shots, file) });
        report("ok", "screenshot", path.join(args.shots, file));
        await page.close();
      }
    }

    report(consoleErrors.length ? "FAIL" : "ok", "no console errors", consoleErrors.length ? consoleErrors.slice(0, 3).join(" | ") : "none on any page");
  } finally {
    await browser.close();
    srv.close();
    if (!failed) fs.rmSync(tmp, { recursive: true, force: true });
    else console.log(`(files kept in ${tmp})`);
  }
}

const summary = () => console.log(`test-playground: ${passed} passed, ${failed} failed, ${skipped} skipped`);
main().then(() => { summary(); process.exit(failed ? 1 : 0); },
            (e) => { console.error(e); failed++; summary(); process.exit(1); });
