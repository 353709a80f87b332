import { describe, expect, it } from 'vitest';
import {
  defaultName,
  differingKeys,
  distributionProblem,
  expandGrid,
  gridSize,
  mulberry32,
  sampleRandom,
  spread,
} from '../../domain/sweep.js';

describe('grid expansion', () => {
  it('is the cartesian product, the first key changing slowest', () => {
    expect(expandGrid({ lr: [0.1, 0.01, 0.001], batch: [32, 64] })).toEqual([
      { lr: 0.1, batch: 32 },
      { lr: 0.1, batch: 64 },
      { lr: 0.01, batch: 32 },
      { lr: 0.01, batch: 64 },
      { lr: 0.001, batch: 32 },
      { lr: 0.001, batch: 64 },
    ]);
    expect(gridSize({ lr: [1, 2, 3], batch: [1, 2] })).toBe(6);
  });

  it('of no keys is the one point with no changes; an empty list makes none', () => {
    expect(expandGrid({})).toEqual([{}]);
    expect(expandGrid({ lr: [1, 2], batch: [] })).toEqual([]);
  });
});

describe('random samples', () => {
  const space = {
    lr: { logUniform: [1e-5, 1e-1] as [number, number] },
    dropout: { uniform: [0, 0.5] as [number, number] },
    opt: { choice: ['adam', 'sgd', 'adamw'] },
  };

  it('are the same for the same seed and differ for another', () => {
    const a = sampleRandom({ n: 20, seed: 42, space });
    expect(sampleRandom({ n: 20, seed: 42, space })).toEqual(a);
    expect(sampleRandom({ n: 20, seed: 43, space })).not.toEqual(a);
    expect(a).toHaveLength(20);
  });

  it('stay within their ranges and choices, log-uniform spread over decades', () => {
    const samples = sampleRandom({ n: 2000, seed: 7, space });
    for (const s of samples) {
      expect(s.lr as number).toBeGreaterThanOrEqual(1e-5);
      expect(s.lr as number).toBeLessThanOrEqual(1e-1);
      expect(s.dropout as number).toBeGreaterThanOrEqual(0);
      expect(s.dropout as number).toBeLessThanOrEqual(0.5);
      expect(['adam', 'sgd', 'adamw']).toContain(s.opt);
    }
    // Four decades, about a quarter each: a plain uniform would put ~90% in the top one.
    const belowMilli = samples.filter((s) => (s.lr as number) < 1e-3).length / samples.length;
    expect(belowMilli).toBeGreaterThan(0.4);
    expect(belowMilli).toBeLessThan(0.6);
    expect(new Set(samples.map((s) => s.opt)).size).toBe(3);
  });

  it('come from a generator whose first numbers are fixed for a seed', () => {
    const next = mulberry32(1);
    const first = [next(), next(), next()];
    const again = mulberry32(1);
    expect([again(), again(), again()]).toEqual(first);
    for (const x of first) expect(x >= 0 && x < 1).toBe(true);
    expect(first[0]).toBeCloseTo(0.6270739405881613, 12);
  });

  it('refuse distributions that are not one of the three', () => {
    expect(distributionProblem({ uniform: [0, 1] })).toBeNull();
    expect(distributionProblem({ logUniform: [1e-4, 1] })).toBeNull();
    expect(distributionProblem({ choice: [1, 'a'] })).toBeNull();
    expect(distributionProblem({ logUniform: [0, 1] })).toMatch(/above zero/);
    expect(distributionProblem({ uniform: [2, 1] })).toMatch(/above high/);
    expect(distributionProblem({ uniform: [0] })).toMatch(/two finite/);
    expect(distributionProblem({ choice: [] })).toMatch(/non-empty/);
    expect(distributionProblem({ normal: [0, 1] })).toMatch(/not uniform/);
    expect(distributionProblem({ uniform: [0, 1], choice: [1] })).toMatch(/exactly one/);
    expect(distributionProblem([1, 2])).not.toBeNull();
  });
});

describe('spreading over machines', () => {
  it('goes round robin, or perMachine in a row', () => {
    expect(spread(6, [1, 2])).toEqual([1, 2, 1, 2, 1, 2]);
    expect(spread(4, [5, 6], 2)).toEqual([5, 5, 6, 6]);
    expect(spread(3, [9])).toEqual([9, 9, 9]);
  });
});

describe('default names', () => {
  it('are the template name and the params that differ from its own', () => {
    const template = { lr: 0.01, batch: 32, opt: 'adam' };
    expect(defaultName('mnist', template, { lr: 0.003, batch: 64, opt: 'adam' })).toBe('mnist lr=0.003 batch=64');
    expect(defaultName('mnist', template, { ...template })).toBe('mnist');
    expect(defaultName('mnist', template, { opt: 'sgd', layers: [1, 2] })).toBe('mnist opt=sgd layers=[1,2]');
    expect(differingKeys(template, { lr: 0.01, batch: 16 })).toEqual(['batch']);
  });
});
