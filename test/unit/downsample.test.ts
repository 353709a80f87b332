import { describe, expect, it } from 'vitest';
import { downsample, downsampleIndices, type SeriesPoint } from '../../domain/downsample.js';

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** A noisy decaying loss curve with steps 0, 10, 20, … */
function lossCurve(n: number, seed = 1): SeriesPoint[] {
  const rand = lcg(seed);
  const points: SeriesPoint[] = new Array(n);
  for (let i = 0; i < n; i++) points[i] = [i * 10, 2 * Math.exp(-i / (n / 5)) + 0.05 * rand()];
  return points;
}

function expectStepOrder(points: SeriesPoint[]): void {
  for (let i = 1; i < points.length; i++) expect(points[i]![0]).toBeGreaterThan(points[i - 1]![0]);
}

function kinds(points: SeriesPoint[]): { nan: number; pos: number; neg: number } {
  let nan = 0;
  let pos = 0;
  let neg = 0;
  for (const [, v] of points) {
    if (Number.isNaN(v)) nan++;
    else if (v === Number.POSITIVE_INFINITY) pos++;
    else if (v === Number.NEGATIVE_INFINITY) neg++;
  }
  return { nan, pos, neg };
}

describe('downsample', () => {
  it('returns a small series untouched', () => {
    const points = lossCurve(50);
    const out = downsample(points, 50);
    expect(out).toEqual(points);
    expect(out).not.toBe(points);
    expect(downsample([], 2)).toEqual([]);
    expect(downsample([[0, Number.NaN]], 2)).toEqual([[0, Number.NaN]]);
  });

  it('never returns more than maxPoints, for small and odd budgets too', () => {
    const finite = lossCurve(10_001);
    const messy = lossCurve(10_001).map(([s, v], i): SeriesPoint => {
      if (i % 7 === 3) return [s, Number.NaN];
      if (i % 11 === 5) return [s, Number.POSITIVE_INFINITY];
      if (i % 13 === 6) return [s, Number.NEGATIVE_INFINITY];
      return [s, v];
    });
    for (const series of [finite, messy]) {
      for (const maxPoints of [2, 3, 4, 5, 6, 7, 11, 100, 1999, 2000]) {
        const out = downsample(series, maxPoints);
        expect(out.length).toBeLessThanOrEqual(maxPoints);
        expect(out[0]).toBe(series[0]);
        expect(out[out.length - 1]).toBe(series[series.length - 1]);
        expectStepOrder(out);
      }
    }
  });

  it('uses the budget on a finite series', () => {
    const out = downsample(lossCurve(100_000), 2000);
    expect(out.length).toBeGreaterThan(1990);
    expect(out.length).toBeLessThanOrEqual(2000);
  });

  it('keeps the global minimum and maximum', () => {
    const points = lossCurve(50_000, 7);
    let min = 0;
    let max = 0;
    for (let i = 0; i < points.length; i++) {
      if (points[i]![1] < points[min]![1]) min = i;
      if (points[i]![1] > points[max]![1]) max = i;
    }
    const out = downsample(points, 101);
    expect(out).toContain(points[min]);
    expect(out).toContain(points[max]);
  });

  it('keeps a single spike among a million points', () => {
    const n = 1_000_000;
    const points = lossCurve(n, 3);
    const spikeAt = 612_345;
    points[spikeAt] = [points[spikeAt]![0], 1e9];
    const dipAt = 87_654;
    points[dipAt] = [points[dipAt]![0], -1e9];
    const out = downsample(points, 2000);
    expect(out.length).toBeLessThanOrEqual(2000);
    expect(out).toContain(points[spikeAt]);
    expect(out).toContain(points[dipAt]);
    expectStepOrder(out);
  });

  it('keeps NaN and both infinities, each kind in every bucket it appears in', () => {
    const n = 1_000_000;
    const points = lossCurve(n, 5);
    points[400_000] = [points[400_000]![0], Number.NaN];
    points[400_001] = [points[400_001]![0], Number.POSITIVE_INFINITY];
    points[400_002] = [points[400_002]![0], Number.NEGATIVE_INFINITY];
    points[900_000] = [points[900_000]![0], Number.NaN];
    const out = downsample(points, 2000);
    expect(out.length).toBeLessThanOrEqual(2000);
    expect(out).toContain(points[400_000]);
    expect(out).toContain(points[400_001]);
    expect(out).toContain(points[400_002]);
    expect(out).toContain(points[900_000]);
    expectStepOrder(out);
  });

  it('keeps the finite curve beside the infinities of a bucket', () => {
    // Ten points into three: one bucket of eight interior points.
    const values = [1, 5, Number.POSITIVE_INFINITY, 2, 9, 0.5, Number.NEGATIVE_INFINITY, 3, 4, 1];
    const points = values.map((v, i): SeriesPoint => [i, v]);
    expect(downsample(points, 7).map(([s]) => s)).toEqual([0, 2, 4, 5, 6, 9]);
  });

  it('prefers non-finite values when the budget cannot hold everything', () => {
    const values = [1, 5, Number.NaN, 9, 0.5, Number.POSITIVE_INFINITY, 2];
    const points = values.map((v, i): SeriesPoint => [i, v]);
    expect(downsample(points, 3).map(([s]) => s)).toEqual([0, 2, 6]);
    expect(downsample(points, 4).map(([s]) => s)).toEqual([0, 2, 5, 6]);
    expect(downsample(points, 5).map(([s]) => s)).toEqual([0, 2, 3, 5, 6]);
  });

  it('fits a series made mostly of NaN and infinities and still shows every kind', () => {
    const rand = lcg(11);
    const points: SeriesPoint[] = [];
    for (let i = 0; i < 200_000; i++) {
      const r = rand();
      points.push([
        i,
        r < 0.3 ? Number.NaN : r < 0.5 ? Number.POSITIVE_INFINITY : r < 0.7 ? Number.NEGATIVE_INFINITY : r,
      ]);
    }
    for (const maxPoints of [7, 50, 2000]) {
      const out = downsample(points, maxPoints);
      expect(out.length).toBeLessThanOrEqual(maxPoints);
      const k = kinds(out);
      expect(k.nan).toBeGreaterThan(0);
      expect(k.pos).toBeGreaterThan(0);
      expect(k.neg).toBeGreaterThan(0);
      expectStepOrder(out);
    }
  });

  it('gives indices straight from a column of values', () => {
    const values = new Float64Array(1000);
    for (let i = 0; i < values.length; i++) values[i] = Math.sin(i / 10);
    values[500] = Number.NaN;
    const keep = downsampleIndices(values, 100);
    expect(keep.length).toBeLessThanOrEqual(100);
    expect(keep[0]).toBe(0);
    expect(keep[keep.length - 1]).toBe(999);
    expect(keep).toContain(500);
    for (let i = 1; i < keep.length; i++) expect(keep[i]).toBeGreaterThan(keep[i - 1]!);
  });

  it('refuses a budget that cannot hold the first and last points', () => {
    expect(() => downsample(lossCurve(10), 1)).toThrow(RangeError);
    expect(() => downsample(lossCurve(10), 2.5)).toThrow(RangeError);
  });
});
