// The page of a running run, kept up to date without a reload. `blooming ui` serves this script
// only to the page of a run that is `running` (the Content-Security-Policy lets no other script
// run). Every second it asks the run's status.json how the run stands, then sets what the page
// shows of it: the status badge, the finished time and duration, the failure, each step's box in
// the graph and its row in the steps table. Once the run has ended it sets them one last time and
// stops asking. It only ever sets `textContent` and `class` attributes, never markup, so whatever
// text the datastore holds stays text.
(function () {
  'use strict';

  const PERIOD_MS = 1000;
  const heading = document.getElementById('run');
  const url = heading && heading.getAttribute('data-status-url');
  if (!url) return;

  /// The elements matching `selector`, by their `data-step` (a step's name, as status.json says it).
  function byStep(selector) {
    const found = new Map();
    for (const element of document.querySelectorAll(selector)) {
      found.set(element.getAttribute('data-step'), element);
    }
    return found;
  }
  const nodes = byStep('svg.dag g.step[data-step]');
  const rows = byStep('table.steps tr[data-step]');

  function setText(element, text) {
    if (element && element.textContent !== text) element.textContent = text;
  }

  function setClass(element, value) {
    if (element && element.getAttribute('class') !== value) element.setAttribute('class', value);
  }

  function show(run) {
    const status = document.getElementById('run-status');
    setText(status, String(run.status));
    setClass(status, `status ${run.status}`);
    setText(document.getElementById('run-finished'), run.finished || '');
    setText(document.getElementById('run-duration'), run.duration || '');
    const failure = document.getElementById('run-failure');
    setText(failure, run.failure || '');
    setClass(failure, run.failure ? 'failure' : 'failure none');
    for (const step of run.steps || []) {
      const node = nodes.get(step.name);
      if (node) {
        setClass(node, `step ${step.state}`);
        setText(node.querySelector('text.label'), step.label);
        setText(node.querySelector('title'), `${step.name}: ${step.label}`);
      }
      const row = rows.get(step.name);
      if (row) {
        setText(row.querySelector('td.tasks'), String(step.tasks));
        const state = row.querySelector('span.status');
        setText(state, step.state);
        setClass(state, `status ${step.state}`);
      }
    }
  }

  async function poll() {
    let run;
    try {
      const response = await fetch(url, { cache: 'no-store' });
      // The run is gone, or the address is wrong: asking again will not help.
      if (response.status >= 400 && response.status < 500) return;
      if (response.ok) run = await response.json();
    } catch (_) {
      // The server did not answer this time: ask again.
    }
    if (run) {
      show(run);
      if (run.status !== 'running') return;
    }
    setTimeout(poll, PERIOD_MS);
  }

  setTimeout(poll, PERIOD_MS);
})();
