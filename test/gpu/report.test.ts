/**
 * @file The training report in a real browser: short real runs (the MLP on MNIST, the transformer
 * LM on the text corpus) through the trainer with a held-out evaluation after every epoch, their
 * reports written as the CLI writes them, and each page opened in headless Chromium with every
 * request but the page itself refused (the report must need no network). The charts must be drawn
 * (each canvas holds the pixels of its series' colours), the page must log no error, and a
 * screenshot of each goes to test/.generated/report-<data>.png for a person to look at.
 * Chromium is required: without `/usr/bin/chromium` this test fails and says what to install.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/compile.js';
import { mnistSource, textSource, type DataSource } from '../../src/data/source.js';
import { loadText, unigramBaseline } from '../../src/data/text.js';
import type { Model } from '../../src/ir/model.js';
import { loadModel } from '../../src/ir/schema.js';
import { adapterInfo, getDevice } from '../../src/runtime/device.js';
import { chartLibrary, reportHtml } from '../../src/train/report.js';
import { optimizerOf, train } from '../../src/train/trainer.js';
import { DEFAULT_LM, transformerLm } from '../../models/transformer-lm.js';

const CHROMIUM = '/usr/bin/chromium';
const OUT = new URL('../.generated/', import.meta.url).pathname;

let device: GPUDevice;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install it (apt-get install -y chromium)`);
  device = await getDevice({ quiet: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  mkdirSync(OUT, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  device?.destroy();
});

/** Trains briefly with an evaluation after each epoch and writes the report; returns its path. */
async function runAndReport(name: string, model: Model, data: DataSource, dataName: string, notes: string[] = []): Promise<string> {
  const { train: t, forward } = compile(model);
  const epochs = 3;
  const steps = 8;
  const r = await train(device, { train: t!, forward }, data, { epochs, maxStepsPerEpoch: steps, readEvery: 1, evalEachEpoch: true, log: () => undefined });
  expect(r.epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
  expect(r.epochs.every((e) => Number.isFinite(e.testLoss) && e.stepsPerSecond > 0 && e.steps === steps)).toBe(true);
  const path = join(OUT, `report-${name}.html`);
  writeFileSync(path, reportHtml({
    model: model.name, createdAt: new Date().toISOString(), adapter: adapterInfo(device), result: r, train: t!, forward, notes,
    ...(r.accuracy !== undefined ? { accuracyOf: dataName === 'mnist' ? '512 held-out digits' : 'the next character, top 1' } : {}),
    settings: [['data', dataName], ['epochs', String(epochs)], ['steps per epoch', String(steps)], ['optimizer', optimizerOf(t!)], ['seed', '0']],
  }, chartLibrary()));
  return path;
}

/** Colours of the series, as the page draws them (report.ts CLIENT). */
const COLOURS = { smoothLoss: [0x1f, 0x77, 0xb4], heldOut: [0xe8, 0x59, 0x0c], accuracy: [0x2f, 0x9e, 0x44], speed: [0x70, 0x48, 0xe8] } as const;

/** Opens the page offline, checks the charts, takes a screenshot. */
async function openReport(path: string, name: string, hasAccuracy: boolean): Promise<void> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const refused: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url === pathToFileURL(path).href) return route.continue();
    refused.push(url);
    return route.abort();
  });
  try {
    await page.goto(pathToFileURL(path).href);
    await page.waitForFunction(() => (window as unknown as { __reportCharts?: number }).__reportCharts !== undefined, undefined, { timeout: 30_000 });
    // Per chart: how many canvas pixels are drawn in each series colour (within a small tolerance).
    const counts = await page.evaluate((colours) => {
      const out: Record<string, Record<string, number>> = {};
      for (const id of ['chart-loss', 'chart-accuracy', 'chart-speed']) {
        const canvas = document.querySelector<HTMLCanvasElement>(`#${id} canvas`);
        if (!canvas) continue;
        const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        const row: Record<string, number> = { drawn: 0 };
        for (let i = 0; i < px.length; i += 4) {
          if (px[i + 3]! === 0) continue;
          row.drawn!++;
          for (const [k, c] of Object.entries(colours)) if (px[i + 3]! > 200 && Math.abs(px[i]! - c[0]!) + Math.abs(px[i + 1]! - c[1]!) + Math.abs(px[i + 2]! - c[2]!) < 24) row[k] = (row[k] ?? 0) + 1;
        }
        out[id] = row;
      }
      return out;
    }, COLOURS as unknown as Record<string, number[]>);
    expect(errors, errors.join('\n')).toEqual([]);
    expect(refused, 'the report fetched nothing').toEqual([]);
    expect(counts['chart-loss']!.smoothLoss, JSON.stringify(counts)).toBeGreaterThan(200);
    expect(counts['chart-loss']!.heldOut, JSON.stringify(counts)).toBeGreaterThan(50);
    expect(counts['chart-speed']!.speed, JSON.stringify(counts)).toBeGreaterThan(50);
    if (hasAccuracy) expect(counts['chart-accuracy']!.accuracy, JSON.stringify(counts)).toBeGreaterThan(50);
    // Axis labels and the figures' tables are there as text.
    const text = await page.locator('body').innerText();
    for (const want of ['Loss per step', 'held-out loss', 'dispatches per step', 'temporaries, planned', 'Run settings']) expect(text).toContain(want);
    await page.screenshot({ path: join(OUT, `report-${name}.png`), fullPage: true });
  } finally {
    await page.close();
  }
}

describe('the training report renders in headless Chromium, offline', () => {
  it('MNIST (mlp-mnist, 3 epochs of 8 steps): loss, held-out loss, accuracy and speed charts drawn', async () => {
    const model = loadModel(readFileSync('models/mlp-mnist.json', 'utf8'), 'models/mlp-mnist.json');
    const path = await runAndReport('mnist', model, mnistSource(8000, 512), 'mnist');
    expect(readFileSync(path, 'utf8')).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!github\.com\/leeoniya)/);
    await openReport(path, 'mnist', true);
  });

  it('the text model (transformer-lm, batch 8, window 32, 3 epochs of 8 steps)', async () => {
    const full = loadText();
    const corpus = { ...full, test: full.test.subarray(0, 4096) };
    const notes = [`The unigram baseline is ${unigramBaseline(corpus).toFixed(4)} nats/char.`];
    const path = await runAndReport('text', transformerLm({ ...DEFAULT_LM, batch: 8, seq: 32 }), textSource(corpus), 'text', notes);
    await openReport(path, 'text', true);
  });
});
