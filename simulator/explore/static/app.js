"use strict";
// The explorer page. Every number it shows comes from the simulator's library through the server's /api/*
// endpoints (the same calls as the CLI); this file only keeps the page's state, asks, and draws.

const $ = (id) => document.getElementById(id);

const DEFAULT = {
  model: "sd15", hardware: "a100", stack: "", fusion: "", attention: "flash", devices: "", parallel: "",
  set: {}, hw_set: {},
  roofline: false, disable: [], tab: "breakdown", stage: "",
  compare: {by: "devices", items: []}, sweep: {x: "memory.bandwidth", y: "", lo: 0.25, hi: 4, n: 25, log: true},
};
let state = structuredClone(DEFAULT);
let catalog = null;
let baseline = null;   // the answer without hardware overrides
let current = null;    // the answer with them (the same object when there are none)
let baseKey = null;
let fields = [];       // what-if slider definitions from the server
let lastCompare = null, lastSweep = null;
// for tests and bench/bench_explore.py: how many updates have been drawn and how long the last one took
window.explorer = {updates: 0, lastUpdateMs: null, busy: false, state: () => state};

// ------------------------------------------------------------------------------------------ requests

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body)});
  const text = await r.text();
  if (!r.ok) {
    let message;
    try { message = JSON.parse(text).error; } catch (e) { message = `error: the server answered ${r.status}`; }
    throw new Error(message);
  }
  return text;
}
const postJSON = async (path, body) => JSON.parse(await post(path, body));

function apiState(withOverrides = true) {
  return {model: state.model, hardware: state.hardware, stack: state.stack || null, fusion: state.fusion || null,
          attention: state.attention, devices: state.devices || null, parallel: state.parallel || null,
          set: state.set, hw_set: withOverrides ? state.hw_set : {},
          roofline: state.roofline, disable: state.disable};
}

function showError(message) {
  const e = $("error");
  e.textContent = message || "";
  e.hidden = !message;
}

// ------------------------------------------------------------------------------------------ formatting

const PREFIXES = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""], [1e-3, "m"],
                  [1e-6, "µ"], [1e-9, "n"]];
function si(v, unit = "") {
  if (v === 0) return `0 ${unit}`.trim();
  for (const [f, p] of PREFIXES) if (Math.abs(v) >= f) return `${(v / f).toPrecision(4)} ${p}${unit}`.trim();
  return `${v.toPrecision(4)} ${unit}`.trim();
}
const gib = (v) => `${(v / 2 ** 30).toFixed(2)} GiB`;
const yes = (v) => (v ? "yes" : "no");

const TOTALS = [  // label, key, format, lower is better
  ["time per inference", "time_s", (v) => si(v, "s"), true],
  ["device time", "device_time_s", (v) => si(v, "s"), true],
  ["host time beyond the device", "host_s", (v) => si(v, "s"), true],
  ["bare roofline time", "roofline_time_s", (v) => si(v, "s"), true],
  ["FLOPs", "flops", (v) => si(v, "FLOP"), null],
  ["bytes moved", "bytes", (v) => si(v, "B"), null],
  ["weights", "weight_bytes", gib, null],
  ["peak memory", "peak_memory_bytes", gib, null],
  ["memory capacity", "memory_capacity_bytes", gib, false],
  ["fits", "fits", yes, null],
  ["energy per inference", "energy_j", (v) => si(v, "J"), true],   // where the device file has a power model
  ["average power", "avg_power_w", (v) => si(v, "W"), null],
];

// ------------------------------------------------------------------------------------------ permalink

function writeHash() {
  history.replaceState(null, "", "#" + encodeURIComponent(JSON.stringify(state)));
}
function readHash() {
  if (location.hash.length < 2) return;
  try {
    const saved = JSON.parse(decodeURIComponent(location.hash.slice(1)));
    state = {...structuredClone(DEFAULT), ...saved,
             compare: {...DEFAULT.compare, ...(saved.compare || {})}, sweep: {...DEFAULT.sweep, ...(saved.sweep || {})}};
  } catch (e) {
    showError("error: the link's state could not be read; showing the defaults");
  }
}

// ------------------------------------------------------------------------------------------ updates

let inflight = false, pending = false, startedAt = null;

// One request at a time; changes made meanwhile are folded into the next one, so a dragged slider never
// queues a backlog and the page always ends on the latest state.
function update() {
  writeHash();
  if (startedAt === null) startedAt = performance.now();
  if (inflight) { pending = true; return; }
  inflight = true;
  window.explorer.busy = true;
  const t0 = startedAt;
  startedAt = null;
  refresh().finally(() => {
    inflight = false;
    window.explorer.lastUpdateMs = performance.now() - t0;
    window.explorer.updates += 1;
    if (pending) { pending = false; update(); } else { window.explorer.busy = false; }
  });
}

