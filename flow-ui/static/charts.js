// Draws every chart of the page with the vendored uPlot (static/vendor/uPlot.iife.min.js, which
// must be loaded first). A chart is a `<figure class="chart" data-chart="JSON">`, the JSON written
// by flow-ui/src/chart.rs (`ChartSpec`): its kind (`line` or `scatter`), title, axis labels,
// optional category labels for the x axis, and series that each have their own x and y values
// (uPlot wants one shared x: `uPlot.join` aligns them, leaving gaps). The JSON is only ever
// parsed, names and labels reach the page as text (uPlot sets `textContent`), so whatever a step
// stored stays text. Used by `blooming ui` pages and inlined into exported cards.
(function () {
  'use strict';

  const HEIGHT = 300;
  const COLORS = ['#2f6fdf', '#d9822b', '#2e9e5b', '#c23b3b', '#7b57c9', '#1b9aaa', '#b5528c', '#6b7a2f'];

  function draw(figure) {
    let spec;
    try {
      spec = JSON.parse(figure.getAttribute('data-chart'));
    } catch (error) {
      fail(figure, 'this chart cannot be read: ' + error.message);
      return;
    }
    const series = Array.isArray(spec.series) ? spec.series : [];
    if (series.length === 0 || series.every((s) => !s.x || s.x.length === 0)) {
      fail(figure, 'no values to draw');
      return;
    }
    const data = uPlot.join(series.map((s) => [s.x, s.y.map((y) => (y === null ? null : y))]));
    const scatter = spec.kind === 'scatter';
    const labels = Array.isArray(spec.x_labels) ? spec.x_labels : null;
    const xAxis = { label: spec.x_label || '' };
    if (!labels && series.every((s) => s.x.every(Number.isInteger))) {
      // Epochs, indices, counts: ticks on whole numbers only.
      xAxis.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6];
    }
    if (labels) {
      xAxis.splits = () => labels.map((_, i) => i);
      xAxis.values = (u, splits) => splits.map((v) => (Number.isInteger(v) && labels[v] !== undefined ? labels[v] : ''));
    }
    const options = {
      title: spec.title || undefined,
      width: width(figure),
      height: HEIGHT,
      scales: { x: { time: false } },
      axes: [xAxis, { label: spec.y_label || '' }],
      series: [
        labels
          ? { label: spec.x_label || 'x', value: (u, v) => (v === null || labels[v] === undefined ? '' : labels[v]) }
          : { label: spec.x_label || 'x' },
      ].concat(
        series.map((s, i) => {
          const color = COLORS[i % COLORS.length];
          const line = {
            label: String(s.name),
            stroke: color,
            width: 2,
            spanGaps: !scatter,
            points: { show: scatter || s.x.length <= 50, size: scatter ? 7 : 5, fill: color },
          };
          if (scatter) line.paths = () => null;
          return line;
        }),
      ),
    };
    const chart = new uPlot(options, data, figure);
    figure.classList.add('drawn');
    window.addEventListener('resize', () => chart.setSize({ width: width(figure), height: HEIGHT }));
  }

  function width(figure) {
    return Math.max(320, Math.min(figure.clientWidth || 800, 1100));
  }

  function fail(figure, message) {
    const note = document.createElement('p');
    note.className = 'chart-error';
    note.textContent = message;
    figure.appendChild(note);
  }

  function drawAll() {
    if (typeof uPlot === 'undefined') return;
    for (const figure of document.querySelectorAll('figure.chart[data-chart]')) draw(figure);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', drawAll);
  else drawAll();
})();
