// Learning-rate schedule: linear warm-up from ~0 to the base rate, then a
// cosine decay to `minRatio` × base at the last step — a hump on the chart.

export interface ScheduleOptions {
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
  minRatio?: number;
}

/** The rate for the update that produces step `step` (1-based, 1..totalSteps). */
export function learningRate(step: number, opts: ScheduleOptions): number {
  const { baseLr, totalSteps } = opts;
  const warmup = Math.min(opts.warmupSteps, totalSteps);
  const minLr = baseLr * (opts.minRatio ?? 0);
  if (step <= warmup) return (baseLr * step) / warmup;
  const decaySteps = totalSteps - warmup;
  if (decaySteps <= 0) return baseLr;
  const progress = Math.min(1, (step - warmup) / decaySteps);
  return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
