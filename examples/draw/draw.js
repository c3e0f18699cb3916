// examples/draw.py's page: draw on the pad, ask POST /predict at most ten times a second, show the answer.
"use strict";

const INTERVAL_MS = 100;  // at most ten requests a second while drawing
const SENT_SIDE = 112;    // the pad is sent scaled down to 112x112 grey pixels: plenty for a 28x28 input
const PEN_WIDTH = 20;     // pixels of the 280x280 pad: about MNIST's stroke once scaled to 20x20

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const statusLine = document.getElementById("status");
const bars = document.getElementById("bars");
const layersBox = document.getElementById("layers");
const inputCanvas = document.getElementById("input");
const weightsCanvas = document.getElementById("weights");
const unitText = document.getElementById("unit-text");

let model = null;        // GET /model: the layers and their grids
let grids = [];          // one {canvas, layer, index} per hidden layer drawn (index: its place in model.layers)
let lastAnswer = null;   // the latest POST /predict answer that was shown
let selectedUnit = null; // the first-layer unit (or first convolution's filter) whose weights are shown
let weightsShown = null;  // GET /weights/<unit>: that unit's weights
let drawing = false, last = null;
let dirty = false, inFlight = false, timer = null, lastSent = -Infinity;
let generation = 0;      // bumped by Clear: answers to older drawings are dropped

// --- the drawing pad: pointer events serve mouse, pen and touch alike ---------
function clearPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

// A line from the last point to this one; the first point of a stroke is a dot.
function strokeTo(point) {
  ink.beginPath();
  if (last === null) {
    ink.fillStyle = "#000";
    ink.arc(point[0], point[1], PEN_WIDTH / 2, 0, 2 * Math.PI);
    ink.fill();
  } else {
    ink.lineCap = ink.lineJoin = "round";
    ink.lineWidth = PEN_WIDTH;
    ink.strokeStyle = "#000";
    ink.moveTo(...last);
    ink.lineTo(...point);
    ink.stroke();
  }
  last = point;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  last = null;
  strokeTo(padPoint(event));  // a tap leaves a dot
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of (events.length ? events : [event])) strokeTo(padPoint(e));
  schedule();
});
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  pad.addEventListener(type, () => {
    if (drawing) { drawing = false; last = null; schedule(); }
  });
}

document.getElementById("clear").addEventListener("click", () => {
  generation += 1;
  dirty = false;
  clearPad();
  showNothing("Draw a digit, 0 to 9, large and centred.");
});

// The pad as rows of grey values 0..255 (black ink on white paper), scaled down.
function padImage() {
  const small = document.createElement("canvas");
  small.width = small.height = SENT_SIDE;
  const context = small.getContext("2d");
  context.imageSmoothingQuality = "high";
  context.drawImage(pad, 0, 0, SENT_SIDE, SENT_SIDE);
  const rgba = context.getImageData(0, 0, SENT_SIDE, SENT_SIDE).data;
  const rows = [];
  for (let y = 0; y < SENT_SIDE; y++) {
    const row = new Array(SENT_SIDE);
    for (let x = 0; x < SENT_SIDE; x++) row[x] = rgba[4 * (y * SENT_SIDE + x)];  // red = grey here
    rows.push(row);
  }
  return rows;
}

// --- asking the server, at most every INTERVAL_MS ---------------------------------
function schedule() { dirty = true; pump(); }

function pump() {
  if (!dirty || inFlight || timer !== null) return settle();
  const wait = lastSent + INTERVAL_MS - performance.now();
  if (wait > 0) {
    timer = setTimeout(() => { timer = null; pump(); }, wait);
    return settle();
  }
  dirty = false;
  inFlight = true;
  lastSent = performance.now();
  const asked = generation;
  settle();
  fetch("/predict", {method: "POST", headers: {"Content-Type": "application/json"},
                     body: JSON.stringify({image: padImage()})})
    .then((response) => response.json().then((answer) => [response.ok, answer]))
    .then(([ok, answer]) => {
      if (asked !== generation) return;
      if (!ok) showError(answer.error || "The server refused the drawing.");
      else if (answer.blank) showNothing(answer.message);
      else show(answer);
    })
    .catch((error) => showError(`No answer from the server (${error.message}). Is examples/draw.py running?`))
    .finally(() => { inFlight = false; pump(); });
}

