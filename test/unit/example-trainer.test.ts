// The bundled example trainer: its pieces in-process, and the protocol end to
// end through real child processes writing real files in a temp directory.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../../trainers/example/checkpoint.js';
import { makeSpirals, trainTestSplit } from '../../trainers/example/data.js';
import { formatMetricsLine } from '../../trainers/example/metrics.js';
import { Mlp } from '../../trainers/example/mlp.js';
import { ParamError, parseParams } from '../../trainers/example/params.js';
import { Rng } from '../../trainers/example/rng.js';
import { learningRate } from '../../trainers/example/schedule.js';

const repo = resolve(import.meta.dirname, '../..');
const tsx = join(repo, 'node_modules/.bin/tsx');
const entry = join(repo, 'trainers/example/train.ts');
const root = mkdtempSync(join(tmpdir(), 'trainyard-example-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Run {
  dir: string;
  metricsFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(signal: NodeJS.Signals): void;
}

let runCounter = 0;
function startRun(opts: { params?: string; totalSteps?: string; previous?: string } = {}): Run {
  const dir = join(root, `run-${++runCounter}`);
  mkdirSync(dir);
  const metricsFile = join(dir, 'metrics.jsonl');
  // Only what the platform passes: the protocol variables plus PATH and HOME.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
  env.TRAINYARD_RUN_DIR = dir;
  env.TRAINYARD_METRICS_FILE = metricsFile;
  if (opts.params !== undefined) env.TRAINYARD_PARAMS = opts.params;
  if (opts.totalSteps !== undefined) env.TRAINYARD_TOTAL_STEPS = opts.totalSteps;
  if (opts.previous !== undefined) env.TRAINYARD_PREVIOUS_RUN_DIR = opts.previous;
  const child = spawn(tsx, [entry], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (res, rej) => {
      child.on('error', rej);
      child.on('close', (code, signal) => res({ code, signal, stdout, stderr }));
    },
  );
  return { dir, metricsFile, exited, kill: (signal) => child.kill(signal) };
}

type Point = Record<string, number>;
function readMetrics(file: string): Point[] {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (text !== '') expect(text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Point);
}

const series = (points: Point[], key: string): Point[] => points.filter((p) => key in p);

describe('example trainer pieces', () => {
  it('writes non-finite numbers the way Python json.dumps does', () => {
    expect(formatMetricsLine({ step: 3, loss: NaN, lr: 0.5 })).toBe('{"step":3,"loss":NaN,"lr":0.5}\n');
    expect(formatMetricsLine({ step: 4, loss: Infinity, x: -Infinity })).toBe(
      '{"step":4,"loss":Infinity,"x":-Infinity}\n',
    );
  });

  it('schedules a linear warm-up then a cosine decay', () => {
    const opts = { baseLr: 0.01, warmupSteps: 100, totalSteps: 1000 };
    expect(learningRate(1, opts)).toBeCloseTo(0.0001);
    expect(learningRate(50, opts)).toBeCloseTo(0.005);
    expect(learningRate(100, opts)).toBeCloseTo(0.01);
    expect(learningRate(550, opts)).toBeCloseTo(0.005);
    expect(learningRate(1000, opts)).toBeCloseTo(0);
    for (let s = 101; s <= 1000; s++) expect(learningRate(s, opts)).toBeLessThanOrEqual(learningRate(s - 1, opts));
  });

  it('parses parameters: defaults, numeric strings, unknown keys, TRAINYARD_TOTAL_STEPS', () => {
    const none = parseParams({});
    expect(none.params.total_steps).toBe(3000);
    expect(none.params.warmup_steps).toBe(300);
    const some = parseParams({ params: '{"learning_rate":"0.02","hidden":16,"colour":"red"}', totalSteps: '500' });
    expect(some.params).toMatchObject({ learning_rate: 0.02, hidden: 16, total_steps: 500, warmup_steps: 50 });
    expect(some.warnings.join('\n')).toContain('colour');
    for (const bad of [
      '{',
      '[1]',
      '"x"',
      '{"learning_rate":0}',
      '{"batch_size":2.5}',
      '{"seed":"abc"}',
      '{"warmup_steps":10,"total_steps":5}',
      '{"batch_size":900}',
    ]) {
      expect(() => parseParams({ params: bad }), bad).toThrow(ParamError);
    }
    expect(() => parseParams({ totalSteps: 'lots' })).toThrow(/TRAINYARD_TOTAL_STEPS/);
  });

  it('computes exact gradients (finite differences)', () => {
    const net = new Mlp([2, 5, 4, 2]);
    net.init(new Rng(7));
    const { train } = trainTestSplit(makeSpirals({ samples: 40, noise: 0.05, turns: 1.75, seed: 1 }), 0.2, 1);
    const idx = Int32Array.from([0, 3, 5, 8]);
    net.lossAndGrad(train.x, train.y, idx, idx.length);
    const grads = Float64Array.from(net.grads);
    for (let i = 0; i < net.params.length; i++) {
      const orig = net.params[i]!;
      net.params[i] = orig + 1e-6;
      const up = net.lossAndGrad(train.x, train.y, idx, idx.length);
      net.params[i] = orig - 1e-6;
      const down = net.lossAndGrad(train.x, train.y, idx, idx.length);
      net.params[i] = orig;
      expect(Math.abs((up - down) / 2e-6 - grads[i]!)).toBeLessThan(1e-6);
    }
  });

  it('round-trips a checkpoint atomically, NaN weights included', () => {
    const dir = mkdtempSync(join(root, 'ckpt-'));
    expect(loadCheckpoint(dir)).toBeNull();
    const rng = new Rng(5);
    rng.nextU32();
    saveCheckpoint(dir, {
      step: 12,
      total_steps: 100,
      config: { hidden: 2, seed: 5, noise: 0.05, turns: 1.75, samples: 10 },
      weights: [0.5, NaN, -1.25],
      adam: { t: 12, m: [0.1, 0.2, 0.3], v: [1, 2, 3] },
      sampler: { rng: rng.getState(), order: [2, 0, 1], cursor: 1 },
    });
    expect(readdirSync(dir)).toEqual(['checkpoint.json']);
    const back = loadCheckpoint(dir)!;
    expect(back.step).toBe(12);
    expect(back.weights).toEqual([0.5, NaN, -1.25]);
    const again = Rng.fromState(back.sampler.rng);
    expect(again.nextU32()).toBe(rng.nextU32());
  });
});

describe('example trainer process', () => {
  it('learns the spirals, writes protocol lines and exits 0', async () => {
    const run = startRun({
      params: '{"learning_rate":0.02,"seed":3,"step_delay_ms":0,"colour":"red"}',
      totalSteps: '1500',
    });
    const result = await run.exited;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('ignoring unknown parameter "colour"');
    expect(result.stdout).toMatch(/step 1500\/1500/);

    const points = readMetrics(run.metricsFile);
    const steps = points.map((p) => p.step!);
    for (let i = 1; i < steps.length; i++) expect(steps[i]!).toBeGreaterThan(steps[i - 1]!);
    expect(steps[0]).toBe(0);
    expect(steps.at(-1)).toBe(1500);
    for (const p of points) expect(p.total_steps).toBe(1500);

    const losses = series(points, 'loss').map((p) => p.loss!);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(losses.length).toBe(150);
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)) / 3);

    const accuracy = series(points, 'test_accuracy').map((p) => p.test_accuracy!);
    expect(accuracy[0]!).toBeLessThan(0.7); // chance level at step 0
    expect(accuracy.at(-1)!).toBeGreaterThan(0.85); // ≥ 0.93 over 20 seeds measured

    // The lr curve is a hump peaking at the end of the warm-up (10% of 1500 steps).
    const lrs = series(points, 'lr');
    const peak = lrs.reduce((a, b) => (b.lr! > a.lr! ? b : a));
    expect(peak.step).toBe(150);
    expect(peak.lr).toBeCloseTo(0.02);
    expect(lrs[0]!.lr!).toBeLessThan(0.002);
    expect(lrs.at(-1)!.lr!).toBeLessThan(0.0001);

    expect(loadCheckpoint(run.dir)?.step).toBe(1500);
  }, 20_000);

  it('on SIGTERM saves a checkpoint and exits 143; the next run resumes from it exactly', async () => {
    const params = (delay: number): string =>
      JSON.stringify({ total_steps: 1000, step_delay_ms: delay, seed: 11, log_every: 7, eval_every: 40 });
    const straight = startRun({ params: params(0) });
    const first = startRun({ params: params(5) });
    // Let it get going, then stop it mid-run.
    const deadline = Date.now() + 10_000;
    while (series(readMetrics(first.metricsFile), 'loss').length < 15) {
      if (Date.now() > deadline) throw new Error('the trainer wrote no metrics');
      await new Promise((r) => setTimeout(r, 50));
    }
    first.kill('SIGTERM');
    const stopped = await first.exited;
    expect(stopped.code, stopped.stderr).toBe(143);
    expect(stopped.stdout).toMatch(/checkpoint saved/);

    const checkpoint = loadCheckpoint(first.dir);
    expect(checkpoint).not.toBeNull();
    const stopStep = checkpoint!.step;
    expect(stopStep).toBeGreaterThan(0);
    expect(stopStep).toBeLessThan(1000);
    // The loss curve of the stopped run reaches the step where it stopped.
    expect(readMetrics(first.metricsFile).at(-1)!.step).toBe(stopStep);

    const second = startRun({ params: params(0), previous: first.dir });
    const resumed = await second.exited;
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`resumed from ${join(first.dir, 'checkpoint.json')} at step ${stopStep}`);
    const points = readMetrics(second.metricsFile);
    expect(points[0]!.step).toBe(stopStep);
    expect(points.slice(1).every((p) => p.step! > stopStep)).toBe(true);
    expect(points.at(-1)!.step).toBe(1000);

    // Weights, optimizer, batch order all restored: same result as never stopping.
    const reference = await straight.exited;
    expect(reference.code, reference.stderr).toBe(0);
    const end = (file: string): Point => readMetrics(file).at(-1)!;
    expect(end(second.metricsFile).test_loss).toBe(end(straight.metricsFile).test_loss);
    expect(end(second.metricsFile).test_accuracy).toBe(end(straight.metricsFile).test_accuracy);
  }, 20_000);

  it('rejects bad parameters with exit code 2 and a message naming the problem', async () => {
    const cases: [string | undefined, string | undefined, RegExp][] = [
      ['{"learning_rate":', undefined, /not valid JSON/],
      ['[1,2]', undefined, /must be a JSON object/],
      ['{"batch_size":"many"}', undefined, /batch_size must be a number/],
      ['{"hidden":-3}', undefined, /hidden must be at least 1/],
      [undefined, 'zero', /TRAINYARD_TOTAL_STEPS must be a number/],
    ];
    const runs = cases.map(([params, totalSteps]) => startRun({ params, totalSteps }));
    for (const [i, run] of runs.entries()) {
      const result = await run.exited;
      expect(result.code, result.stdout + result.stderr).toBe(2);
      expect(result.stderr).toMatch(cases[i]![2]);
      expect(readMetrics(run.metricsFile)).toEqual([]);
    }
  }, 20_000);
});
