/**
 * @file The catalogue of malformed model files under test/bad-models/: each must fail to load with
 * a ModelFormatError whose message is exactly the one in test/bad-models/expected.json — one line,
 * naming the file and the place, with no stack trace. A file without an expected message, or an
 * expected message without its file, fails the run.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AdjointError, ModelFormatError, loadModel } from '../../src/ir/index.js';

const DIR = new URL('../bad-models/', import.meta.url);
const EXPECTED = JSON.parse(readFileSync(new URL('expected.json', DIR), 'utf8')) as Record<string, string>;
const FILES = readdirSync(DIR).filter((f) => f !== 'expected.json').sort();

describe('bad models', () => {
  it('every file has an expected message and every expected message has a file', () => {
    expect(FILES.filter((f) => !Object.hasOwn(EXPECTED, f))).toEqual([]);
    expect(Object.keys(EXPECTED).filter((f) => !FILES.includes(f))).toEqual([]);
    expect(FILES.length).toBeGreaterThanOrEqual(20);
  });

  it.each(FILES)('%s', (file) => {
    const text = readFileSync(new URL(file, DIR), 'utf8');
    let err: unknown;
    try {
      loadModel(text, file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err).toBeInstanceOf(AdjointError);
    const msg = (err as Error).message;
    expect(msg).toBe(EXPECTED[file]);
    expect(msg).not.toMatch(/[\n\r]/);
    expect(msg).not.toContain('    at ');
    expect(msg.startsWith(`${file}: `)).toBe(true);
  });
});
