// The read side of run metrics, behind GET /api/v1/processes/:id/metrics (DESIGN §6,
// §8 "chart"): at most maxPoints points per series, spikes and non-finite values kept.
//
// A series with more points than that is cut into step ranges (about maxPoints / 2
// of them); each range gives its finite minimum and maximum and its first NaN,
// +Infinity and -Infinity, and the series' first and last points are always kept.
// The ranges are summarised in SQL — from the rollup table when it exists
// (rollups.ts: a few thousand rows, whatever the series' length),
// else from the points — so no more than a summary row per range reaches Node.
// When non-finite values make the picks overflow the budget, neighbouring ranges
// are merged (summaries merge exactly) until they fit.
//
// Values may be NaN or ±Infinity, which JSON cannot spell: the HTTP layer must
// encode them (e.g. as the strings "NaN", "Infinity", "-Infinity").
import { and, asc, eq, inArray } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Db } from '../db/client.js';
import { metricSeries } from '../db/schema.js';
import { invalid } from '../services/errors.js';
import { ROLLUP_LEVELS } from './rollups.js';

export type MetricPoint = [step: number, value: number];

export interface MetricsQuery {
  runId: number;
  /** Omitted: every series of the run. A name the run does not have answers []. */
  names?: readonly string[];
  /** Per series; an integer ≥ 2, capped at MAX_POINTS_CAP. */
  maxPoints: number;
}

const MAX_POINTS_CAP = 10_000;

export async function listSeries(db: Db, runId: number): Promise<string[]> {
  const rows = await db
    .select({ name: metricSeries.name })
    .from(metricSeries)
    .where(eq(metricSeries.runId, runId))
    .orderBy(asc(metricSeries.name));
  return rows.map((row) => row.name);
}

export async function queryMetrics(
  db: Db,
  sql: postgres.Sql,
  query: MetricsQuery,
): Promise<{ series: Record<string, MetricPoint[]> }> {
  if (!Number.isFinite(query.maxPoints) || query.maxPoints < 2)
    throw invalid('maxPoints', { en: 'maxPoints must be a number ≥ 2.', ru: 'maxPoints: число ≥ 2.' });
  const maxPoints = Math.min(MAX_POINTS_CAP, Math.floor(query.maxPoints));
  const names = query.names ? [...new Set(query.names)] : undefined;
  if (names?.length === 0) return { series: {} };
  const rows = await db
    .select({ id: metricSeries.id, name: metricSeries.name })
    .from(metricSeries)
    .where(
      names
        ? and(eq(metricSeries.runId, query.runId), inArray(metricSeries.name, names))
        : eq(metricSeries.runId, query.runId),
    )
    .orderBy(asc(metricSeries.name));
  // One query per series, side by side on the pool's connections.
  const points = await Promise.all(rows.map((row) => seriesPoints(sql, row.id, maxPoints)));
  const found = new Map(rows.map((row, i) => [row.name, points[i]!]));
  // fromEntries defines own properties, so a series named "__proto__" stays data.
  return {
    series: Object.fromEntries((names ?? rows.map((row) => row.name)).map((name) => [name, found.get(name) ?? []])),
  };
}

interface Summary {
  minStep: number | null;
  minValue: number;
  maxStep: number | null;
  maxValue: number;
  nanStep: number | null;
  posInfStep: number | null;
  negInfStep: number | null;
}

// In one snapshot, so that points a live run commits meanwhile cannot fall outside
// the first and last points read.
function seriesPoints(sql: postgres.Sql, seriesId: number, maxPoints: number): Promise<MetricPoint[]> {
  return sql.begin('isolation level repeatable read read only', (tx) => seriesPointsIn(tx, seriesId, maxPoints));
}

async function seriesPointsIn(
  sql: postgres.TransactionSql,
  seriesId: number,
  maxPoints: number,
): Promise<MetricPoint[]> {
  const [ends] = await sql<{ n: number; lo: string; first: number; hi: string; last: number }[]>`
    select
      (select count(*)::int4 from (select 1 from metric_points where series_id = ${seriesId} limit ${maxPoints + 1}) as head) as n,
      f.step as lo, f.value as first, l.step as hi, l.value as last
    from (select step, value from metric_points where series_id = ${seriesId} order by step limit 1) as f,
         (select step, value from metric_points where series_id = ${seriesId} order by step desc limit 1) as l`;
  if (!ends) return [];
  if (ends.n <= maxPoints) {
    const all = await sql<{ step: string; value: number }[]>`
      select step, value from metric_points where series_id = ${seriesId} order by step`;
    return all.map((row) => [Number(row.step), row.value]);
  }
  const lo = Number(ends.lo);
  const hi = Number(ends.hi);
  const budget = maxPoints - 2; // the first and last points are always kept
  const ranges = Math.max(1, Math.floor(budget / 2));
  const summaries = await summarise(sql, seriesId, lo, hi, ranges);
  const interior = fitPicks(summaries, budget, lo, hi);
  return [[lo, ends.first], ...interior, [hi, ends.last]];
}

