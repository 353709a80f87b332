// Progress and estimated time left of a run, from the steps its trainer
// reports. The state is a small plain JSON object kept in the run's row
// between updates, so any worker (or a re-attached attempt) carries on from it.
//
// Rate: an exponentially decayed window over the time axis. Each observation
// that advances the step adds its step increment to `steps` and the time it
// took to `elapsedMs`, after decaying both by 2^(-dt / halfLife); the rate is
// their ratio. Weighting by time, not by observation count, means irregular
// reporting is fine: a long interval weighs as much as the many short ones
// covering the same time, and a backlog read in a burst (a re-attached reader
// catching up) is counted against the time it really took.
//
// Stalls: between reports the estimate counts down as if the rate held. But
// silence also bounds the rate: a trainer that usually reports every T has
// not advanced by a report's worth of steps for `idle`, so once idle exceeds
// a few T the rate can be at most about that many steps per idle/STALL_SLACK.
// The estimate is the larger of the two, so a stalled run's ETA grows
// linearly with the silence instead of freezing or sinking to zero. The slack
// keeps ordinary jitter in reporting from inflating the estimate.
//
// A stalled run only shows a growing ETA if `estimate` is evaluated with the
// current clock (at display time, or on every heartbeat), not only when a new
// line arrives.

export interface EtaState {
  readonly version: 1;
  readonly halfLifeMs: number;
  readonly totalSteps: number | null;
  /** Last reported step. */
  readonly step: number | null;
  /** When the step last advanced (or was first seen, or reset). */
  readonly progressAtMs: number | null;
  /** Decayed sum of step increments. */
  readonly steps: number;
  /** Decayed sum of the time those increments took. */
  readonly elapsedMs: number;
  /** Decayed count of advancing observations; steps/reports is the usual increment. */
  readonly reports: number;
}

export interface EtaObservation {
  readonly step: number;
  /** Undefined or null keeps the last known total. */
  readonly totalSteps?: number | null | undefined;
  readonly atMs: number;
}

export interface EtaEstimate {
  readonly progress: { readonly step: number; readonly totalSteps: number | null } | null;
  /** step / totalSteps, clamped to [0, 1]; null without a total. */
  readonly fraction: number | null;
  readonly etaSeconds: number | null;
  /** The smoothed rate, for display and debugging. */
  readonly stepsPerSecond: number | null;
}

export const DEFAULT_HALF_LIFE_MS = 60_000;

/** How many usual reporting intervals of silence before the ETA starts to grow. */
export const STALL_SLACK = 3;

export function initialEta(options: { halfLifeMs?: number; totalSteps?: number | null } = {}): EtaState {
  const halfLifeMs = options.halfLifeMs ?? DEFAULT_HALF_LIFE_MS;
  if (!(halfLifeMs > 0 && Number.isFinite(halfLifeMs)))
    throw new RangeError(`halfLifeMs must be > 0, got ${halfLifeMs}`);
  return {
    version: 1,
    halfLifeMs,
    totalSteps: validTotal(options.totalSteps) ?? null,
    step: null,
    progressAtMs: null,
    steps: 0,
    elapsedMs: 0,
    reports: 0,
  };
}

/**
 * Folds one report into the state and returns the new state (the input is not
 * changed). Reports with an invalid step or time are ignored. A step lower
 * than the last one means a resumed or restarted run: the smoothing starts
 * over from it.
 */
export function observe(state: EtaState, obs: EtaObservation): EtaState {
  const total = validTotal(obs.totalSteps) ?? state.totalSteps;
  if (!(Number.isFinite(obs.step) && obs.step >= 0 && Number.isFinite(obs.atMs))) {
    return total === state.totalSteps ? state : { ...state, totalSteps: total };
  }
  if (state.step === null || state.progressAtMs === null || obs.step < state.step) {
    return { ...state, totalSteps: total, step: obs.step, progressAtMs: obs.atMs, steps: 0, elapsedMs: 0, reports: 0 };
  }
  if (obs.step === state.step) {
    return total === state.totalSteps ? state : { ...state, totalSteps: total };
  }
  // Clocks of different workers may disagree slightly; time never runs backwards here.
  const dt = Math.max(0, obs.atMs - state.progressAtMs);
  const decay = Math.pow(2, -dt / state.halfLifeMs);
  return {
    ...state,
    totalSteps: total,
    step: obs.step,
    progressAtMs: Math.max(state.progressAtMs, obs.atMs),
    steps: state.steps * decay + (obs.step - state.step),
    elapsedMs: state.elapsedMs * decay + dt,
    reports: state.reports * decay + 1,
  };
}

/** Progress and time left as of `nowMs`; null parts until they can be known. */
export function estimate(state: EtaState, nowMs: number): EtaEstimate {
  if (state.step === null || state.progressAtMs === null) {
    return { progress: null, fraction: null, etaSeconds: null, stepsPerSecond: null };
  }
  const total = state.totalSteps;
  const progress = { step: state.step, totalSteps: total };
  const fraction = total === null ? null : Math.min(1, Math.max(0, state.step / total));
  // Steps per millisecond; unknown until some step advance took measurable time.
  const rate = state.steps > 0 && state.elapsedMs > 0 ? state.steps / state.elapsedMs : null;
  const stepsPerSecond = rate === null ? null : rate * 1000;
  if (total === null) return { progress, fraction, etaSeconds: null, stepsPerSecond };

  const remaining = total - state.step;
  if (remaining <= 0) return { progress, fraction, etaSeconds: 0, stepsPerSecond };
  if (rate === null) return { progress, fraction, etaSeconds: null, stepsPerSecond };

  const idleMs = Math.max(0, nowMs - state.progressAtMs);
  const countdownMs = Math.max(0, remaining / rate - idleMs);
  const stepsPerReport = state.steps / state.reports;
  const reportsLeft = Math.max(1, remaining / stepsPerReport);
  const stalledMs = (reportsLeft * idleMs) / STALL_SLACK;
  return { progress, fraction, etaSeconds: Math.max(countdownMs, stalledMs) / 1000, stepsPerSecond };
}

function validTotal(total: number | null | undefined): number | null {
  return typeof total === 'number' && Number.isFinite(total) && total > 0 ? total : null;
}