const VIEWS = {breakdown: ["groups"], roofline: ["roofline"], attention: ["attention"], compare: [], sweep: []};

async function refresh() {
  try {
    const key = JSON.stringify(apiState(false));
    if (key !== baseKey) {
      baseline = await postJSON("/api/run", {state: apiState(false)});
      baseKey = key;
      buildSliders(baseline.whatif);
    }
    // the what-if asks only for what the open tab draws: a slider's answer comes back sooner
    const t0 = performance.now();
    current = Object.keys(state.hw_set).length ?
      await postJSON("/api/run", {state: apiState(), views: VIEWS[state.tab]}) : baseline;
    const t1 = performance.now();
    showError("");
    await render();
    window.explorer.timing = {request_ms: t1 - t0, draw_ms: performance.now() - t1};
  } catch (e) {
    showError(e.message);
  }
}

// ------------------------------------------------------------------------------------------ controls

function fillSelect(select, items, label) {
  for (const item of items) {
    const o = document.createElement("option");
    o.value = item.id;
    o.textContent = label(item);
    select.appendChild(o);
  }
}

async function loadParams() {
  const box = $("params");
  box.textContent = "";
  let params;
  try {
    params = (await postJSON("/api/params", {model: state.model})).params;
  } catch (e) {
    showError(e.message);
    return;
  }
  let group = "workload";
  for (const p of params) {
    if (p.group !== group) {  // the options every model takes: quantisation, memory saving
      group = p.group;
      box.appendChild(Object.assign(document.createElement("div"), {className: "param-group", textContent: group}));
    }
    const row = document.createElement("label");
    row.className = "param";
    row.title = `${p.help} (${p.allowed})`;
    row.append(p.name);
    let input;
    // a default of null: the model's dtype (quantisation options), shown as an empty choice
    const fallback = p.default === null ? "" : String(p.default);
    const now = p.name in state.set ? state.set[p.name] : fallback;
    if (p.type === "bool") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = now === "true" || now === "1";
    } else if (p.choices) {
      input = document.createElement("select");
      if (p.default === null) input.add(new Option("model's dtype", ""));
      for (const c of p.choices) input.add(new Option(String(c), String(c)));
      input.value = now;
    } else {
      input = document.createElement("input");
      input.type = "number";
      if (p.min !== null) input.min = p.min;
      if (p.max !== null) input.max = p.max;
      input.step = p.type === "int" ? "1" : "any";
      input.value = now;
    }
    input.id = "param-" + p.name;
    input.addEventListener("change", () => {
      const v = p.type === "bool" ? String(input.checked) : input.value.trim();
      if (v === fallback || v === "") delete state.set[p.name]; else state.set[p.name] = v;
      update();
    });
    row.appendChild(input);
    box.appendChild(row);
  }
}

// slider position 0..1000 <-> field value (log or linear between the field's min and max)
const toPos = (f, v) => Math.round(1000 * (f.log ? Math.log(v / f.min) / Math.log(f.max / f.min)
                                                  : (v - f.min) / (f.max - f.min)));
function toValue(f, pos) {
  const v = f.log ? f.min * (f.max / f.min) ** (pos / 1000) : f.min + (f.max - f.min) * pos / 1000;
  return f.integer ? Math.max(1, Math.round(v)) : Number(v.toPrecision(4));
}

function buildSliders(list) {
  fields = list;
  const paths = new Set(list.map((f) => f.path));
  for (const p of Object.keys(state.hw_set)) if (!paths.has(p)) delete state.hw_set[p];
  $("sliders").textContent = "";
  $("sliders-more").textContent = "";
  for (const f of list) {
    const div = document.createElement("div");
    div.className = "slider";
    div.dataset.path = f.path;
    const name = document.createElement("div");
    name.className = "name";
    const label = document.createElement("span");
    label.textContent = f.label;
    label.title = f.path;
    const value = document.createElement("span");
    value.className = "value";
    name.append(label, value);
    const input = document.createElement("input");
    input.type = "range";
    input.min = 0;
    input.max = 1000;
    input.id = "slider-" + f.path;
    const show = () => {
      const v = f.path in state.hw_set ? Number(state.hw_set[f.path]) : f.value;
      value.textContent = f.unit === "B" ? gib(v) : f.unit ? si(v, f.unit) : String(Number(v.toPrecision(4)));
      div.classList.toggle("moved", f.path in state.hw_set);
    };
    input.value = toPos(f, f.path in state.hw_set ? Number(state.hw_set[f.path]) : f.value);
    input.addEventListener("input", () => {
      const v = toValue(f, Number(input.value));
      if (v === f.value) delete state.hw_set[f.path]; else state.hw_set[f.path] = String(v);
      show();
      update();
    });
    show();
    div.append(name, input);
    (f.main ? $("sliders") : $("sliders-more")).appendChild(div);
  }
  for (const id of ["sweep-x", "sweep-y"]) {
    const sel = $(id);
    const keep = id === "sweep-x" ? state.sweep.x : state.sweep.y;
    while (sel.options.length > (id === "sweep-y" ? 1 : 0)) sel.remove(sel.options.length - 1);
    for (const f of list) sel.add(new Option(f.label, f.path));
    sel.value = paths.has(keep) ? keep : (id === "sweep-x" ? list[0].path : "");
  }
}

