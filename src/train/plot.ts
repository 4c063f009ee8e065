/**
 * @file The loss-curve plot as a PNG, with no dependency: a small RGB raster (axes, grid, the
 * curve, tick labels in a built-in 3x5 pixel font) encoded with node:zlib.
 */
import { deflateSync } from 'node:zlib';
import { crc32 } from '../runtime/checkpoint.js';

/** 3x5 glyphs, rows top to bottom, 3 bits each. */
const FONT: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7], '1': [2, 6, 2, 2, 7], '2': [7, 1, 7, 4, 7], '3': [7, 1, 7, 1, 7], '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7], '6': [7, 4, 7, 5, 7], '7': [7, 1, 1, 1, 1], '8': [7, 5, 7, 5, 7], '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2], '-': [0, 0, 7, 0, 0], e: [0, 7, 7, 4, 7], k: [4, 5, 6, 5, 5], ' ': [0, 0, 0, 0, 0],
  l: [4, 4, 4, 4, 7], o: [0, 7, 5, 5, 7], s: [0, 7, 6, 1, 7], t: [2, 7, 2, 2, 3], p: [0, 7, 5, 7, 4],
};

class Raster {
  readonly px: Uint8Array;
  constructor(readonly w: number, readonly h: number) {
    this.px = new Uint8Array(w * h * 3).fill(255);
  }
  set(x: number, y: number, rgb: readonly [number, number, number]): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.w || yi >= this.h) return;
    this.px.set(rgb, (yi * this.w + xi) * 3);
  }
  line(x0: number, y0: number, x1: number, y1: number, rgb: readonly [number, number, number], thick = 1): void {
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      for (let dx = 0; dx < thick; dx++) for (let dy = 0; dy < thick; dy++) this.set(x + dx, y + dy, rgb);
    }
  }
  text(s: string, x: number, y: number, scale = 2): void {
    [...s].forEach((ch, i) => {
      const g = FONT[ch] ?? FONT[' ']!;
      g.forEach((row, r) => {
        for (let c = 0; c < 3; c++) {
          if (!(row & (4 >> c))) continue;
          for (let a = 0; a < scale; a++) for (let b = 0; b < scale; b++) this.set(x + (i * 4 + c) * scale + a, y + r * scale + b, [0, 0, 0]);
        }
      });
    });
  }
  png(): Uint8Array {
    const raw = new Uint8Array((this.w * 3 + 1) * this.h);
    for (let y = 0; y < this.h; y++) raw.set(this.px.subarray(y * this.w * 3, (y + 1) * this.w * 3), y * (this.w * 3 + 1) + 1);
    const chunk = (type: string, data: Uint8Array): Uint8Array => {
      const out = new Uint8Array(12 + data.length);
      const v = new DataView(out.buffer);
      v.setUint32(0, data.length);
      out.set(new TextEncoder().encode(type), 4);
      out.set(data, 8);
      v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
      return out;
    };
    const ihdr = new Uint8Array(13);
    const hv = new DataView(ihdr.buffer);
    hv.setUint32(0, this.w);
    hv.setUint32(4, this.h);
    ihdr.set([8, 2, 0, 0, 0], 8);
    const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array())];
    const total = parts.reduce((s, p) => s + p.length, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(+v.toPrecision(3)));

/** A PNG of loss against step. */
export function lossPlotPng(losses: readonly { step: number; loss: number }[], width = 640, height = 360): Uint8Array {
  const r = new Raster(width, height);
  const [l, t, rr, b] = [70, 20, width - 20, height - 40];
  const pts = losses.filter((p) => Number.isFinite(p.loss));
  const maxStep = Math.max(1, ...pts.map((p) => p.step));
  const lo = Math.min(...pts.map((p) => p.loss), 0);
  const hi = Math.max(...pts.map((p) => p.loss), lo + 1e-6);
  const X = (s: number) => l + ((rr - l) * s) / maxStep;
  const Y = (v: number) => b - ((b - t) * (v - lo)) / (hi - lo);
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    r.line(l, Y(v), rr, Y(v), [225, 225, 225]);
    r.text(fmt(v), 4, Y(v) - 5);
    const s = Math.round((maxStep * i) / 4);
    r.text(String(s), X(s) - 8, b + 8);
  }
  r.line(l, t, l, b, [0, 0, 0]);
  r.line(l, b, rr, b, [0, 0, 0]);
  r.text('loss', 4, height - 14);
  r.text('step', rr - 40, height - 14);
  for (let i = 1; i < pts.length; i++) r.line(X(pts[i - 1]!.step), Y(pts[i - 1]!.loss), X(pts[i]!.step), Y(pts[i]!.loss), [31, 119, 180], 2);
  return r.png();
}
