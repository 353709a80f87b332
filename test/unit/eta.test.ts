import { describe, expect, it } from 'vitest';
import { estimate, initialEta, observe, type EtaState } from '../../domain/eta.js';

const T0 = 1_700_000_000_000;

// A deterministic stream of numbers in [0, 1), so "noisy" runs are repeatable.
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** Feeds reports of a run going at `stepsPerSecond` every `intervalMs` for `count` reports. */
function run(
  state: EtaState,
  from: { step: number; atMs: number },
  stepsPerSecond: number,
  intervalMs: number,
  count: number,
  totalSteps?: number,
): { state: EtaState; step: number; atMs: number } {
  let { step, atMs } = from;
  let s = state;
  for (let i = 0; i < count; i++) {
    atMs += intervalMs;
    step += (stepsPerSecond * intervalMs) / 1000;
    s = observe(s, { step, totalSteps, atMs });
  }
  return { state: s, step, atMs };
}

describe('eta: null until it can be estimated', () => {
  it('knows nothing before the first report', () => {
    expect(estimate(initialEta(), T0)).toEqual({
      progress: null,
      fraction: null,
      etaSeconds: null,
      stepsPerSecond: null,
    });
  });

  it('shows progress but no ETA after a single report', () => {
    const s = observe(initialEta(), { step: 10, totalSteps: 100, atMs: T0 });
    expect(estimate(s, T0)).toEqual({
      progress: { step: 10, totalSteps: 100 },
      fraction: 0.1,
      etaSeconds: null,
      stepsPerSecond: null,
    });
  });

  it('has no ETA or fraction without a total', () => {
    let s = observe(initialEta(), { step: 0, atMs: T0 });
    s = observe(s, { step: 10, atMs: T0 + 1000 });
    const e = estimate(s, T0 + 1000);
    expect(e.progress).toEqual({ step: 10, totalSteps: null });
    expect(e.fraction).toBeNull();
    expect(e.etaSeconds).toBeNull();
    expect(e.stepsPerSecond).toBeCloseTo(10);
  });

  it('has no ETA while the step has never advanced (zero rate)', () => {
    let s = initialEta({ totalSteps: 100 });
    for (let i = 0; i < 5; i++) s = observe(s, { step: 0, atMs: T0 + i * 1000 });
    expect(estimate(s, T0 + 5000).etaSeconds).toBeNull();
  });

  it('has no ETA when the only advance took no measurable time', () => {
    let s = observe(initialEta({ totalSteps: 100 }), { step: 0, atMs: T0 });
    s = observe(s, { step: 5, atMs: T0 });
    expect(estimate(s, T0).etaSeconds).toBeNull();
  });

  it('is zero once the total is reached', () => {
    let s = observe(initialEta(), { step: 0, totalSteps: 100, atMs: T0 });
    s = observe(s, { step: 100, atMs: T0 + 1000 });
    expect(estimate(s, T0 + 60_000)).toMatchObject({ fraction: 1, etaSeconds: 0 });
  });

  it('ignores reports with a broken step or time', () => {
    const s = observe(initialEta(), { step: 1, totalSteps: 10, atMs: T0 });
    expect(observe(s, { step: Number.NaN, atMs: T0 + 1 })).toBe(s);
    expect(observe(s, { step: -1, atMs: T0 + 1 })).toBe(s);
    expect(observe(s, { step: 5, atMs: Number.NaN })).toBe(s);
  });
});

describe('eta: steady runs', () => {
  it('converges to the true remaining time within 5%', () => {
    const total = 100_000;
    let s = observe(initialEta({ totalSteps: total }), { step: 0, atMs: T0 });
    const r = run(s, { step: 0, atMs: T0 }, 25, 1000, 120);
    s = r.state;
    const truth = (total - r.step) / 25;
    const e = estimate(s, r.atMs);
    expect(Math.abs(e.etaSeconds! - truth) / truth).toBeLessThan(0.05);
    expect(e.fraction).toBeCloseTo(r.step / total);
  });

  it('copes with irregular reporting intervals and noisy step times', () => {
    const rand = lcg(42);
    const total = 50_000;
    const meanRate = 20; // steps per second
    let s = observe(initialEta({ totalSteps: total }), { step: 0, atMs: T0 });
    let step = 0;
    let atMs = T0;
    for (let i = 0; i < 300; i++) {
      const intervalMs = 200 + rand() * 4800; // 0.2 s to 5 s between reports
      const rate = meanRate * (0.8 + rand() * 0.4); // ±20% per interval
      atMs += intervalMs;
      step += Math.round((rate * intervalMs) / 1000);
      s = observe(s, { step, atMs });
    }
    const truth = (total - step) / meanRate;
    const eta = estimate(s, atMs).etaSeconds!;
    expect(Math.abs(eta - truth) / truth).toBeLessThan(0.05);
  });

  it('counts a backlog read in one burst against the time it really took', () => {
    // Reports every second, then a 100 s gap (worker restarted) after which the
    // reader catches up in ten reads a millisecond apart.
    const total = 100_000;
    const r = run(
      observe(initialEta({ totalSteps: total }), { step: 0, atMs: T0 }),
      { step: 0, atMs: T0 },
      10,
      1000,
      60,
    );
    let s = r.state;
    let { step, atMs } = r;
    atMs += 100_000;
    for (let i = 0; i < 10; i++) {
      step += 100;
      s = observe(s, { step, atMs: atMs + i });
    }
    const rate = estimate(s, atMs + 10).stepsPerSecond!;
    expect(rate).toBeGreaterThan(8);
    expect(rate).toBeLessThan(12.5);
  });

  it('does not inflate the estimate for ordinary jitter between reports', () => {
    const total = 100_000;
    const r = run(
      observe(initialEta({ totalSteps: total }), { step: 0, atMs: T0 }),
      { step: 0, atMs: T0 },
      10,
      1000,
      60,
    );
    const atReport = estimate(r.state, r.atMs).etaSeconds!;
    // One and a half usual intervals without a report: still counting down.
    const later = estimate(r.state, r.atMs + 1500).etaSeconds!;
    expect(later).toBeLessThan(atReport);
    expect(later).toBeCloseTo(atReport - 1.5, 3);
  });
});

