/**
 * @file Every model file in models/ loads, verifies, and round-trips through JSON.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadModel, modelFromJson, modelToJson, verify } from '../src/ir/index.js';

const files = readdirSync('models').filter((f) => f.endsWith('.json'));

describe('models/', () => {
  for (const f of files) {
    it(`${f} loads, verifies and round-trips`, () => {
      const m = loadModel(readFileSync(`models/${f}`, 'utf8'), `models/${f}`);
      verify(m.graph, f);
      expect(m.loss).toBeDefined();
      expect(m.optimizer).toBeDefined();
      const again = modelFromJson(JSON.parse(JSON.stringify(modelToJson(m))));
      expect(again.graph).toEqual(m.graph);
    });
  }
});
