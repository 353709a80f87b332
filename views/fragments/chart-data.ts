// The monitoring chart's data as the page script receives it, embedded in the page or
// polled as JSON. Non-finite values travel as the strings "NaN", "Infinity" and
// "-Infinity" (metrics/encode.ts), and the page script turns them back into breaks.
import { encodeSeries, type EncodedPoint } from '../../metrics/encode.js';
import type { MetricPoint } from '../../metrics/query.js';
import { STATUS_LABELS, isStatus } from '../../domain/status.js';
import { translator, type Locale } from '../i18n.js';
import { fill } from './format.js';

/** The three curves of DESIGN §5, in legend order, with their colours. */
export const CHART_SERIES = ['lr', 'loss', 'test_accuracy'] as const;
export const SERIES_COLORS: Readonly<Record<(typeof CHART_SERIES)[number], string>> = {
  lr: '#2a9d4b',
  loss: '#2f6fdb',
  test_accuracy: '#d6393f',
};
/** About this many points per curve reach the browser, whatever the run's length. */
export const MAX_POINTS = 2000;
/** How often an open chart of an active run asks for more. */
export const POLL_MS = 3000;

export interface ChartRun {
  number: number;
  status: string;
  statusLabel: string;
  final: boolean;
  series: Record<string, EncodedPoint[]>;
}

export interface ChartData {
  processId: number;
  /** Some run on the chart is still going: keep polling. */
  live: boolean;
  pollMs: number;
  runs: ChartRun[];
  warnings: string[];
  colors: Record<string, string>;
  labels: { step: string; run: string; live: string; final: string; noPoints: string };
}

/** One sentence per (run, series, kind of non-finite value): where the curve breaks. */
export function nonFiniteWarnings(runs: readonly ChartRun[], locale: Locale): string[] {
  const t = translator(locale);
  const warnings: string[] = [];
  for (const run of runs) {
    for (const name of CHART_SERIES) {
      const seen = new Set<string>();
      for (const [step, value] of run.series[name] ?? []) {
        if (typeof value === 'number' || seen.has(value)) continue;
        seen.add(value);
        warnings.push(fill(t('nonFiniteWarning'), { series: name, value, step, run: run.number }));
      }
    }
  }
  return warnings;
}

export function chartRun(
  run: { number: number; status: string; finishedAt: Date | string | null },
  series: Record<string, MetricPoint[]>,
  locale: Locale,
): ChartRun {
  return {
    number: run.number,
    status: run.status,
    statusLabel: isStatus(run.status) ? STATUS_LABELS[run.status][locale] : run.status,
    final: run.finishedAt !== null,
    series: Object.fromEntries(CHART_SERIES.map((name) => [name, encodeSeries(series[name] ?? [])])),
  };
}

export function chartData(processId: number, runs: ChartRun[], locale: Locale): ChartData {
  const t = translator(locale);
  return {
    processId,
    live: runs.some((run) => !run.final),
    pollMs: POLL_MS,
    runs,
    warnings: nonFiniteWarnings(runs, locale),
    colors: { ...SERIES_COLORS },
    labels: { step: t('step'), run: t('run'), live: t('chartLive'), final: t('chartFinal'), noPoints: t('noPoints') },
  };
}