async function upload(kind, input) {
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  if (file.size > catalog.limits.upload_bytes) {
    showError(`error: ${file.name}: larger than the upload limit of ${catalog.limits.upload_bytes / 1024} KiB`);
    return;
  }
  try {
    const added = await postJSON("/api/upload", {kind, name: file.name, text: await file.text()});
    const select = $(kind === "model" ? "model" : "hardware");
    select.add(new Option(`${added.name} (${added.file})`, added.id));
    select.value = added.id;
    select.dispatchEvent(new Event("change"));
  } catch (e) {
    showError(e.message);
  }
}

// ------------------------------------------------------------------------------------------ drawing

const LAYOUT = {margin: {l: 72, r: 20, t: 48, b: 56}, font: {size: 12, family: "system-ui, sans-serif"},
                legend: {orientation: "h", x: 1, xanchor: "right", y: 1.0, yanchor: "bottom"},
                hoverlabel: {align: "left"}};
// no plotly mode bar: it covers titles and legends, and the page has its own PNG/SVG export (drag zooms,
// a double click resets)
const CONFIG = {displaylogo: false, displayModeBar: false, responsive: true};
const whatif = () => current !== baseline;
const heading = (text) => ({text, x: 0.01, xanchor: "left", y: 0.98, yanchor: "top", font: {size: 14}});
// an axis with its title (plotly.js 3 takes only the {text} form). The margins are fixed, not `automargin`:
// that lays a chart out twice on every redraw, and a slider redraws three charts
const axis = (text, extra = {}) => ({title: {text, standoff: 8}, ...extra});

// times are drawn in the unit that suits the largest of them (the axis title says which)
function timeUnit(max) {
  return max >= 1 ? {f: 1, unit: "s"} : max >= 1e-3 ? {f: 1e3, unit: "ms"} : {f: 1e6, unit: "µs"};
}
const maxOf = (values) => values.reduce((m, v) => Math.max(m, v || 0), 0);
// 3 significant digits and an SI prefix: tick labels
function siShort(v, unit = "") {
  for (const [f, p] of PREFIXES) if (Math.abs(v) >= f) return `${Number((v / f).toPrecision(3))} ${p}${unit}`.trim();
  return `${Number(v.toPrecision(3))} ${unit}`.trim();
}
// ticks of a log axis over a narrow range (a sweep's ×0.25..×4): every label in full, not plotly's bare "2", "5"
function logTicks(lo, hi, unit, n = 6) {
  const at = (i) => Number((lo * (hi / lo) ** (i / (n - 1))).toPrecision(2));
  const vals = [...new Set(Array.from({length: n}, (_, i) => at(i)))];
  return {tickvals: vals, ticktext: vals.map((v) => siShort(v, unit))};
}
// a layer's name on a crowded axis: the full name is in the hover
const clip = (text, n = 16) => (text.length > n ? text.slice(0, n - 1) + "…" : text);

function hoverData(rows) {
  return rows.map((r) => [si(r.flops, "FLOP"), si(r.bytes, "B"), r.intensity.toFixed(1), r.bound,
                          si(r.time_s, "s")]);
}
const HOVER = "%{x}<br>time %{customdata[4]}<br>FLOPs %{customdata[0]}<br>bytes %{customdata[1]}" +
              "<br>intensity %{customdata[2]} FLOP/B<br>bound %{customdata[3]}<extra>%{fullData.name}</extra>";
// a stage's time is its device time, the host's time beyond it, weights copied over the host link and CPU time
const STAGE_HOVER = HOVER.replace("<extra>", "<br>device %{customdata[5]}, host beyond it %{customdata[6]}" +
                                  "<br>host-link copies %{customdata[7]}, host CPU %{customdata[8]}<extra>");

function bars(rows, name, color, tu, label = (r) => r.name) {
  return {type: "bar", name, x: rows.map(label), y: rows.map((r) => r.time_s * tu.f), marker: {color},
          customdata: hoverData(rows), hovertemplate: HOVER};
}