// Summaries of `ranges` equal step ranges over [lo, hi] (empty ranges absent).
async function summarise(
  sql: postgres.TransactionSql,
  seriesId: number,
  lo: number,
  hi: number,
  ranges: number,
): Promise<Summary[]> {
  const span = hi - lo + 1;
  // The coarsest level with a bucket for every range reads between one and
  // LEVEL_FANOUT rows per range. A span too short for the finest level has fewer
  // than 64 points per range, which are summarised directly.
  const level = [...ROLLUP_LEVELS].reverse().find((l) => span / 2 ** l >= ranges);
  const rows =
    level === undefined
      ? await sql<SummaryRow[]>`
          select
            least(${ranges - 1}, floor((step - ${lo})::float8 * ${ranges} / ${span}))::int4 as r,
            min(array[value, step::float8]) filter (where value > '-Infinity' and value < 'Infinity') as mn,
            max(array[value, -step::float8]) filter (where value > '-Infinity' and value < 'Infinity') as mx,
            min(step) filter (where value = 'NaN') as nan,
            min(step) filter (where value = 'Infinity') as pinf,
            min(step) filter (where value = '-Infinity') as ninf
          from metric_points where series_id = ${seriesId}
          group by 1 order by 1`
      : await sql<SummaryRow[]>`
          select
            least(${ranges - 1}, floor((greatest(bucket * ${2 ** level}, ${lo}) - ${lo})::float8 * ${ranges} / ${span}))::int4 as r,
            min(array[min_value, min_step::float8]) filter (where min_step is not null) as mn,
            max(array[max_value, -max_step::float8]) filter (where max_step is not null) as mx,
            min(nan_step) as nan, min(pos_inf_step) as pinf, min(neg_inf_step) as ninf
          from metric_rollups where series_id = ${seriesId} and level = ${level}
          group by 1 order by 1`;
  return rows.map(toSummary);
}

interface SummaryRow {
  r: number;
  mn: number[] | string | null;
  mx: number[] | string | null;
  nan: string | null;
  pinf: string | null;
  ninf: string | null;
}

function toSummary(row: SummaryRow): Summary {
  const mn = floatPair(row.mn);
  const mx = floatPair(row.mx);
  const step = (s: string | null): number | null => (s === null ? null : Number(s));
  return {
    minStep: mn ? mn[1] : null,
    minValue: mn ? mn[0] : 0,
    maxStep: mx ? -mx[1] : null,
    maxValue: mx ? mx[0] : 0,
    nanStep: step(row.nan),
    posInfStep: step(row.pinf),
    negInfStep: step(row.ninf),
  };
}

// float8[] arrives parsed or as its text form, depending on the driver's type cache.
function floatPair(value: number[] | string | null): [number, number] | null {
  if (value === null) return null;
  const parts = typeof value === 'string' ? value.slice(1, -1).split(',').map(Number) : value;
  return [Number(parts[0]), Number(parts[1])];
}

// The picks of the summaries (without the series' ends), merging neighbouring
// ranges until they fit the budget.
function fitPicks(summaries: Summary[], budget: number, lo: number, hi: number): MetricPoint[] {
  let current = summaries;
  for (;;) {
    const picks = current.flatMap((s) => picksOf(s)).filter(([step]) => step !== lo && step !== hi);
    if (picks.length <= budget) return picks.sort((a, b) => a[0] - b[0]);
    if (current.length === 1) return trim(picks, budget);
    const target = Math.max(1, Math.min(current.length - 1, Math.floor((current.length * budget) / picks.length)));
    current = mergeNeighbours(current, target);
  }
}

function picksOf(s: Summary): MetricPoint[] {
  const picks: MetricPoint[] = [];
  if (s.minStep !== null) picks.push([s.minStep, s.minValue]);
  if (s.maxStep !== null && s.maxStep !== s.minStep) picks.push([s.maxStep, s.maxValue]);
  if (s.nanStep !== null) picks.push([s.nanStep, Number.NaN]);
  if (s.posInfStep !== null) picks.push([s.posInfStep, Number.POSITIVE_INFINITY]);
  if (s.negInfStep !== null) picks.push([s.negInfStep, Number.NEGATIVE_INFINITY]);
  return picks;
}

function mergeNeighbours(summaries: Summary[], target: number): Summary[] {
  const merged: Summary[] = [];
  summaries.forEach((s, i) => {
    const g = Math.floor((i * target) / summaries.length);
    const into = merged[g];
    if (!into) {
      merged[g] = { ...s };
      return;
    }
    // Summaries come in step order: on a tie the one already held is the earlier.
    if (s.minStep !== null && (into.minStep === null || s.minValue < into.minValue))
      [into.minStep, into.minValue] = [s.minStep, s.minValue];
    if (s.maxStep !== null && (into.maxStep === null || s.maxValue > into.maxValue))
      [into.maxStep, into.maxValue] = [s.maxStep, s.maxValue];
    into.nanStep ??= s.nanStep;
    into.posInfStep ??= s.posInfStep;
    into.negInfStep ??= s.negInfStep;
  });
  return merged;
}

// Too small a budget for what one range holds: non-finite values first (they are
// what the chart exists to show), then the maximum, then the minimum.
function trim(picks: MetricPoint[], budget: number): MetricPoint[] {
  const rank = ([, v]: MetricPoint): number => (v !== v ? 0 : v === Infinity ? 1 : v === -Infinity ? 2 : 3);
  const ranked = [...picks].sort((a, b) => rank(a) - rank(b) || b[1] - a[1]);
  return ranked.slice(0, Math.max(0, budget)).sort((a, b) => a[0] - b[0]);
}