// body[data-state]: "busy" while a drawing waits for its answer, else "idle" (the tests wait on it).
function settle() {
  document.body.dataset.state = (dirty || inFlight || timer !== null) ? "busy" : "idle";
}

// --- showing an answer -------------------------------------------------------
function showError(message) {
  statusLine.textContent = message;
  statusLine.className = "error";
}

function showNothing(message) {
  lastAnswer = null;
  statusLine.textContent = message;
  statusLine.className = "";
  document.body.dataset.prediction = "";
  drawBars(null);
  inputCanvas.getContext("2d").clearRect(0, 0, 28, 28);
  for (const grid of grids) drawGrid(grid, null);
  describeUnit();
}

function show(answer) {
  lastAnswer = answer;
  const p = answer.probabilities[answer.prediction];
  statusLine.textContent = `It reads ${answer.prediction} (${(100 * p).toFixed(1)}%).`;
  statusLine.className = "";
  document.body.dataset.prediction = String(answer.prediction);
  drawBars(answer.probabilities);
  drawPixels(inputCanvas, answer.input, (v) => { const g = Math.round(255 * v); return [g, g, g]; });
  grids.forEach((grid) => drawGrid(grid, valuesOf(answer.layers[grid.index])));
  describeUnit();
}

function makeBars() {
  for (let digit = 0; digit < 10; digit++) {
    const item = document.createElement("li");
    item.innerHTML = `<span class="digit">${digit}</span><span class="track"><span class="bar"></span></span>` +
                     `<span class="p"></span>`;
    bars.appendChild(item);
  }
}

function drawBars(probabilities) {
  const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  document.getElementById("answer-digit").textContent = top < 0 ? "?" : String(top);
  document.getElementById("answer-p").textContent = top < 0 ? "" : `${(100 * probabilities[top]).toFixed(1)}% sure`;
  bars.dataset.top = top < 0 ? "" : String(top);
  [...bars.children].forEach((item, digit) => {
    const p = probabilities ? probabilities[digit] : 0;
    item.querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
    item.querySelector(".p").textContent = probabilities ? `${(100 * p).toFixed(1)}%` : "";
    item.dataset.p = String(p);
    item.classList.toggle("top", digit === top);
  });
}

// A list of rows (28x28, or a 3x3 filter) onto a canvas of that size, one pixel each, coloured by
// colour(value) -> [r, g, b]. The CSS scales the canvas up, pixelated.
function drawPixels(canvas, rows, colour) {
  const height = rows.length, width = rows[0].length;
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  rows.forEach((row, y) => row.forEach((value, x) => {
    const [r, g, b] = colour(value);
    image.data.set([r, g, b, 255], 4 * (width * y + x));
  }));
  context.putImageData(image, 0, 0);
}

// --- the hidden layers, one grid each: of cells (a Dense layer's units) or of feature maps ---------------
const CELL = 12;    // canvas pixels a unit (the CSS scales the canvas to fit)
const MAP_PX = 48;  // canvas pixels a feature map is scaled up to, about (a whole number of pixels a value)
const GAP = 4;      // canvas pixels between two feature maps

// What an answer's layer holds to draw: a Dense layer's activations, or a convolution's maps (C of H rows).
function valuesOf(layer) { return layer.kind === "maps" ? layer.maps : layer.activations; }

// Every layer but the output (the bars show it); not those of kind "hidden" (Flatten, Dropout, ...: at
// inference they repeat the layer before). The first one drawn is the one whose units (or filters) a click shows.
function makeGrids() {
  model.layers.slice(0, -1).forEach((layer, index) => {
    if (layer.kind === "hidden") return;
    const [rows, columns] = layer.grid, maps = layer.kind === "maps";
    const box = document.createElement("div");
    box.className = "layer" + (grids.length === 0 ? " first" : "") + (maps ? " maps" : "");
    const what = maps ? `maps fire (${layer.map[0]}×${layer.map[1]} each)` : `fire (${rows}×${columns})`;
    box.innerHTML = `<h3>Layer ${index + 1} (${layer.name}): <span><b class="firing">0</b> of ${layer.units} ` +
                    `${what}</span></h3>`;
    const canvas = document.createElement("canvas");
    const grid = {canvas, layer, index, rows, columns, maps, values: null, count: box.querySelector(".firing")};
    if (maps) {  // each map scaled up by a whole number, framed by GAP/2 on each side
      grid.scale = Math.max(1, Math.round(MAP_PX / Math.max(...layer.map)));
      grid.cellWidth = layer.map[1] * grid.scale + GAP;
      grid.cellHeight = layer.map[0] * grid.scale + GAP;
    } else {
      grid.cellWidth = grid.cellHeight = CELL;
    }
    canvas.width = columns * grid.cellWidth;
    canvas.height = rows * grid.cellHeight;
    canvas.dataset.layer = layer.name;
    canvas.dataset.kind = maps ? "maps" : "units";
    box.appendChild(canvas);
    layersBox.appendChild(box);
    grids.push(grid);
    drawGrid(grid, null);
    if (grids.length === 1) canvas.addEventListener("click", (event) => pickUnit(grid, event));
  });
}