// the baseline beside the what-if where a slider has moved, else the one answer
function sideBySide(key, tu) {
  const answers = whatif() ? [["baseline", baseline, "#9ca3af"], ["what-if", current, "#2563eb"]]
                           : [["time", current, "#2563eb"]];
  return answers.map(([name, answer, color]) => {
    const rows = answer.groups[key];
    const trace = bars(rows, name, color, tu);
    if (key === "stages") {
      trace.customdata = trace.customdata.map((c, i) => [...c, ...["device_time_s", "host_s", "transfer_s", "cpu_s"]
        .map((k) => si(rows[i][k] || 0, "s"))]);
      trace.hovertemplate = STAGE_HOVER;
    }
    return trace;
  });
}
const groupTimes = (key) => [current, ...(whatif() ? [baseline] : [])]
  .flatMap((a) => a.groups[key].map((r) => r.time_s));

function drawTotals() {
  const a = baseline.summary.totals, b = current.summary.totals;
  const body = document.querySelector("#totals tbody");
  body.textContent = "";
  for (const [label, key, fmt0, lower] of TOTALS) {
    if (a[key] === undefined && b[key] === undefined) continue;
    const fmt = (v) => (v === null || v === undefined ? "n/a" : fmt0(v));
    const tr = document.createElement("tr");
    let change = "", cls = "";
    if (typeof a[key] === "number" && typeof b[key] === "number" && a[key] !== 0 && a[key] !== b[key]) {
      const pct = 100 * (b[key] / a[key] - 1);
      change = `${pct > 0 ? "+" : ""}${pct.toFixed(1)} %`;
      if (lower !== null) cls = (pct < 0) === lower ? "better" : "worse";
    } else if (a[key] !== b[key]) {
      change = `${fmt(a[key])} → ${fmt(b[key])}`;
    }
    for (const [text, id, c] of [[label, "", ""], [fmt(a[key]), "base-" + key, ""], [fmt(b[key]), "now-" + key, ""],
                                 [change, "delta-" + key, cls]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (id) td.id = id;
      if (c) td.className = c;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const r = current.summary;
  const err = r.totals.expected_error;
  $("trust").textContent = `${r.model_name} on ${r.hardware_name}, stack ${r.stack}, fusion ${r.fusion}, ` +
    `${r.attention} attention; ${r.efficiency}` +
    (err ? `. Expected error against published runs: median ±${err.median_abs_pct} % (${err.scope}, ` +
           `${err.cases} cases)` : "") + (r.warnings.length ? `. Warning: ${r.warnings.join("; ")}` : "");
  $("cli").textContent = current.cli;
}

function drawBreakdown() {
  const two = whatif();
  const st = timeUnit(maxOf(groupTimes("stages"))), ct = timeUnit(maxOf(groupTimes("categories")));
  const stages = Plotly.react("chart-stages", sideBySide("stages", st),
    {...LAYOUT, showlegend: two, barmode: "group", title: heading("time per inference by stage"),
     xaxis: axis("stage"), yaxis: axis(`time per inference [${st.unit}]`)}, CONFIG);
  const cats = Plotly.react("chart-categories", sideBySide("categories", ct),
    {...LAYOUT, showlegend: two, barmode: "group", title: heading("device time by operator category"),
     xaxis: axis("operator category"), yaxis: axis(`device time per inference [${ct.unit}]`)}, CONFIG);
  const rows = current.groups.layers.filter((r) => !state.stage || r.stage === state.stage);
  const key = (r) => `${r.stage}/${r.layer}`;
  const lt = timeUnit(maxOf(rows.map((r) => r.time_s)));
  const traces = Object.keys(BOUND_COLORS).map((bound) =>
    bars(rows.filter((r) => r.bound === bound), bound, BOUND_COLORS[bound], lt, key)).filter((t) => t.x.length);
  $("all-stages").hidden = !state.stage;
  const order = rows.map(key);
  // each stage's layers under its name, a dotted line between stages: the tick labels need not repeat it
  const shapes = [], annotations = [];
  for (const stage of new Set(rows.map((r) => r.stage))) {
    const first = rows.findIndex((r) => r.stage === stage);
    const last = rows.length - 1 - [...rows].reverse().findIndex((r) => r.stage === stage);
    if (first > 0) shapes.push({type: "line", x0: first - 0.5, x1: first - 0.5, yref: "paper", y0: 0, y1: 1,
                                line: {color: "#9ca3af", dash: "dot", width: 1}});
    annotations.push({x: (first + last) / 2, y: 1, yref: "paper", yanchor: "bottom", showarrow: false,
                      text: clip(stage, Math.max(8, 3 * (last - first + 1))), font: {size: 11, color: "#374151"}});
  }
  const many = rows.length > 40;
  const layers = Plotly.react("chart-layers", traces,
    {...LAYOUT, barmode: "stack", margin: {...LAYOUT.margin, t: 64, b: many ? 120 : 90},
     title: heading(`device time per inference by layer${state.stage ? " of " + state.stage : ""}` +
                    `${whatif() ? " (what-if)" : ""}, coloured by what bounds it`),
     legend: {...LAYOUT.legend, y: 1.08, title: {text: "bound "}},
     yaxis: axis(`device time per inference [${lt.unit}]`),
     xaxis: axis("layer (top-level block), in execution order", {categoryorder: "array", categoryarray: order,
       tickmode: "array", tickvals: order, ticktext: rows.map((r) => clip(r.layer)), tickangle: many ? -60 : -30,
       tickfont: {size: many ? 9 : 11}}),
     shapes, annotations}, CONFIG);
  return Promise.all([stages, cats, layers]).then(() => {
    const gd = $("chart-stages");
    if (!gd.dataset.clicks) {  // clicking a stage bar filters the layer view; clicking it again shows all
      gd.dataset.clicks = "1";
      gd.on("plotly_click", (ev) => {
        const stage = ev.points[0].x;
        state.stage = state.stage === stage ? "" : stage;
        writeHash();
        drawBreakdown();
      });
    }
  });
}
const BOUND_COLORS = {compute: "#dc2626", memory: "#2563eb", overhead: "#d97706", comm: "#059669", none: "#9ca3af"};
const CATEGORY_COLORS = {conv: "#7c3aed", linear: "#2563eb", attention: "#db2777", norm: "#059669",
                         elementwise: "#d97706", other: "#6b7280"};

function roofTrace(rf, name, dash, color) {
  const xs = [];
  for (let e = -2; e <= 5; e += 0.05) xs.push(10 ** e);
  xs.push(rf.ridge);
  xs.sort((p, q) => p - q);
  return {type: "scatter", mode: "lines", name, x: xs, y: xs.map((x) => Math.min(rf.peak_flops, x * rf.bandwidth)),
          line: {color, dash, width: 1.5}, hoverinfo: "skip"};
}

function drawRoofline() {
  const rf = current.roofline;
  const total = current.summary.totals.device_time_s || 1;
  const cats = [...new Set(rf.points.map((p) => p.category))];
  const perDevice = rf.devices > 1 ? `, per device (${rf.devices} devices, ${rf.plan})` : "";
  const roofs = {legendgroup: "roofs", legendgrouptitle: {text: "roofs"}};
  const traces = [{...roofTrace(rf, `peak (${rf.dtype})`, "solid", "#111"), ...roofs}];
  const achievable = {...rf, peak_flops: rf.achievable_flops, bandwidth: rf.achievable_bandwidth,
                      ridge: rf.achievable_flops / rf.achievable_bandwidth};
  traces.push({...roofTrace(achievable, "achievable (measured fractions)", "dash", "#111"), ...roofs});
  if (whatif()) traces.push({...roofTrace(baseline.roofline, "baseline peak", "dot", "#9ca3af"), ...roofs});
  for (const c of cats) {
    const pts = rf.points.filter((p) => p.category === c);
    traces.push({type: "scattergl", mode: "markers", name: c, x: pts.map((p) => p.intensity),
                 legendgroup: "kernels", legendgrouptitle: {text: "kernels by category"},
                 y: pts.map((p) => p.flops_per_s),
                 marker: {size: pts.map((p) => 4 + 36 * Math.sqrt(p.time_s / total)), opacity: 0.7,
                          color: CATEGORY_COLORS[c] || "#111", line: {width: 0.5, color: "#fff"}},
                 customdata: pts.map((p) => [p.stage, p.op, si(p.time_s, "s"), si(p.flops, "FLOP"), si(p.bytes, "B"),
                                             p.intensity.toFixed(1)]),
                 hovertemplate: "%{customdata[0]} %{customdata[1]}<br>time (all runs) %{customdata[2]}" +
                   "<br>FLOPs %{customdata[3]}, bytes %{customdata[4]} per run<br>intensity %{customdata[5]} FLOP/B" +
                   "<br>attained %{y:.4s}FLOP/s<extra>%{fullData.name}</extra>"});
  }
  const unplaced = rf.unplaced && rf.unplaced.kernels ?
    `; ${rf.unplaced.kernels} kernels moving no DRAM bytes of their own (fused, ${si(rf.unplaced.time_s, "s")}) ` +
    "have no intensity to place them by and are not drawn" : "";
  $("roofline-caption").textContent = `ridge point ${rf.ridge.toFixed(1)} FLOP/B: peak ${si(rf.peak_flops, "FLOP/s")} ` +
    `(${rf.dtype}) over bandwidth ${si(rf.bandwidth, "B/s")}${perDevice}; one dot per kernel, its area by its ` +
    `share of the device time, its colour by operator category${unplaced}`;
  return Plotly.react("chart-roofline", traces, {
    ...LAYOUT, legend: {orientation: "v", x: 1.02, xanchor: "left", y: 1, yanchor: "top"},
    title: heading(`roofline: ${current.summary.model_name} on ${current.summary.hardware_name}${perDevice}`),
    xaxis: axis("arithmetic intensity [FLOP/B]", {type: "log", dtick: 1, exponentformat: "SI"}),
    yaxis: axis("attained performance [FLOP/s]", {type: "log", dtick: 1, exponentformat: "SI",
                range: [Math.log10(rf.peak_flops) - 5, Math.log10(rf.peak_flops) + 0.4]}),
    shapes: [{type: "line", x0: rf.ridge, x1: rf.ridge, yref: "paper", y0: 0, y1: 1,
              line: {color: "#6b7280", dash: "dot", width: 1}}],
    annotations: [{x: Math.log10(rf.ridge), y: 1, yref: "paper", text: `ridge ${rf.ridge.toFixed(0)} FLOP/B`,
                   showarrow: false, yanchor: "bottom", font: {size: 10}}],
  }, CONFIG);
}

function drawAttention() {
  const at = current.attention;
  const roles = [...new Set(at.layers.map((l) => l.role || "self"))];
  const traces = roles.map((role) => {
    const idx = [], rows = [];
    at.layers.forEach((l, i) => { if ((l.role || "self") === role) { idx.push(i + 1); rows.push(l); } });
    return {type: "bar", name: role, x: idx, y: rows.map((l) => l.q_len),
            customdata: rows.map((l) => [l.stage, l.name, l.kv_len, si(l.time_s, "s"), l.batch, l.count]),
            hovertemplate: "%{customdata[0]} %{customdata[1]} (× %{customdata[5]})<br>query length %{y}, " +
                           "key length %{customdata[2]}<br>batch %{customdata[4]}<br>time (all runs) %{customdata[3]}" +
                           "<extra>%{fullData.name}</extra>"};
  });
  const seq = Plotly.react("chart-seqlen", traces, {...LAYOUT, barmode: "overlay", showlegend: roles.length > 1,
    legend: {...LAYOUT.legend, title: {text: "role "}},
    title: heading(`sequence length of each attention layer, in execution order (${at.layers.length} layers)`),
    xaxis: axis("attention layer, in execution order"),
    yaxis: axis("query length [tokens]", {type: "log", dtick: 1, exponentformat: "SI"})}, CONFIG);
  const names = Object.keys(at.roles);
  const tu = timeUnit(maxOf(names.map((n) => at.roles[n].time_s)));
  const split = Plotly.react("chart-roles", [{type: "bar", x: names, y: names.map((n) => at.roles[n].time_s * tu.f),
    customdata: names.map((n) => [si(at.roles[n].flops, "FLOP"), si(at.roles[n].time_s, "s")]),
    hovertemplate: "%{x}: %{customdata[1]}, %{customdata[0]}<extra></extra>", marker: {color: "#7c3aed"}}],
    {...LAYOUT, showlegend: false,
     title: heading("attention time per inference by role (spatial, temporal, cross, self)"),
     xaxis: axis("attention role"), yaxis: axis(`time per inference [${tu.unit}]`)}, CONFIG);
  return Promise.all([seq, split]);
}

function compareChoices() {
  const box = $("compare-choices");
  box.textContent = "";
  const items = state.compare.by === "devices" ? catalog.hardware : catalog.models;
  for (const item of items) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = item.id;
    input.checked = state.compare.items.includes(item.id);
    input.addEventListener("change", () => {
      state.compare.items = [...box.querySelectorAll("input:checked")].map((i) => i.value);
      writeHash();
    });
    label.append(input, " " + item.id);
    box.appendChild(label);
  }
}

async function runCompare() {
  try {
    const by = state.compare.by;
    lastCompare = await postJSON("/api/compare", {state: apiState(), [by]: state.compare.items});
    showError("");
    drawCompare();
  } catch (e) {
    showError(e.message);
  }
}

function drawCompare() {
  if (!lastCompare) return Promise.resolve();
  const items = lastCompare.items;
  const stages = [...new Set(items.flatMap((it) => it.stages.map((s) => s.name)))];
  const tu = timeUnit(maxOf(items.map((it) => it.time_s)));
  const traces = stages.map((name) => ({type: "bar", name, x: items.map((it) => it.label),
    y: items.map((it) => (it.stages.find((s) => s.name === name) || {time_s: 0}).time_s * tu.f),
    hovertemplate: `%{x}: ${name} %{y:.4g} ${tu.unit}<extra></extra>`}));
  const table = $("compare-table");
  table.textContent = "";
  const head = table.insertRow();
  for (const h of ["", "time", "speed-up vs first", "bare roofline", "peak memory", "fits"]) {
    head.appendChild(Object.assign(document.createElement("th"), {textContent: h}));
  }
  for (const it of items) {
    const row = table.insertRow();
    for (const text of [it.label, si(it.time_s, "s"), `${it.speedup.toFixed(2)}×`, si(it.roofline_time_s, "s"),
                        gib(it.peak_memory_bytes), yes(it.fits)]) row.insertCell().textContent = text;
  }
  const what = lastCompare.by === "devices" ? "device" : "model";
  return Plotly.react("chart-compare", traces, {...LAYOUT, barmode: "stack", showlegend: stages.length > 1,
    legend: {...LAYOUT.legend, title: {text: "stage "}},
    title: heading(`time per inference by stage, ${lastCompare.by} compared`), xaxis: axis(what),
    yaxis: axis(`time per inference [${tu.unit}]`)}, CONFIG);
}

async function runSweep() {
  const sw = state.sweep;
  const vary = [sw.x, sw.y].filter(Boolean).map((path) => {
    const f = fields.find((g) => g.path === path);
    let lo = f.value * sw.lo, hi = f.value * sw.hi;
    if (!f.log) { lo = Math.max(lo, f.min); hi = Math.min(hi, f.max); }
    if (f.integer) { lo = Math.max(1, Math.round(lo)); hi = Math.max(lo, Math.round(hi)); }
    return `${path}=${lo}:${hi}:${sw.n}${sw.log ? ":log" : ""}`;
  });
  try {
    lastSweep = await postJSON("/api/sweep", {state: apiState(), vary});
    showError("");
    drawSweep();
  } catch (e) {
    showError(e.message);
  }
}

function drawSweep() {
  if (!lastSweep) return Promise.resolve();
  const s = lastSweep, cols = s.columns;
  $("sweep-cli").textContent = s.cli;
  const field = (p) => fields.find((f) => f.path === p) || {label: p, unit: ""};
  const fieldAxis = (p) => {
    const f = field(p), values = cols[p];
    const title = `${f.label} [${f.unit || "–"}]`;
    if (!state.sweep.log) return axis(title, {exponentformat: "SI"});
    return axis(title, {type: "log", tickmode: "array", ...logTicks(Math.min(...values), Math.max(...values), f.unit)});
  };
  const tu = timeUnit(maxOf(cols.time_s));
  const times = cols.time_s.map((t) => t * tu.f);
  const what = `time per inference of ${current.summary.model} on ${current.summary.hardware_name}`;
  if (s.varied.length === 1) {
    const x = s.varied[0];
    return Plotly.react("chart-sweep", [{type: "scatter", mode: "lines+markers", name: current.summary.model,
      x: cols[x], y: times, hovertemplate: `%{x:.4s}: %{y:.4g} ${tu.unit}<extra></extra>`}],
      {...LAYOUT, showlegend: false, title: heading(`${what} over ${s.points} design points`), xaxis: fieldAxis(x),
       yaxis: axis(`time per inference [${tu.unit}]`, {type: "log", tickmode: "array",
                                                      ...logTicks(Math.min(...times), Math.max(...times), "")})},
      CONFIG);
  }
  const [xp, yp] = s.varied;
  const xs = [...new Set(cols[xp])].sort((a, b) => a - b), ys = [...new Set(cols[yp])].sort((a, b) => a - b);
  const z = ys.map(() => xs.map(() => null));
  times.forEach((t, i) => { z[ys.indexOf(cols[yp][i])][xs.indexOf(cols[xp][i])] = t; });
  return Plotly.react("chart-sweep", [{type: "heatmap", x: xs, y: ys, z, colorscale: "Viridis",
    colorbar: {title: {text: `time per<br>inference [${tu.unit}]`}},
    hovertemplate: `%{x:.4s}, %{y:.4s}: %{z:.4g} ${tu.unit}<extra></extra>`}],
    {...LAYOUT, margin: {...LAYOUT.margin, l: 130},  // room for the y field's labels ("1.25 PFLOP/s")
     title: heading(`${what} over ${s.points} design points`), xaxis: fieldAxis(xp), yaxis: fieldAxis(yp)},
    CONFIG);
}

const DRAW = {breakdown: drawBreakdown, roofline: drawRoofline, attention: drawAttention, compare: drawCompare,
              sweep: drawSweep};
const PRIMARY = {breakdown: "chart-layers", roofline: "chart-roofline", attention: "chart-seqlen",
                 compare: "chart-compare", sweep: "chart-sweep"};

async function render() {
  if (!current) return;
  drawTotals();
  await DRAW[state.tab]();
}

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== "tab-" + tab;
  writeHash();
  if (current && !VIEWS[tab].every((v) => v in current)) update();  // the what-if lacks this tab's data
  else if (current) DRAW[tab]();
}

// ------------------------------------------------------------------------------------------ export

function download(name, text, type) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], {type}));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
const fileStem = () => `${current.summary.model}-${current.summary.hardware.replace("*", "-whatif")}`;

