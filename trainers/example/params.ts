// Hyperparameters from TRAINYARD_PARAMS (a JSON object) and
// TRAINYARD_TOTAL_STEPS. Unknown keys are ignored with a warning; a bad value
// is a ParamError, which the entry point reports and exits with code 2.

export interface Params {
  total_steps: number;
  learning_rate: number;
  warmup_steps: number;
  batch_size: number;
  hidden: number;
  seed: number;
  log_every: number;
  eval_every: number;
  checkpoint_every: number;
  step_delay_ms: number;
  noise: number;
  turns: number;
  samples: number;
}

export class ParamError extends Error {}

/** Share of the samples held out as the test set. */
export const TEST_FRACTION = 0.2;

interface Spec {
  integer: boolean;
  min: number;
  max: number;
  /** The minimum itself is not allowed (e.g. a learning rate must be > 0). */
  exclusiveMin?: boolean;
  default: number;
  help: string;
}

export const PARAM_SPECS: Record<keyof Params, Spec> = {
  total_steps: {
    integer: true,
    min: 1,
    max: 10_000_000,
    default: 3000,
    help: 'optimizer steps; TRAINYARD_TOTAL_STEPS wins when set',
  },
  learning_rate: {
    integer: false,
    min: 0,
    exclusiveMin: true,
    max: 10,
    default: 0.01,
    help: 'peak Adam learning rate',
  },
  warmup_steps: {
    integer: true,
    min: 0,
    max: 10_000_000,
    default: NaN,
    help: 'linear warm-up steps; default 10% of total_steps',
  },
  batch_size: {
    integer: true,
    min: 1,
    max: 100_000,
    default: 32,
    help: 'samples per step (at most the training set size)',
  },
  hidden: { integer: true, min: 1, max: 1024, default: 32, help: 'units in each of the two hidden layers' },
  seed: {
    integer: true,
    min: 0,
    max: 4_294_967_295,
    default: 0,
    help: 'seeds the data, the initial weights and the batch order',
  },
  log_every: { integer: true, min: 1, max: 10_000_000, default: 10, help: 'write loss and lr every N steps' },
  eval_every: {
    integer: true,
    min: 1,
    max: 10_000_000,
    default: 50,
    help: 'write test_accuracy/test_loss and a progress line every N steps',
  },
  checkpoint_every: {
    integer: true,
    min: 0,
    max: 10_000_000,
    default: 500,
    help: 'also save a checkpoint every N steps (0: only when stopped or done)',
  },
  step_delay_ms: {
    integer: false,
    min: 0,
    max: 60_000,
    default: 50,
    help: 'sleep between steps so a demo run is watchable',
  },
  noise: {
    integer: false,
    min: 0,
    max: 1,
    default: 0.05,
    help: 'Gaussian noise on the points, relative to the outer radius',
  },
  turns: {
    integer: false,
    min: 0,
    exclusiveMin: true,
    max: 10,
    default: 1.75,
    help: 'turns of each spiral arm (more is harder)',
  },
  samples: {
    integer: true,
    min: 10,
    max: 1_000_000,
    default: 1000,
    help: 'points in the dataset, both classes; 20% are the test set',
  },
};

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function parseValue(name: string, raw: unknown, spec: Spec): number {
  let value: number;
  if (typeof raw === 'number') value = raw;
  else if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw.trim())))
    value = Number(raw.trim());
  else throw new ParamError(`${name} must be a number, got ${describe(raw)}`);
  if (!Number.isFinite(value)) throw new ParamError(`${name} must be a finite number, got ${describe(raw)}`);
  if (spec.integer && !Number.isInteger(value))
    throw new ParamError(`${name} must be a whole number, got ${describe(raw)}`);
  const tooLow = spec.exclusiveMin ? value <= spec.min : value < spec.min;
  if (tooLow || value > spec.max) {
    const low = spec.exclusiveMin ? `greater than ${spec.min}` : `at least ${spec.min}`;
    throw new ParamError(`${name} must be ${low} and at most ${spec.max}, got ${describe(raw)}`);
  }
  return value;
}

export interface ParamSources {
  /** The raw TRAINYARD_PARAMS text, if set. */
  params?: string | undefined;
  /** The raw TRAINYARD_TOTAL_STEPS text, if set. */
  totalSteps?: string | undefined;
}

/** Parses and checks the hyperparameters; throws ParamError with a readable message. */
export function parseParams(sources: ParamSources): { params: Params; warnings: string[] } {
  const warnings: string[] = [];
  let given: Record<string, unknown> = {};
  const text = sources.params?.trim();
  if (text) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ParamError(`TRAINYARD_PARAMS is not valid JSON (${(err as Error).message})`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ParamError(`TRAINYARD_PARAMS must be a JSON object, got ${describe(parsed)}`);
    }
    given = parsed as Record<string, unknown>;
  }

  const known = new Set(Object.keys(PARAM_SPECS));
  for (const key of Object.keys(given)) {
    if (!known.has(key)) warnings.push(`ignoring unknown parameter ${JSON.stringify(key)}`);
  }

  const out = {} as Params;
  for (const [name, spec] of Object.entries(PARAM_SPECS) as [keyof Params, Spec][]) {
    const raw = given[name];
    // A null value (e.g. a blank form field) means "use the default".
    out[name] = raw === undefined || raw === null ? spec.default : parseValue(name, raw, spec);
  }

  const envSteps = sources.totalSteps?.trim();
  if (envSteps) {
    const steps = parseValue('TRAINYARD_TOTAL_STEPS', envSteps, PARAM_SPECS.total_steps);
    if (given.total_steps !== undefined && given.total_steps !== null && steps !== out.total_steps) {
      warnings.push(`TRAINYARD_TOTAL_STEPS=${steps} overrides total_steps=${out.total_steps} from the parameters`);
    }
    out.total_steps = steps;
  }

  if (Number.isNaN(out.warmup_steps)) out.warmup_steps = Math.floor(out.total_steps / 10);
  else if (out.warmup_steps > out.total_steps) {
    throw new ParamError(`warmup_steps (${out.warmup_steps}) must not exceed total_steps (${out.total_steps})`);
  }

  const trainSize = out.samples - Math.max(1, Math.round(out.samples * TEST_FRACTION));
  if (out.batch_size > trainSize) {
    throw new ParamError(
      `batch_size (${out.batch_size}) must not exceed the training set size (${trainSize} of samples=${out.samples})`,
    );
  }
  return { params: out, warnings };
}
