// The pages of `blooming ui` in headless Chromium, over datastores made by real flows
// (flow-ui/examples/ui_fixtures.rs). Run by scripts/browser-tests, which sets:
//   UI_URL       the server's base URL (`http://127.0.0.1:PORT`, no trailing slash)
//   FIXTURES     the JSON `ui_fixtures DIR` printed (run ids, the stored texts)
//   HOLD_FILE    the file the running run of `Slow` waits on; removing it ends that run
//   SCREENSHOTS  where each test saves its screenshots
//   CHROMIUM     the browser (default /usr/bin/chromium)
//   CARD_FILE    the card of Trainer's `train` task, exported by `blooming card`
// Each test asserts on what the page shows and saves a screenshot of it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/browser-tests`);
  return value;
}

const base = required('UI_URL').replace(/\/$/, '');
const fixtures = JSON.parse(readFileSync(required('FIXTURES'), 'utf8'));
const holdFile = required('HOLD_FILE');
const screenshots = required('SCREENSHOTS');
mkdirSync(screenshots, { recursive: true });

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
});

after(async () => {
  await browser?.close();
});

/// A fresh page that records every dialog, page error and console error it sees.
async function open(path, viewport = { width: 1200, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const seen = { dialogs: [], errors: [] };
  page.on('dialog', async (dialog) => {
    seen.dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.on('pageerror', (error) => seen.errors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location().url;
    // The UI has no icon; the browser asks for one anyway.
    if (where && new URL(where).pathname === '/favicon.ico') return;
    seen.errors.push(`${message.text()} ${where}`);
  });
  const response = await page.goto(base + path);
  assert.equal(response.status(), 200, `GET ${path}`);
  return { page, seen, close: () => context.close() };
}

async function shot(page, name) {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

const text = async (locator) => (await locator.textContent()).trim();

/// The count of runs a list shows (`3 runs`), without the compare button beside it.
const countShown = (page) => page.locator('p.count').evaluate((p) => p.firstChild.textContent.trim());

/// The runs table as `{ id: status }`, checking that each status's CSS class is its text.
async function runsShown(page) {
  const rows = page.locator('table.runs tbody tr');
  const shown = {};
  for (const row of await rows.all()) {
    // The first cell is the compare checkbox; the run's id is its link.
    const id = await text(row.locator('td a').first());
    const status = row.locator('span.status');
    const label = await text(status);
    assert.match(await status.getAttribute('class'), new RegExp(`\\bstatus ${label}\\b`));
    shown[id] = label;
  }
  return shown;
}

/// The computed style property `prop` of the first element matching `selector`.
const styleOf = (page, selector, prop) =>
  page.locator(selector).first().evaluate((el, p) => getComputedStyle(el)[p], prop);

/// The steps drawn in the run page's graph: `{ name: class }` (done, failed, running, not-started).
async function nodesShown(page) {
  const nodes = page.locator('svg.dag g.step');
  const shown = {};
  for (const node of await nodes.all()) {
    const name = await text(node.locator('text.name'));
    assert.ok(await node.locator('text.name').isVisible(), `the name of ${name} is visible`);
    shown[name] = (await node.getAttribute('class')).replace(/^step\s+/, '');
  }
  return shown;
}

const garden = fixtures.garden;

test('the runs of a flow are listed with their statuses, and the status filter narrows them', async () => {
  const { page, seen, close } = await open('/flows/Garden');
  try {
    assert.equal(await text(page.locator('h1')), 'Garden');
    const expected = Object.fromEntries([
      ...garden.succeeded.map((id) => [id, 'succeeded']),
      [garden.failed, 'failed'],
    ]);
    assert.deepEqual(await runsShown(page), expected);
    assert.equal(await countShown(page), '3 runs');
    // The stylesheet tells the statuses apart.
    const failedColour = await styleOf(page, 'table.runs .status.failed', 'backgroundColor');
    const succeededColour = await styleOf(page, 'table.runs .status.succeeded', 'backgroundColor');
    assert.notEqual(failedColour, succeededColour);
    await shot(page, 'runs-all');

    // The form, as a user submits it.
    await page.selectOption('select[name=status]', 'failed');
    await Promise.all([page.waitForURL(/status=failed/), page.click('form.filters button')]);
    assert.deepEqual(await runsShown(page), { [garden.failed]: 'failed' });
    assert.equal(await countShown(page), '1 run');
    assert.equal(await page.locator('select[name=status]').inputValue(), 'failed');
    await shot(page, 'runs-failed');

    await page.selectOption('select[name=status]', 'succeeded');
    await Promise.all([page.waitForURL(/status=succeeded/), page.click('form.filters button')]);
    assert.deepEqual(
      await runsShown(page),
      Object.fromEntries(garden.succeeded.map((id) => [id, 'succeeded'])),
    );

    await page.selectOption('select[name=status]', 'running');
    await Promise.all([page.waitForURL(/status=running/), page.click('form.filters button')]);
    assert.deepEqual(await runsShown(page), {});
    assert.equal(await countShown(page), '0 runs');
    assert.deepEqual(seen, { dialogs: [], errors: [] });
  } finally {
    await close();
  }
});

test("a run's page draws its graph, one node per step, and a node leads to its step", async () => {
  const id = garden.succeeded[0];
  const { page, seen, close } = await open(`/flows/Garden/runs/${id}`);
  try {
    assert.match(await text(page.locator('h1')), new RegExp(`^Run ${id}\\s+succeeded$`));
    const svg = page.locator('svg.dag');
    assert.equal(await svg.count(), 1);
    const box = await svg.boundingBox();
    assert.ok(box.width > 100 && box.height > 100, `the graph is drawn: ${JSON.stringify(box)}`);
    assert.deepEqual(await nodesShown(page), {
      start: 'done',
      plant: 'done',
      gather: 'done',
      end: 'done',
    });
    assert.equal(await svg.locator('line.edge').count(), 3);
    // The steps table below says the same.
    assert.equal(await page.locator('main table tbody tr').count(), 4);
    // Every box lies inside the drawing, and the layers go down: start above plant above end.
    const tops = {};
    for (const name of ['start', 'plant', 'gather', 'end']) {
      const rect = await svg.locator(`g.step[data-step="${name}"] rect`).boundingBox();
      assert.ok(rect.x >= box.x && rect.x + rect.width <= box.x + box.width + 1, name);
      assert.ok(rect.y >= box.y && rect.y + rect.height <= box.y + box.height + 1, name);
      tops[name] = rect.y;
    }
    assert.ok(tops.start < tops.plant && tops.plant < tops.gather && tops.gather < tops.end);
    // A done box is not drawn like a step that never ran.
    const doneFill = await styleOf(page, 'svg.dag g.step.done rect', 'fill');
    assert.notEqual(doneFill, '');
    await shot(page, 'run-dag');

    await Promise.all([
      page.waitForURL(/\/steps\/plant$/),
      page.locator('svg.dag g.step[data-step="plant"]').click(),
    ]);
    assert.equal(await text(page.locator('h1')), 'Step plant');
    assert.equal(await countShown(page), '3 tasks');
    assert.deepEqual(seen, { dialogs: [], errors: [] });
  } finally {
    await close();
  }
});

test("the failed run shows why it failed, and its failed task the error and the logs", async () => {
  const id = garden.failed;
  const { page, seen, close } = await open(`/flows/Garden/runs/${id}`);
  try {
    const status = page.locator('h1 span.status');
    assert.equal(await text(status), 'failed');
    assert.match(await status.getAttribute('class'), /\bfailed\b/);
    assert.ok((await text(page.locator('pre.failure'))).includes(fixtures.failure));
    const nodes = await nodesShown(page);
    assert.equal(nodes.start, 'done');
    assert.equal(nodes.plant, 'failed');
    assert.equal(Object.keys(nodes).length, 4);
    const failedFill = await styleOf(page, 'svg.dag g.step.failed rect', 'fill');
    const doneFill = await styleOf(page, 'svg.dag g.step.done rect', 'fill');
    assert.notEqual(failedFill, doneFill);
    await shot(page, 'run-failed');

    await Promise.all([
      page.waitForURL(/\/steps\/plant$/),
      page.locator('svg.dag g.step[data-step="plant"]').click(),
    ]);
    const failedRows = page.locator('main table tbody tr', {
      has: page.locator('span.status.failed'),
    });
    assert.equal(await failedRows.count(), 1);
    assert.ok((await text(failedRows.locator('td').last())).includes(fixtures.failure));
    await Promise.all([
      page.waitForURL(/\/steps\/plant\/tasks\//),
      failedRows.locator('a').first().click(),
    ]);
    assert.equal(await text(page.locator('h1 span.status')), 'failed');
    assert.ok((await text(page.locator('pre.failure'))).includes(fixtures.failure));
    const logs = (await page.locator('pre.log').allTextContents()).join('\n');
    assert.match(logs, /planting the bed.*bed=roses/);
    assert.match(logs, /WARN.*the soil is dry/);
    await shot(page, 'task-failed');
    assert.deepEqual(seen, { dialogs: [], errors: [] });
  } finally {
    await close();
  }
});

test('markup stored in artifacts and logs is shown as text and never runs', async () => {
  const { page, seen, close } = await open(`/flows/Hostile/runs/${fixtures.hostile}/steps/start`);
  try {
    await Promise.all([
      page.waitForURL(/\/steps\/start\/tasks\//),
      page.locator('main table tbody tr a').first().click(),
    ]);
    // The preview is JSON: a string in quotes, its `"` escaped.
    const script = await text(page.locator('#artifact-script pre.value'));
    assert.equal(script, JSON.stringify(fixtures.script));
    const onerror = await text(page.locator('#artifact-onerror pre.value'));
    assert.equal(onerror, JSON.stringify(fixtures.onerror));
    const logs = (await page.locator('pre.log').allTextContents()).join('\n');
    assert.ok(logs.includes(`${fixtures.script} ${fixtures.onerror}`), logs);
    // None of it became an element.
    assert.equal(await page.locator('script').count(), 0);
    assert.equal(await page.locator('img').count(), 0);
    // Give anything that might run time to run.
    await page.waitForTimeout(1000);
    assert.equal(await page.evaluate(() => typeof window.__pwned), 'undefined');
    assert.deepEqual(seen.dialogs, []);
    assert.deepEqual(seen.errors, []);
    await shot(page, 'task-hostile');
  } finally {
    await close();
  }
});

test("a running run's page follows the run as it goes on, without a reload", async () => {
  const { page, seen, close } = await open('/flows/Slow');
  try {
    const runs = await runsShown(page);
    const ids = Object.keys(runs);
    assert.equal(ids.length, 1, JSON.stringify(runs));
    assert.equal(runs[ids[0]], 'running');
    await Promise.all([
      page.waitForURL(/\/runs\//),
      page.locator('table.runs tbody tr a').first().click(),
    ]);
    // Only the page of a running run loads the script that keeps it up to date.
    assert.deepEqual(
      await page.locator('script').evaluateAll((scripts) => scripts.map((s) => s.getAttribute('src'))),
      ['/static/live.js'],
    );
    assert.equal(await text(page.locator('h1 span.status')), 'running');
    assert.equal(await text(page.locator('dl.record dt:text-is("finished") + dd')), '');
    // The in-process executor records a task only once it has ended, so the step now running
    // has nothing in the datastore yet: the page can only draw it not started.
    const nodes = await nodesShown(page);
    assert.equal(nodes.start, 'done');
    assert.ok(['running', 'not-started'].includes(nodes.wait), nodes.wait);
    assert.equal(nodes.end, 'not-started');
    assert.equal(Object.keys(nodes).length, 3);
    const doneFill = await styleOf(page, 'svg.dag g.step.done rect', 'fill');
    const idleFill = await styleOf(page, 'svg.dag g.step.not-started rect', 'fill');
    assert.notEqual(doneFill, idleFill);
    const runningColour = await styleOf(page, 'h1 span.status', 'backgroundColor');
    await shot(page, 'run-running');

    // A reload would lose this.
    await page.evaluate(() => {
      window.__marker = 1;
    });
    assert.ok(existsSync(holdFile), `${holdFile} holds the run`);
    rmSync(holdFile);
    // No reload: the page's script updates it in place.
    await page.waitForFunction(
      () => {
        const badge = document.querySelector('h1 span.status');
        const nodes = [...document.querySelectorAll('svg.dag g.step')];
        return (
          badge.textContent.trim() === 'succeeded' &&
          badge.classList.contains('succeeded') &&
          nodes.length === 3 &&
          nodes.every((node) => node.getAttribute('class') === 'step done')
        );
      },
      null,
      { timeout: 60_000, polling: 100 },
    );
    assert.equal(await page.evaluate(() => window.__marker), 1, 'the page was not reloaded');
    assert.notEqual(await styleOf(page, 'h1 span.status', 'backgroundColor'), runningColour);
    assert.notEqual(await text(page.locator('dl.record dt:text-is("finished") + dd')), '');
    assert.deepEqual(await nodesShown(page), { start: 'done', wait: 'done', end: 'done' });
    assert.deepEqual(
      await page.locator('svg.dag g.step text.label').allTextContents(),
      ['1 task · done', '1 task · done', '1 task · done'],
    );
    // The steps table says the same.
    const rows = page.locator('table.steps tbody tr');
    for (const row of await rows.all()) {
      assert.equal(await text(row.locator('td.tasks')), '1');
      const state = row.locator('span.status');
      assert.equal(await text(state), 'done');
      assert.equal(await state.getAttribute('class'), 'status done');
    }
    await shot(page, 'run-ended');

    // The run has ended: the script asks no more.
    const asked = [];
    page.on('request', (request) => asked.push(request.url()));
    await page.waitForTimeout(2500);
    assert.deepEqual(asked, []);
    assert.equal(await page.evaluate(() => window.__marker), 1);
    assert.deepEqual(seen, { dialogs: [], errors: [] });
  } finally {
    await close();
  }
});

test("a task's card shows its markdown, table, image and chart, and nothing stored in it runs", async () => {
  const task = `/flows/Trainer/runs/${fixtures.trainer}/steps/train/tasks/0`;
  for (const [path, name] of [
    [task, 'card-on-task-page'],
    [`${task}/card`, 'card'],
  ]) {
    const { page, seen, close } = await open(path, { width: 1200, height: 900 });
    try {
      const card = page.locator('div.card');
      assert.equal(await text(card.locator('.markdown h1')), fixtures.card.heading);
      // The script in the markdown is shown as text and did not run.
      assert.match(await text(card.locator('.markdown p').first()), /<script>window\.__pwned = 1<\/script>/);
      assert.equal(await page.evaluate(() => window.__pwned), undefined);
      // The table: a header and one row per learning rate, exactly one picked.
      const headers = await card.locator('table.card-table thead th').allTextContents();
      assert.deepEqual(headers, ['learning rate', 'final loss', 'picked']);
      const rows = card.locator('table.card-table tbody tr');
      assert.equal(await rows.count(), fixtures.card.series.length);
      const picked = await card.locator('table.card-table tbody td:last-child').allTextContents();
      assert.equal(picked.filter((p) => p.trim() === 'true').length, 1);
      // The image decoded (a broken PNG has no natural size).
      const image = card.locator('figure.card-image img');
      await image.waitFor();
      const size = await image.evaluate((img) => [img.complete, img.naturalWidth, img.naturalHeight]);
      assert.deepEqual(size, [true, 160, 64]);
      // The chart is drawn by uPlot, with one legend entry per series.
      const chart = card.locator('figure.chart.drawn');
      await chart.waitFor();
      assert.ok((await chart.locator('.uplot canvas').count()) >= 1, 'a canvas');
      const legend = await chart.locator('.u-legend').textContent();
      for (const series of fixtures.card.series) assert.ok(legend.includes(series), `${series} in ${legend}`);
      assert.deepEqual(seen.dialogs, []);
      assert.deepEqual(seen.errors, []);
      if (name === 'card') {
        await page.screenshot({ path: join(screenshots, `${name}.png`) });
      } else {
        await shot(page, name);
      }
    } finally {
      await close();
    }
  }
});

test('an exported card opens from file:// with no network and draws its chart', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const requested = [];
  // Every request but the file itself fails: the export must need nothing else.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url === fileUrl) return route.continue();
    requested.push(url);
    return route.abort();
  });
  const fileUrl = 'file://' + required('CARD_FILE');
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  try {
    await page.goto(fileUrl);
    const card = page.locator('div.card');
    assert.equal(await text(card.locator('.markdown h1')), fixtures.card.heading);
    const chart = card.locator('figure.chart.drawn');
    await chart.waitFor();
    const legend = await chart.locator('.u-legend').textContent();
    for (const series of fixtures.card.series) assert.ok(legend.includes(series), `${series} in ${legend}`);
    const size = await card.locator('figure.card-image img').evaluate((img) => [img.naturalWidth, img.naturalHeight]);
    assert.deepEqual(size, [160, 64]);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(requested, []);
    assert.deepEqual(errors, []);
    await page.screenshot({ path: join(screenshots, 'card-exported.png') });
  } finally {
    await context.close();
  }
});

test('two runs ticked in the runs list are compared side by side, with a chart across them', async () => {
  const [first, second] = fixtures.tuned.runs;
  const { page, seen, close } = await open('/flows/Tuned');
  try {
    for (const id of [first, second]) {
      await page.locator(`input[type=checkbox][name=run][value="${id}"]`).check();
    }
    await Promise.all([
      page.waitForURL(/\/flows\/Tuned\/compare\?/),
      page.getByRole('button', { name: 'compare the runs ticked' }).click(),
    ]);
    assert.equal(await text(page.locator('h1')), 'Tuned: 2 runs compared');
    const heads = await page.locator('table.compare thead th a').allTextContents();
    assert.deepEqual(heads.sort(), [first, second].sort());
    /// The row named `name`: whether it is marked as differing, and its cells.
    const row = async (name) => {
      const tr = page.locator('table.compare tbody tr', { has: page.locator(`th:text-is("${name}")`) });
      assert.equal(await tr.count(), 1, name);
      return {
        differs: (await tr.getAttribute('class')) === 'differs',
        cells: (await tr.locator('td').allTextContents()).map((c) => c.trim()),
      };
    };
    const lr = await row('lr');
    assert.equal(lr.differs, true);
    assert.deepEqual(lr.cells.map(Number).sort(), [...fixtures.tuned.rates].sort());
    assert.deepEqual(await row('epochs'), { differs: false, cells: ['20', '20'] });
    assert.equal((await row('loss')).differs, true);
    // A differing row is painted apart from an equal one.
    const marked = await styleOf(page, 'table.compare tr.differs td', 'background-color');
    const plain = await page
      .locator('table.compare tbody tr:not(.differs) td')
      .first()
      .evaluate((el) => getComputedStyle(el).backgroundColor);
    assert.notEqual(marked, plain);

    // The first number that differs is charted, a point per run, drawn by uPlot.
    const figure = page.locator('figure.chart.drawn');
    await figure.waitFor();
    assert.equal(await figure.locator('canvas').count(), 1);
    assert.equal(await text(figure.locator('.u-title')), 'loss');

    // Another artifact: a list of numbers, a line per run.
    await page.locator('select[name=chart]').selectOption('loss_curve');
    await Promise.all([
      page.waitForURL(/chart=loss_curve/),
      page.getByRole('button', { name: 'chart' }).click(),
    ]);
    await page.locator('figure.chart.drawn').waitFor();
    const legend = await page.locator('figure.chart .u-legend .u-series .u-label').allTextContents();
    for (const id of [first, second]) assert.ok(legend.includes(id), `${id} in ${legend}`);
    await shot(page, 'compare');
    assert.deepEqual(seen, { dialogs: [], errors: [] });
  } finally {
    await close();
  }
});

test("a run's timeline has a lane per step and a bar per attempt, each leading to its task", async () => {
  const id = garden.failed;
  const { page, seen, close } = await open(`/flows/Garden/runs/${id}`);
  try {
    const timeline = page.locator('svg.timeline');
    assert.equal(await timeline.count(), 1);
    const lanes = await timeline.locator('g.lane').evaluateAll((gs) => gs.map((g) => g.dataset.step));
    assert.deepEqual(lanes, ['start', 'plant', 'gather', 'end']);
    // start, and the three plant tasks of which one failed; nothing after.
    assert.equal(await timeline.locator('rect.bar').count(), 4);
    assert.equal(await timeline.locator('rect.bar.failed').count(), 1);
    const failed = timeline.locator('rect.bar.failed');
    assert.match(await text(failed.locator('title')), /^plant\/\d+: .*, failed$/);
    const box = await failed.boundingBox();
    assert.ok(box.width >= 2 && box.height >= 6, `the bar can be seen: ${JSON.stringify(box)}`);
    const fill = await failed.evaluate((el) => getComputedStyle(el).fill);
    const doneFill = await timeline.locator('rect.bar.done').first().evaluate((el) => getComputedStyle(el).fill);
    assert.notEqual(fill, doneFill);
    await shot(page, 'run-timeline');
    await Promise.all([page.waitForURL(/\/steps\/plant\/tasks\/\d+$/), failed.click()]);
    assert.match(await text(page.locator('h1')), /plant/);
    assert.deepEqual(seen, { dialogs: [], errors: [] });
  } finally {
    await close();
  }
});