describe('eta: changing runs', () => {
  it('adapts to a run that doubles its speed within a bounded number of reports', () => {
    const total = 1_000_000;
    let r = run(
      observe(initialEta({ totalSteps: total }), { step: 0, atMs: T0 }),
      { step: 0, atMs: T0 },
      10,
      5000,
      120,
    );
    // Now twice as fast, reporting every 5 s.
    r = run(r.state, r, 20, 5000, 1);
    const truthAfterOne = (total - r.step) / 20;
    const afterOne = estimate(r.state, r.atMs).etaSeconds!;
    // Smoothed: one fast interval does not swing the estimate all the way.
    expect(afterOne / truthAfterOne).toBeGreaterThan(1.5);

    let reports = 1;
    for (; reports < 40; reports++) {
      const truth = (total - r.step) / 20;
      const eta = estimate(r.state, r.atMs).etaSeconds!;
      if (Math.abs(eta - truth) / truth < 0.1) break;
      r = run(r.state, r, 20, 5000, 1);
    }
    expect(reports).toBeLessThan(40);
  });

  it('shows a growing ETA for a stalled run', () => {
    const total = 10_000;
    const r = run(
      observe(initialEta({ totalSteps: total }), { step: 0, atMs: T0 }),
      { step: 0, atMs: T0 },
      10,
      1000,
      60,
    );
    const before = estimate(r.state, r.atMs).etaSeconds!;
    const silences = [10_000, 60_000, 600_000, 3_600_000];
    const etas = silences.map((idle) => estimate(r.state, r.atMs + idle).etaSeconds!);
    expect(etas[0]).toBeGreaterThan(before);
    for (let i = 1; i < etas.length; i++) expect(etas[i]).toBeGreaterThan(etas[i - 1]!);
  });

  it('keeps growing when a run stalls one report before its end', () => {
    let s = observe(initialEta({ totalSteps: 100 }), { step: 0, atMs: T0 });
    for (let i = 1; i <= 9; i++) s = observe(s, { step: i * 10, atMs: T0 + i * 1000 });
    const at = T0 + 9000;
    const etas = [0, 5_000, 30_000, 300_000].map((idle) => estimate(s, at + idle).etaSeconds!);
    expect(etas[1]).toBeGreaterThan(etas[0]!);
    expect(etas[2]).toBeGreaterThan(etas[1]!);
    expect(etas[3]).toBeGreaterThan(60);
  });

  it('starts over when the step goes backwards (a resumed run)', () => {
    const total = 10_000;
    let r = run(
      observe(initialEta({ totalSteps: total }), { step: 0, atMs: T0 }),
      { step: 0, atMs: T0 },
      100,
      1000,
      50,
    );
    expect(r.step).toBe(5000);
    // Resumed from a checkpoint at step 4000, now at 10 steps/s.
    let s = observe(r.state, { step: 4000, atMs: r.atMs + 30_000 });
    expect(estimate(s, r.atMs + 30_000)).toMatchObject({
      progress: { step: 4000, totalSteps: total },
      etaSeconds: null,
    });
    r = run(s, { step: 4000, atMs: r.atMs + 30_000 }, 10, 1000, 3);
    s = r.state;
    expect(estimate(s, r.atMs).stepsPerSecond).toBeCloseTo(10);
    const truth = (total - r.step) / 10;
    expect(estimate(s, r.atMs).etaSeconds!).toBeCloseTo(truth, 6);
  });

  it('takes the total from a later report and keeps it when reports omit it', () => {
    let s = observe(initialEta(), { step: 0, atMs: T0 });
    s = observe(s, { step: 10, totalSteps: 1000, atMs: T0 + 1000 });
    s = observe(s, { step: 20, atMs: T0 + 2000 });
    expect(estimate(s, T0 + 2000)).toMatchObject({ progress: { step: 20, totalSteps: 1000 }, etaSeconds: 98 });
  });
});

describe('eta state', () => {
  it('survives a JSON round trip through a database row', () => {
    const r = run(observe(initialEta({ totalSteps: 5000 }), { step: 0, atMs: T0 }), { step: 0, atMs: T0 }, 7, 1300, 20);
    const stored = JSON.parse(JSON.stringify(r.state)) as EtaState;
    expect(stored).toEqual(r.state);
    expect(estimate(stored, r.atMs + 500)).toEqual(estimate(r.state, r.atMs + 500));
  });

  it('is never changed in place', () => {
    const s = observe(initialEta({ totalSteps: 100 }), { step: 0, atMs: T0 });
    const copy = structuredClone(s);
    observe(s, { step: 10, atMs: T0 + 1000 });
    observe(s, { step: 0, totalSteps: 200, atMs: T0 + 1000 });
    expect(s).toEqual(copy);
  });

  it('refuses a nonsensical half-life', () => {
    expect(() => initialEta({ halfLifeMs: 0 })).toThrow(RangeError);
  });
});