async function exportData(format) {
  try {  // exactly what `run --format json|csv --by layer` prints
    download(`${fileStem()}.${format}`, await post("/api/export", {state: apiState(), format, by: "layer"}),
             format === "json" ? "application/json" : "text/csv");
  } catch (e) {
    showError(e.message);
  }
}

// ------------------------------------------------------------------------------------------ start

async function init() {
  catalog = await (await fetch("/api/catalog")).json();
  readHash();
  fillSelect($("model"), catalog.models, (m) => `${m.id}: ${m.name}`);
  fillSelect($("hardware"), catalog.hardware, (h) => `${h.id}: ${h.name}`);
  fillSelect($("stack"), catalog.stacks, (s) => `${s.id}: ${s.name}`);
  fillSelect($("fusion"), catalog.fusion.map((id) => ({id})), (f) => f.id);
  fillSelect($("attention"), catalog.attention.map((id) => ({id})), (a) => a.id);
  for (const t of catalog.terms) {
    const label = document.createElement("label");
    const box = Object.assign(document.createElement("input"), {type: "checkbox", value: t,
                                                               checked: !state.disable.includes(t)});
    box.addEventListener("change", () => {
      state.disable = catalog.terms.filter((n) => !$("terms").querySelector(`input[value=${n}]`).checked);
      update();
    });
    label.append(box, ` ${t}`);
    $("terms").appendChild(label);
  }
  for (const [id, key] of [["model", "model"], ["hardware", "hardware"], ["stack", "stack"], ["fusion", "fusion"],
                           ["attention", "attention"]]) {
    const sel = $(id);
    if (![...sel.options].some((o) => o.value === state[key])) state[key] = DEFAULT[key];
    sel.value = state[key];
    sel.addEventListener("change", async () => {
      state[key] = sel.value;
      if (key === "model") { state.set = {}; state.stage = ""; await loadParams(); }
      if (key === "hardware") state.hw_set = {};
      update();
    });
  }
  for (const id of ["devices", "parallel"]) {
    $(id).value = state[id];
    $(id).addEventListener("change", () => { state[id] = $(id).value.trim(); update(); });
  }
  $("roofline").checked = state.roofline;
  $("roofline").addEventListener("change", () => { state.roofline = $("roofline").checked; update(); });
  $("model-file").addEventListener("change", () => upload("model", $("model-file")));
  $("hardware-file").addEventListener("change", () => upload("hardware", $("hardware-file")));
  $("reset").addEventListener("click", () => { state.hw_set = {}; buildSliders(fields); update(); });
  $("all-stages").addEventListener("click", () => { state.stage = ""; writeHash(); drawBreakdown(); });
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("copy-link").addEventListener("click", async () => {
    writeHash();
    try { await navigator.clipboard.writeText(location.href); $("copy-link").textContent = "copied"; }
    catch (e) { window.prompt("link to this view", location.href); }
    setTimeout(() => { $("copy-link").textContent = "copy link"; }, 1500);
  });
  for (const fmt of ["png", "svg"]) {
    $("export-" + fmt).addEventListener("click", () =>
      Plotly.downloadImage(PRIMARY[state.tab], {format: fmt, filename: `${fileStem()}-${state.tab}`,
                                                width: 1200, height: 600}));
  }
  $("export-csv").addEventListener("click", () => exportData("csv"));
  $("export-json").addEventListener("click", () => exportData("json"));
  for (const r of document.querySelectorAll("input[name=compare-by]")) {
    r.checked = r.value === state.compare.by;
    r.addEventListener("change", () => { state.compare = {by: r.value, items: []}; compareChoices(); writeHash(); });
  }
  compareChoices();
  $("compare-run").addEventListener("click", runCompare);
  const sw = state.sweep;
  for (const [id, key, read] of [["sweep-lo", "lo", Number], ["sweep-hi", "hi", Number], ["sweep-n", "n", Number]]) {
    $(id).value = sw[key];
    $(id).addEventListener("change", () => { sw[key] = read($(id).value); writeHash(); });
  }
  $("sweep-log").checked = sw.log;
  $("sweep-log").addEventListener("change", () => { sw.log = $("sweep-log").checked; writeHash(); });
  for (const [id, key] of [["sweep-x", "x"], ["sweep-y", "y"]]) {
    $(id).addEventListener("change", () => { sw[key] = $(id).value; writeHash(); });
  }
  $("sweep-run").addEventListener("click", runSweep);
  await loadParams();
  showTab(state.tab);
  update();
}

init();
