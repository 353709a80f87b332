// checkpoint.json: everything a resumed run needs to continue exactly where
// the stopped one left off — weights, Adam moments, step, the batch sampler's
// generator state and order. Written to a temporary file, flushed and renamed
// into place, so a reader sees the old checkpoint or the new one, never half.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { RngState } from './rng.js';

export const CHECKPOINT_FILE = 'checkpoint.json';
const FORMAT = 'trainyard-example-checkpoint';
const VERSION = 1;

/** What must match for a checkpoint to fit the current run (data and model shape). */
export interface CheckpointConfig {
  hidden: number;
  seed: number;
  noise: number;
  turns: number;
  samples: number;
}

export interface Checkpoint {
  format: typeof FORMAT;
  version: typeof VERSION;
  step: number;
  total_steps: number;
  config: CheckpointConfig;
  weights: number[];
  adam: { t: number; m: number[]; v: number[] };
  sampler: { rng: RngState; order: number[]; cursor: number };
  saved_at: string;
}

export type CheckpointData = Omit<Checkpoint, 'format' | 'version' | 'saved_at'>;

export function saveCheckpoint(runDir: string, data: CheckpointData): string {
  const file = join(runDir, CHECKPOINT_FILE);
  const checkpoint: Checkpoint = { format: FORMAT, version: VERSION, ...data, saved_at: new Date().toISOString() };
  writeFileAtomic(file, JSON.stringify(checkpoint) + '\n');
  return file;
}

export function writeFileAtomic(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

// JSON has no NaN: a diverged run's weights come back as null; read them as NaN.
function numbers(value: unknown, what: string, length?: number): number[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not an array`);
  if (length !== undefined && value.length !== length)
    throw new Error(`${what} has ${value.length} entries, expected ${length}`);
  return value.map((v, i) => {
    if (v === null) return NaN;
    if (typeof v !== 'number') throw new Error(`${what}[${i}] is not a number`);
    return v;
  });
}

function integer(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
    throw new Error(`${what} is not a non-negative integer`);
  return value;
}

/**
 * Reads and checks a checkpoint. Returns null when the file does not exist;
 * throws with the reason when it exists but cannot be used.
 */
export function loadCheckpoint(dir: string): Checkpoint | null {
  const file = join(dir, CHECKPOINT_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const raw = JSON.parse(text) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object' || raw.format !== FORMAT)
    throw new Error('not a checkpoint of this trainer');
  if (raw.version !== VERSION) throw new Error(`checkpoint version ${String(raw.version)} is not supported`);
  const config = raw.config as Record<string, unknown> | undefined;
  const adam = raw.adam as Record<string, unknown> | undefined;
  const sampler = raw.sampler as Record<string, unknown> | undefined;
  if (!config || !adam || !sampler) throw new Error('checkpoint is incomplete');
  const weights = numbers(raw.weights, 'weights');
  const rng = numbers(sampler.rng, 'sampler.rng', 4);
  if (rng.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff))
    throw new Error('sampler.rng is not four 32-bit words');
  const order = numbers(sampler.order, 'sampler.order');
  return {
    format: FORMAT,
    version: VERSION,
    step: integer(raw.step, 'step'),
    total_steps: integer(raw.total_steps, 'total_steps'),
    config: {
      hidden: integer(config.hidden, 'config.hidden'),
      seed: integer(config.seed, 'config.seed'),
      noise: numbers([config.noise], 'config.noise')[0]!,
      turns: numbers([config.turns], 'config.turns')[0]!,
      samples: integer(config.samples, 'config.samples'),
    },
    weights,
    adam: {
      t: integer(adam.t, 'adam.t'),
      m: numbers(adam.m, 'adam.m', weights.length),
      v: numbers(adam.v, 'adam.v', weights.length),
    },
    sampler: { rng: rng as RngState, order, cursor: integer(sampler.cursor, 'sampler.cursor') },
    saved_at: typeof raw.saved_at === 'string' ? raw.saved_at : '',
  };
}
