// A small multi-layer perceptron with tanh hidden layers and a softmax
// cross-entropy head, written out by hand: all weights live in one flat
// Float64Array so the optimizer and the checkpoint treat them as one vector.

import { Rng } from './rng.js';

interface Layer {
  inputs: number;
  outputs: number;
  w: number; // offset of the weights (outputs × inputs, row-major)
  b: number; // offset of the biases
}

export class Mlp {
  readonly sizes: readonly number[];
  readonly layers: Layer[];
  readonly params: Float64Array;
  readonly grads: Float64Array;
  // Per-sample activations (post-tanh for hidden layers, logits for the last) and backprop buffers.
  private readonly acts: Float64Array[];
  private readonly deltas: Float64Array[];

  constructor(sizes: readonly number[]) {
    if (sizes.length < 2) throw new Error('an MLP needs at least an input and an output size');
    this.sizes = sizes;
    this.layers = [];
    let offset = 0;
    for (let l = 0; l + 1 < sizes.length; l++) {
      const inputs = sizes[l]!;
      const outputs = sizes[l + 1]!;
      this.layers.push({ inputs, outputs, w: offset, b: offset + inputs * outputs });
      offset += inputs * outputs + outputs;
    }
    this.params = new Float64Array(offset);
    this.grads = new Float64Array(offset);
    this.acts = sizes.map((n) => new Float64Array(n));
    this.deltas = sizes.map((n) => new Float64Array(n));
  }

  get classes(): number {
    return this.sizes[this.sizes.length - 1]!;
  }

  /** Xavier/Glorot-normal weights (suits tanh), zero biases. */
  init(rng: Rng): void {
    this.params.fill(0);
    for (const layer of this.layers) {
      const std = Math.sqrt(2 / (layer.inputs + layer.outputs));
      for (let i = 0; i < layer.inputs * layer.outputs; i++) this.params[layer.w + i] = std * rng.normal();
    }
  }

  /** Runs one sample forward; leaves the logits in the last activation buffer and returns it. */
  private forward(x: Float64Array, xOffset: number): Float64Array {
    const p = this.params;
    const input = this.acts[0]!;
    for (let i = 0; i < input.length; i++) input[i] = x[xOffset + i]!;
    const last = this.layers.length - 1;
    this.layers.forEach((layer, l) => {
      const a = this.acts[l]!;
      const z = this.acts[l + 1]!;
      for (let o = 0; o < layer.outputs; o++) {
        let sum = p[layer.b + o]!;
        const row = layer.w + o * layer.inputs;
        for (let i = 0; i < layer.inputs; i++) sum += p[row + i]! * a[i]!;
        z[o] = l === last ? sum : Math.tanh(sum);
      }
    });
    return this.acts[this.acts.length - 1]!;
  }

  /** Softmax in place over the logits; returns -log p[label] computed stably. */
  private static softmaxLoss(logits: Float64Array, label: number): number {
    let max = -Infinity;
    for (let k = 0; k < logits.length; k++) if (logits[k]! > max) max = logits[k]!;
    let sum = 0;
    for (let k = 0; k < logits.length; k++) sum += Math.exp(logits[k]! - max);
    const logSum = max + Math.log(sum);
    const loss = logSum - logits[label]!;
    for (let k = 0; k < logits.length; k++) logits[k] = Math.exp(logits[k]! - logSum);
    return loss;
  }

  /**
   * Mean cross-entropy loss over the samples `indices[0..count)` of (x, y),
   * with its gradient written to `this.grads`.
   */
  lossAndGrad(x: Float64Array, y: Int32Array, indices: Int32Array, count: number): number {
    const p = this.params;
    const g = this.grads;
    g.fill(0);
    let total = 0;
    const lastLayer = this.layers.length - 1;
    for (let n = 0; n < count; n++) {
      const idx = indices[n]!;
      const label = y[idx]!;
      const probs = this.forward(x, idx * this.sizes[0]!);
      total += Mlp.softmaxLoss(probs, label);
      // d(loss)/d(logits) = softmax - onehot, averaged over the batch.
      const top = this.deltas[this.deltas.length - 1]!;
      for (let k = 0; k < probs.length; k++) top[k] = (probs[k]! - (k === label ? 1 : 0)) / count;
      for (let l = lastLayer; l >= 0; l--) {
        const layer = this.layers[l]!;
        const a = this.acts[l]!;
        const d = this.deltas[l + 1]!;
        const below = this.deltas[l]!;
        below.fill(0);
        for (let o = 0; o < layer.outputs; o++) {
          const dOut = d[o]!;
          g[layer.b + o] = g[layer.b + o]! + dOut;
          const row = layer.w + o * layer.inputs;
          for (let i = 0; i < layer.inputs; i++) {
            g[row + i] = g[row + i]! + dOut * a[i]!;
            below[i] = below[i]! + dOut * p[row + i]!;
          }
        }
        if (l > 0) {
          // Through the tanh of the layer below: d tanh = 1 - tanh².
          for (let i = 0; i < layer.inputs; i++) below[i] = below[i]! * (1 - a[i]! * a[i]!);
        }
      }
    }
    return total / count;
  }

  /** Mean loss and accuracy over a whole dataset, without touching the gradients. */
  evaluate(x: Float64Array, y: Int32Array, size: number): { loss: number; accuracy: number } {
    let total = 0;
    let correct = 0;
    for (let n = 0; n < size; n++) {
      const label = y[n]!;
      const probs = this.forward(x, n * this.sizes[0]!);
      total += Mlp.softmaxLoss(probs, label);
      let best = 0;
      for (let k = 1; k < probs.length; k++) if (probs[k]! > probs[best]!) best = k;
      if (best === label && !Number.isNaN(probs[best]!)) correct++;
    }
    return { loss: total / size, accuracy: correct / size };
  }
}

/** Adam (Kingma & Ba) with bias correction; its moments are saved in checkpoints. */
export class Adam {
  readonly m: Float64Array;
  readonly v: Float64Array;
  t = 0;

  constructor(
    size: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  step(params: Float64Array, grads: Float64Array, lr: number): void {
    this.t++;
    const { beta1, beta2, eps, m, v } = this;
    const c1 = 1 - Math.pow(beta1, this.t);
    const c2 = 1 - Math.pow(beta2, this.t);
    for (let i = 0; i < params.length; i++) {
      const gi = grads[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * gi;
      v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
      params[i] = params[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
    }
  }
}
