// The two-spirals task: two interleaved spiral arms, one per class, with
// Gaussian noise; a seeded shuffle splits it into train and test sets.

import { Rng } from './rng.js';

export interface Dataset {
  /** Row-major inputs, two coordinates per sample. */
  x: Float64Array;
  /** Class labels, 0 or 1. */
  y: Int32Array;
  size: number;
}

export interface SpiralOptions {
  samples: number; // total, split evenly between the two classes
  noise: number; // standard deviation of the Gaussian noise, relative to the outer radius
  turns: number; // how many turns each arm makes
  seed: number;
  /** Outer radius of the spirals (default 4): inputs of a few units keep the tanh units busy. */
  scale?: number;
}

export function makeSpirals(opts: SpiralOptions): Dataset {
  // The data has its own generator so the training stream never changes it.
  const rng = new Rng((opts.seed ^ 0x5eed5eed) >>> 0);
  const size = opts.samples;
  const x = new Float64Array(size * 2);
  const y = new Int32Array(size);
  const scale = opts.scale ?? 4;
  for (let i = 0; i < size; i++) {
    const label = i % 2;
    // Radius grows with the angle; sqrt spreads points evenly along the arm.
    const t = 0.08 + 0.92 * Math.sqrt(rng.uniform());
    const angle = t * opts.turns * 2 * Math.PI + label * Math.PI;
    x[2 * i] = scale * (t * Math.cos(angle) + opts.noise * rng.normal());
    x[2 * i + 1] = scale * (t * Math.sin(angle) + opts.noise * rng.normal());
    y[i] = label;
  }
  return { x, y, size };
}

/** Shuffles the samples (seeded) and splits off the last `testFraction` as the test set. */
export function trainTestSplit(data: Dataset, testFraction: number, seed: number): { train: Dataset; test: Dataset } {
  const rng = new Rng((seed ^ 0x7e577e57) >>> 0);
  const order = new Int32Array(data.size);
  for (let i = 0; i < data.size; i++) order[i] = i;
  rng.shuffle(order);
  const nTest = Math.max(1, Math.round(data.size * testFraction));
  const nTrain = data.size - nTest;
  const pick = (from: number, to: number): Dataset => {
    const n = to - from;
    const x = new Float64Array(n * 2);
    const y = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const src = order[from + k]!;
      x[2 * k] = data.x[2 * src]!;
      x[2 * k + 1] = data.x[2 * src + 1]!;
      y[k] = data.y[src]!;
    }
    return { x, y, size: n };
  };
  return { train: pick(0, nTrain), test: pick(nTrain, data.size) };
}

/**
 * Yields mini-batches of sample indices: each epoch visits every training
 * sample once in a fresh shuffled order. Its whole state (generator, order,
 * position) goes into a checkpoint, so a resumed run sees the same batches.
 */
export class BatchSampler {
  readonly rng: Rng;
  order: Int32Array;
  cursor: number;

  constructor(
    readonly size: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    this.order = new Int32Array(size);
    for (let i = 0; i < size; i++) this.order[i] = i;
    this.rng.shuffle(this.order);
    this.cursor = 0;
  }

  next(batchSize: number, out: Int32Array): void {
    for (let k = 0; k < batchSize; k++) {
      if (this.cursor >= this.size) {
        this.rng.shuffle(this.order);
        this.cursor = 0;
      }
      out[k] = this.order[this.cursor++]!;
    }
  }
}
