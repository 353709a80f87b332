// The example trainer: a small MLP learns the two-spirals task, speaking
// Trainyard's trainer protocol (DESIGN §5). See trainers/README.md.
//
//   npx tsx trainers/example/train.ts
//
// Reads only TRAINYARD_* variables. Exit codes: 0 done, 2 bad parameters,
// 143 stopped by SIGTERM (130 by SIGINT) after saving a checkpoint, 1 crash.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CHECKPOINT_FILE,
  loadCheckpoint,
  saveCheckpoint,
  type Checkpoint,
  type CheckpointConfig,
} from './checkpoint.js';
import { BatchSampler, makeSpirals, trainTestSplit } from './data.js';
import { MetricsWriter, type MetricsPoint } from './metrics.js';
import { Adam, Mlp } from './mlp.js';
import { ParamError, parseParams, TEST_FRACTION, type Params } from './params.js';
import { Rng } from './rng.js';
import { learningRate } from './schedule.js';

const NAME = 'example trainer';
const SIGNAL_EXIT: Record<string, number> = { SIGTERM: 143, SIGINT: 130 };

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const warn = (line: string): void => void process.stderr.write(`${NAME}: warning: ${line}\n`);

function fmt(value: number, digits = 4): string {
  if (!Number.isFinite(value)) return String(value);
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(digits - 1);
  return value.toPrecision(digits);
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function sameConfig(a: CheckpointConfig, b: CheckpointConfig): string | null {
  for (const key of Object.keys(a) as (keyof CheckpointConfig)[]) {
    if (a[key] !== b[key]) return `${key} was ${a[key]}, now ${b[key]}`;
  }
  return null;
}

async function main(): Promise<number> {
  const env = process.env;
  let params: Params;
  try {
    const parsed = parseParams({ params: env.TRAINYARD_PARAMS, totalSteps: env.TRAINYARD_TOTAL_STEPS });
    params = parsed.params;
    for (const w of parsed.warnings) warn(w);
  } catch (err) {
    if (err instanceof ParamError) {
      process.stderr.write(`${NAME}: invalid parameters: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  let runDir = env.TRAINYARD_RUN_DIR;
  if (!runDir) {
    runDir = process.cwd();
    warn(`TRAINYARD_RUN_DIR is not set; using the current directory ${runDir}`);
  }
  runDir = resolve(runDir);
  mkdirSync(runDir, { recursive: true });
  const metrics = new MetricsWriter(resolve(runDir, env.TRAINYARD_METRICS_FILE || 'metrics.jsonl'));

  // Stop requests are only noted here; the loop finishes its step, then saves. The cast
  // keeps TypeScript from narrowing it to null for the rest of the function: the handler sets it.
  let stopSignal = null as NodeJS.Signals | null;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopSignal) {
      warn(`${signal} again while stopping; still saving the checkpoint`);
      return;
    }
    stopSignal = signal;
    say(`${signal} received: finishing the current step, then saving a checkpoint`);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  // Data and model.
  const config: CheckpointConfig = {
    hidden: params.hidden,
    seed: params.seed,
    noise: params.noise,
    turns: params.turns,
    samples: params.samples,
  };
  const { train, test } = trainTestSplit(
    makeSpirals({ samples: params.samples, noise: params.noise, turns: params.turns, seed: params.seed }),
    TEST_FRACTION,
    params.seed,
  );
  const net = new Mlp([2, params.hidden, params.hidden, 2]);
  net.init(new Rng(params.seed));
  const adam = new Adam(net.params.length);
  const sampler = new BatchSampler(train.size, (params.seed + 1) >>> 0);
  const total = params.total_steps;

  say(
    `${NAME}: two spirals (${train.size} train / ${test.size} test points), MLP ${net.sizes.join('-')} ` +
      `(${net.params.length} weights), Adam, ${total} steps`,
  );
  say(`params: ${JSON.stringify(params)}`);

  // Resume from the previous run's checkpoint when there is one that fits.
  let step = 0;
  const previous = env.TRAINYARD_PREVIOUS_RUN_DIR;
  if (previous) {
    let checkpoint: Checkpoint | null = null;
    try {
      checkpoint = loadCheckpoint(previous);
      if (!checkpoint) warn(`no ${CHECKPOINT_FILE} in ${previous}; starting from scratch`);
    } catch (err) {
      warn(`cannot use ${join(previous, CHECKPOINT_FILE)} (${(err as Error).message}); starting from scratch`);
    }
    const mismatch = checkpoint && sameConfig(checkpoint.config, config);
    if (checkpoint && mismatch) {
      warn(`checkpoint in ${previous} is for different data or model (${mismatch}); starting from scratch`);
    } else if (
      checkpoint &&
      (checkpoint.weights.length !== net.params.length || checkpoint.sampler.order.length !== train.size)
    ) {
      warn(`checkpoint in ${previous} does not fit this model; starting from scratch`);
    } else if (checkpoint) {
      net.params.set(checkpoint.weights);
      adam.m.set(checkpoint.adam.m);
      adam.v.set(checkpoint.adam.v);
      adam.t = checkpoint.adam.t;
      sampler.rng.setState(checkpoint.sampler.rng);
      sampler.order.set(checkpoint.sampler.order);
      sampler.cursor = checkpoint.sampler.cursor;
      step = Math.min(checkpoint.step, total);
      say(`resumed from ${join(previous, CHECKPOINT_FILE)} at step ${checkpoint.step}`);
      if (checkpoint.step >= total)
        warn(`checkpoint step ${checkpoint.step} is not below total_steps ${total}; nothing left to train`);
    }
  }

  const checkpointNow = (): string =>
    saveCheckpoint(runDir, {
      step,
      total_steps: total,
      config,
      weights: Array.from(net.params),
      adam: { t: adam.t, m: Array.from(adam.m), v: Array.from(adam.v) },
      sampler: { rng: sampler.rng.getState(), order: Array.from(sampler.order), cursor: sampler.cursor },
    });

  const epochOf = (s: number): number => Math.floor((s * params.batch_size) / train.size);
  const batch = new Int32Array(params.batch_size);
  const schedule = { baseLr: params.learning_rate, warmupSteps: params.warmup_steps, totalSteps: total };

  // Where the run starts from: a test evaluation, so the accuracy curve has its first point.
  const first = net.evaluate(test.x, test.y, test.size);
  metrics.write({
    step,
    total_steps: total,
    epoch: epochOf(step),
    test_accuracy: first.accuracy,
    test_loss: first.loss,
  });
  say(`step ${step}/${total}  test_accuracy ${fmt(first.accuracy, 3)}  test_loss ${fmt(first.loss)}`);

  let lossSum = 0;
  let lossCount = 0;
  let lastLr = NaN;
  let warnedNaN = false;
  let lastLoggedStep = step;
  const startedAt = Date.now();
  const startStep = step;

  const logLoss = (point: MetricsPoint): void => {
    point.lr = lastLr;
    point.loss = lossSum / lossCount;
    lossSum = 0;
    lossCount = 0;
    lastLoggedStep = step;
  };

  while (step < total && !stopSignal) {
    const lr = learningRate(step + 1, schedule);
    sampler.next(params.batch_size, batch);
    const loss = net.lossAndGrad(train.x, train.y, batch, params.batch_size);
    adam.step(net.params, net.grads, lr);
    step++;
    lossSum += loss;
    lossCount++;
    lastLr = lr;
    if (!Number.isFinite(loss) && !warnedNaN) {
      warnedNaN = true;
      warn(`loss is ${loss} at step ${step}: training diverged (try a lower learning_rate)`);
    }

    const point: MetricsPoint = { step, total_steps: total, epoch: epochOf(step) };
    const done = step === total;
    if (step % params.log_every === 0 || done) logLoss(point);
    if (step % params.eval_every === 0 || done) {
      const evaluation = net.evaluate(test.x, test.y, test.size);
      point.test_accuracy = evaluation.accuracy;
      point.test_loss = evaluation.loss;
      const elapsed = Date.now() - startedAt;
      const rate = (step - startStep) / Math.max(elapsed, 1);
      say(
        `step ${step}/${total}  epoch ${point.epoch}  lr ${fmt(lr, 3)}  loss ${fmt(point.loss ?? NaN)}  ` +
          `test_accuracy ${fmt(evaluation.accuracy, 3)}  (${(rate * 1000).toFixed(1)} steps/s, eta ${duration((total - step) / rate)})`,
      );
    }
    if (Object.keys(point).length > 3) metrics.write(point);
    if (params.checkpoint_every > 0 && step % params.checkpoint_every === 0 && !done) checkpointNow();

    // The pause makes a demo run watchable; without one, still let signals in now and then.
    if (params.step_delay_ms > 0) await sleep(params.step_delay_ms);
    else if (step % 25 === 0) await new Promise((r) => setImmediate(r));
  }

  if (stopSignal) {
    // Close the loss curve at the step where training stopped.
    if (lossCount > 0 && lastLoggedStep !== step) {
      const point: MetricsPoint = { step, total_steps: total, epoch: epochOf(step) };
      logLoss(point);
      metrics.write(point);
    }
    const file = checkpointNow();
    say(`stopped by ${stopSignal} at step ${step}/${total}; checkpoint saved to ${file}`);
    return SIGNAL_EXIT[stopSignal] ?? 143;
  }

  const file = checkpointNow();
  const final = net.evaluate(test.x, test.y, test.size);
  say(
    `done: ${total} steps in ${duration(Date.now() - startedAt)}, test_accuracy ${fmt(final.accuracy, 3)}, ` +
      `test_loss ${fmt(final.loss)}; final weights in ${file}`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${NAME}: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
