/**
 * @file The character corpus of the language model: the public-domain Moby-Dick chapters shipped
 * in models/data, a character vocabulary (sorted distinct characters), the ids of the first 90%
 * for training and the last 10% held out, and the unigram baseline (the cross-entropy of
 * predicting every held-out character from the training set's character frequencies).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdjointError } from '../ir/errors.js';

export interface TextCorpus {
  readonly vocab: readonly string[];
  readonly train: Int32Array;
  readonly test: Int32Array;
}

/** models/data/moby-dick.txt of the package, found from this file (in src/ or in dist/src/). */
function defaultPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'models', 'data', 'moby-dick.txt');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return 'models/data/moby-dick.txt';
}

export function loadText(path = defaultPath()): TextCorpus {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new AdjointError(`${path}: cannot read the text corpus`);
  }
  const vocab = [...new Set(text)].sort();
  const index = new Map(vocab.map((c, i) => [c, i]));
  const ids = Int32Array.from(text, (c) => index.get(c)!);
  const cut = Math.floor(ids.length * 0.9);
  return { vocab, train: ids.subarray(0, cut), test: ids.subarray(cut) };
}

/** Cross-entropy (nats per character) of the held-out text under the training unigram frequencies. */
export function unigramBaseline(c: TextCorpus): number {
  const counts = new Float64Array(c.vocab.length).fill(1); // add-one smoothing
  for (const id of c.train) counts[id]!++;
  const total = counts.reduce((s, v) => s + v, 0);
  let nll = 0;
  for (const id of c.test) nll -= Math.log(counts[id]! / total);
  return nll / c.test.length;
}
