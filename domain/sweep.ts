// Sweeps over a template's params, pure and reproducible: a grid is the cartesian product
// of value lists, random samples come from a small seeded generator (mulberry32), so the
// same request always yields the same processes; names say which params differ.

export type Params = Record<string, unknown>;

export type Distribution = { uniform: [number, number] } | { logUniform: [number, number] } | { choice: unknown[] };

export interface RandomSpec {
  n: number;
  seed: number;
  space: Record<string, Distribution>;
}

/** mulberry32: a 32-bit seeded generator of numbers in [0, 1); small, fast, and the same everywhere. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The cartesian product, the first key changing slowest: {a: [1, 2], b: [x, y]} → (1, x), (1, y), (2, x), (2, y). */
export function expandGrid(grid: Record<string, unknown[]>): Params[] {
  let points: Params[] = [{}];
  for (const [key, values] of Object.entries(grid)) {
    points = points.flatMap((point) => values.map((value) => ({ ...point, [key]: value })));
  }
  return points;
}

/** How many points a grid has, without building them. */
export const gridSize = (grid: Record<string, unknown[]>): number =>
  Object.values(grid).reduce((product, values) => product * values.length, 1);

/** Six significant digits: enough for a hyperparameter, short enough for a name. */
const rounded = (value: number): number => Number(value.toPrecision(6));

function draw(distribution: Distribution, next: () => number): unknown {
  if ('uniform' in distribution) {
    const [a, b] = distribution.uniform;
    return rounded(a + (b - a) * next());
  }
  if ('logUniform' in distribution) {
    const [a, b] = distribution.logUniform;
    return rounded(Math.exp(Math.log(a) + (Math.log(b) - Math.log(a)) * next()));
  }
  const choices = distribution.choice;
  return choices[Math.min(Math.floor(next() * choices.length), choices.length - 1)];
}

/** n samples of the space, keys drawn in the order given; the same spec gives the same samples. */
export function sampleRandom(spec: RandomSpec): Params[] {
  const next = mulberry32(spec.seed);
  const samples: Params[] = [];
  for (let i = 0; i < spec.n; i++) {
    const sample: Params = {};
    for (const [key, distribution] of Object.entries(spec.space)) sample[key] = draw(distribution, next);
    samples.push(sample);
  }
  return samples;
}

/** What is wrong with a distribution, or null. */
export function distributionProblem(distribution: unknown): string | null {
  if (typeof distribution !== 'object' || distribution === null || Array.isArray(distribution))
    return 'is one of {uniform: [a, b]}, {logUniform: [a, b]}, {choice: [values…]}';
  const entries: [string, unknown][] = Object.entries(distribution);
  if (entries.length !== 1) return 'names exactly one of uniform, logUniform, choice';
  const [kind, value] = entries[0]!;
  if (kind === 'choice') return Array.isArray(value) && value.length > 0 ? null : 'choice is a non-empty list';
  if (kind !== 'uniform' && kind !== 'logUniform') return `${kind} is not uniform, logUniform or choice`;
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => typeof v === 'number' && Number.isFinite(v)))
    return `${kind} is [low, high], two finite numbers`;
  const [a, b] = value as [number, number];
  if (a > b) return `${kind} low is above high`;
  if (kind === 'logUniform' && a <= 0) return 'logUniform bounds are above zero';
  return null;
}

/** The machine of each of `count` processes: round robin over `machineIds`, `perMachine` in a row. */
export function spread(count: number, machineIds: number[], perMachine = 1): number[] {
  return Array.from({ length: count }, (_, i) => machineIds[Math.floor(i / perMachine) % machineIds.length]!);
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The keys of `params` whose value is not the template's. */
export function differingKeys(templateParams: Params, params: Params): string[] {
  return Object.keys(params).filter((key) => !same(templateParams[key], params[key]));
}

const shown = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

/** `<template> lr=0.003 batch=64`: the template's name and the params that differ from its own. */
export function defaultName(templateName: string, templateParams: Params, params: Params): string {
  const changes = differingKeys(templateParams, params).map((key) => `${key}=${shown(params[key])}`);
  return [templateName, ...changes].join(' ');
}
