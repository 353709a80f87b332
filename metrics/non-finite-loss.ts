// Watches what the store commits for a loss gone NaN or ±Infinity (a series whose name
// contains "loss"), and reports it once per run: a diverging run is what operators want
// to hear of at once. Wraps the store, so the ingest path itself stays as it is.
import type { MetricPointInput } from './batch.js';
import type { MetricsStore } from './store.js';

export interface NonFiniteLoss {
  runId: number;
  series: string;
  step: number;
  value: number;
}

/** The first NaN/±Infinity point of a loss series in the batch, or null. */
export function firstNonFiniteLoss(points: readonly MetricPointInput[]): MetricPointInput | null {
  for (const point of points) {
    if (!Number.isFinite(point.value) && point.series.toLowerCase().includes('loss')) return point;
  }
  return null;
}

/**
 * The store, reporting a run's first non-finite loss after its batch is committed. `report`
 * must not throw (the batch is stored; a lost report must not make the reader read it again);
 * a run whose report failed is reported again at its next non-finite loss.
 */
export function reportingNonFiniteLoss(
  store: MetricsStore,
  report: (found: NonFiniteLoss) => Promise<void>,
): MetricsStore {
  const reported = new Set<number>();
  return {
    async commitBatch(input) {
      const result = await store.commitBatch(input);
      if (!result.committed || reported.has(input.runId)) return result;
      const point = firstNonFiniteLoss(input.points);
      if (point) {
        // Bounded: a long-lived worker sees many runs; forgetting one costs only a repeat the key dedupes.
        if (reported.size > 10_000) reported.clear();
        reported.add(input.runId);
        await report({ runId: input.runId, series: point.series, step: point.step, value: point.value }).catch(() =>
          reported.delete(input.runId),
        );
      }
      return result;
    },
  };
}