// Off (0) is near-black; firing goes through red to bright yellow, relative to the layer's strongest unit.
function heat(t) {
  const stops = [[22, 24, 36], [150, 30, 60], [235, 110, 30], [255, 235, 120]];
  const s = Math.min(t, 1) * (stops.length - 1), i = Math.min(Math.floor(s), stops.length - 2), f = s - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}

function drawGrid(grid, values) {
  if (grid.maps) return drawMaps(grid, values);
  grid.values = values;
  const context = grid.canvas.getContext("2d");
  context.fillStyle = "#12141c";
  context.fillRect(0, 0, grid.canvas.width, grid.canvas.height);
  const largest = values ? Math.max(...values) : 0;
  let firing = 0;
  for (let unit = 0; unit < grid.rows * grid.columns; unit++) {
    const value = values ? values[unit] : 0;
    if (value > 0) firing += 1;
    const [r, g, b] = heat(largest > 0 ? value / largest : 0);
    context.fillStyle = `rgb(${r},${g},${b})`;
    const x = (unit % grid.columns) * CELL, y = Math.floor(unit / grid.columns) * CELL;
    context.fillRect(x + 1, y + 1, CELL - 2, CELL - 2);
  }
  if (grid === grids[0] && selectedUnit !== null) {
    context.strokeStyle = "#3fa2ff";
    context.lineWidth = 3;
    const x = (selectedUnit % grid.columns) * CELL, y = Math.floor(selectedUnit / grid.columns) * CELL;
    context.strokeRect(x + 0.5, y + 0.5, CELL - 1, CELL - 1);
  }
  grid.count.textContent = String(firing);
  grid.canvas.dataset.firing = String(firing);
}

// A convolution's (or max-pool's) output: C feature maps, each an HxW picture in the heat colours, relative
// to the layer's strongest value; a map "fires" when any of its values is above 0.
function drawMaps(grid, maps) {
  grid.values = maps;
  const context = grid.canvas.getContext("2d");
  const image = context.createImageData(grid.canvas.width, grid.canvas.height);
  const [dark, s] = [[18, 20, 28], grid.scale];
  for (let i = 0; i < image.data.length; i += 4) image.data.set([...dark, 255], i);
  let largest = 0;
  if (maps) for (const map of maps) for (const row of map) for (const v of row) largest = Math.max(largest, v);
  let firing = 0;
  for (let c = 0; c < grid.rows * grid.columns; c++) {
    const map = maps ? maps[c] : null;
    const left = (c % grid.columns) * grid.cellWidth + GAP / 2, top = Math.floor(c / grid.columns) * grid.cellHeight + GAP / 2;
    let fires = false;
    for (let y = 0; y < grid.layer.map[0]; y++) {
      for (let x = 0; x < grid.layer.map[1]; x++) {
        const value = map ? map[y][x] : 0;
        if (value > 0) fires = true;
        const rgba = [...heat(largest > 0 ? Math.max(value, 0) / largest : 0), 255];
        for (let dy = 0; dy < s; dy++) {
          const start = 4 * ((top + y * s + dy) * grid.canvas.width + left + x * s);
          for (let dx = 0; dx < s; dx++) image.data.set(rgba, start + 4 * dx);
        }
      }
    }
    if (fires) firing += 1;
  }
  context.putImageData(image, 0, 0);
  if (grid === grids[0] && selectedUnit !== null) {  // the map whose filter is shown
    context.strokeStyle = "#3fa2ff";
    context.lineWidth = 2;
    const x = (selectedUnit % grid.columns) * grid.cellWidth, y = Math.floor(selectedUnit / grid.columns) * grid.cellHeight;
    context.strokeRect(x + 1, y + 1, grid.cellWidth - 2, grid.cellHeight - 2);
  }
  grid.count.textContent = String(firing);
  grid.canvas.dataset.firing = String(firing);
}

// --- one unit's incoming weights (or one filter of the first convolution) ------------------------
function pickUnit(grid, event) {
  const box = grid.canvas.getBoundingClientRect();
  const column = Math.floor((event.clientX - box.left) / box.width * grid.columns);
  const row = Math.floor((event.clientY - box.top) / box.height * grid.rows);
  if (column < 0 || row < 0 || column >= grid.columns || row >= grid.rows) return;
  selectedUnit = row * grid.columns + column;
  drawGrid(grid, grid.values);
  fetch(`/weights/${selectedUnit}`)
    .then((response) => response.json())
    .then((answer) => {
      if (answer.error) { unitText.textContent = answer.error; return; }
      weightsShown = answer;
      const scale = answer.largest || 1;
      drawPixels(weightsCanvas, answer.weights, (w) => diverging(w / scale));
      weightsCanvas.dataset.unit = String(answer.unit);
      describeUnit();
    })
    .catch((error) => { unitText.textContent = `No answer from the server (${error.message}).`; });
}

function describeUnit() {
  if (!weightsShown) return;
  const w = weightsShown.largest.toFixed(3);
  const bias = weightsShown.bias === null ? "" : `, bias ${weightsShown.bias.toFixed(3)}`;
  const layer = lastAnswer && grids.length ? lastAnswer.layers[grids[0].index] : null;
  if (weightsShown.kind === "filter") {  // a convolution's filter: its map's strongest value
    const rows = weightsShown.weights.length, columns = weightsShown.weights[0].length;
    const map = layer ? layer.maps[weightsShown.unit] : null;
    const top = map ? Math.max(...map.map((row) => Math.max(...row))) : null;
    unitText.textContent = `Filter ${weightsShown.unit} of ${weightsShown.layer}: ${rows}×${columns} weights from ` +
      `−${w} (blue) to +${w} (red)${bias}, slid over every ${rows}×${columns} window of the input.` +
      (top === null ? "" : ` Its map's strongest value for your digit: ${top.toFixed(2)}.`);
    return;
  }
  const a = layer ? layer.activations[weightsShown.unit] : null;
  unitText.textContent = `Unit ${weightsShown.unit} of ${weightsShown.layer}: weights from −${w} (blue) ` +
    `to +${w} (red)${bias}.` + (a === null ? "" : ` Your digit makes it output ${a.toFixed(2)}.`);
}

// Blue (negative) -> white (0) -> red (positive), for t in -1..1.
function diverging(t) {
  t = Math.max(-1, Math.min(1, t));
  const end = t < 0 ? [36, 81, 179] : [196, 48, 43], f = Math.abs(t);
  return end.map((c) => Math.round(255 + f * (c - 255)));
}

// A convolutional network: the notes speak of feature maps and filters, not units and 784 weights.
function explainMaps() {
  document.body.dataset.model = "cnn";
  document.getElementById("layers-note").innerHTML = "Each convolution and max-pool as its feature maps, one " +
    "small picture per channel, brighter where the channel fires (relative to the layer's strongest value); " +
    "dark is 0. <strong>Click a map of the first convolution</strong> to see the filter that makes it.";
  document.getElementById("unit-title").textContent = "What one filter looks for";
  unitText.textContent = "Click a feature map of the first convolution: the small window of weights " +
    "(its filter) it slides over the input appears here.";
  document.getElementById("unit-note").textContent = "Red: ink under a red weight raises the map's value " +
    "there. Blue: lowers it. White: no effect.";
}

// --- start --------------------------------------------------------------------
clearPad();
makeBars();
drawBars(null);
fetch("/model")
  .then((response) => response.json())
  .then((answer) => {
    model = answer;
    const size = (layer) => layer.kind === "maps" ? `${layer.map[0]}×${layer.map[1]}×${layer.units}` :
      layer.kind === "hidden" ? layer.shape.join("×") : String(layer.units);
    const units = answer.layers.map(size).join(" → ");
    const inputs = answer.layers[0].kind === "maps" ? "28×28×1" : "784";  // a CNN takes the image as it is
    document.getElementById("model").textContent = `Model: ${inputs} inputs → ${units}` +
      (answer.source ? `, from ${answer.source}` : "");
    makeGrids();
    if (grids.length && grids[0].maps) explainMaps();
    settle();
  })
  .catch((error) => showError(`Cannot load the model description (${error.message}).`));
