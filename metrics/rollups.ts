// The summary table behind the monitoring chart (docs/design.md §8 "chart"), and the
// writes that keep it in step with the points. Scanning a million points takes ~300 ms
// per series here, so the chart reads summaries: per series, buckets of 2^level steps at
// each level below, each holding its point count, its finite minimum and maximum with
// their steps (the earliest on a tie) and the step of its first NaN, +Infinity and
// -Infinity. They are written in the same transaction as the points they summarise
// (store.ts), so they are exactly as committed as the points.
//
// Appended points (past every stored step of their series) are summarised here and
// merged into the stored buckets; a bucket with a rewritten step is recomputed from
// what is stored, level by level from the one below (LEVEL_FANOUT rows each), since a
// replaced minimum cannot be merged away.
//
// The table: metricRollups in db/schema.ts.
import type postgres from 'postgres';
import { floatLiteral, type SeriesPoints } from './batch.js';

/**
 * log2 of the bucket widths: 64 steps to 4 Mi steps, each level's bucket made of
 * LEVEL_FANOUT buckets of the level below, so a chart reads between one and four
 * summary rows per range. The finest level sets the cost of keeping them (about
 * one summary row per 48 points); a chart with fewer than 64 steps per range
 * reads the points instead.
 */
export const ROLLUP_LEVELS = [6, 8, 10, 12, 14, 16, 18, 20, 22] as const;
export const LEVEL_FANOUT = 4;

const COLUMNS = [
  'seriesIds',
  'levels',
  'buckets',
  'counts',
  'minSteps',
  'minValues',
  'maxSteps',
  'maxValues',
  'nanSteps',
  'posInfSteps',
  'negInfSteps',
] as const;
type RollupColumns = Record<(typeof COLUMNS)[number], string[]>;

/** The summaries of appended points, as array literals for one upsert. */
function appendSummaries(
  groups: readonly SeriesPoints[],
): Record<(typeof COLUMNS)[number], string> & { count: number } {
  const cols = Object.fromEntries(COLUMNS.map((c) => [c, [] as string[]])) as RollupColumns;
  const step = (s: number | null): string => (s === null ? 'NULL' : String(s));
  for (const level of ROLLUP_LEVELS) {
    const width = 2 ** level;
    for (const { seriesId, steps, values } of groups) {
      let i = 0;
      while (i < steps.length) {
        const bucket = Math.floor(steps[i]! / width);
        let count = 0;
        let minStep: number | null = null;
        let maxStep: number | null = null;
        let minValue = 0;
        let maxValue = 0;
        let nanStep: number | null = null;
        let posInfStep: number | null = null;
        let negInfStep: number | null = null;
        // Steps ascend, so a bucket is a run of points and strict comparisons keep the earliest.
        for (; i < steps.length && Math.floor(steps[i]! / width) === bucket; i++) {
          const s = steps[i]!;
          const v = values[i]!;
          count++;
          if (v - v === 0) {
            if (minStep === null || v < minValue) [minStep, minValue] = [s, v];
            if (maxStep === null || v > maxValue) [maxStep, maxValue] = [s, v];
          } else if (v !== v) {
            nanStep ??= s;
          } else if (v > 0) {
            posInfStep ??= s;
          } else {
            negInfStep ??= s;
          }
        }
        cols.seriesIds.push(String(seriesId));
        cols.levels.push(String(level));
        cols.buckets.push(String(bucket));
        cols.counts.push(String(count));
        cols.minSteps.push(step(minStep));
        cols.minValues.push(minStep === null ? 'NULL' : floatLiteral(minValue));
        cols.maxSteps.push(step(maxStep));
        cols.maxValues.push(maxStep === null ? 'NULL' : floatLiteral(maxValue));
        cols.nanSteps.push(step(nanStep));
        cols.posInfSteps.push(step(posInfStep));
        cols.negInfSteps.push(step(negInfStep));
      }
    }
  }
  const out = Object.fromEntries(COLUMNS.map((c) => [c, `{${cols[c].join(',')}}`])) as Record<
    (typeof COLUMNS)[number],
    string
  >;
  return { ...out, count: cols.seriesIds.length };
}

/** Merges appended points' summaries into the stored buckets (new buckets are inserted). */
export function mergeAppendSummaries(
  tx: postgres.TransactionSql,
  groups: readonly SeriesPoints[],
): postgres.PendingQuery<postgres.Row[]> {
  const c = appendSummaries(groups);
  // Appended steps come after every stored one: on a tie the stored point is the earlier.
  return tx`
    insert into metric_rollups as r
      (series_id, level, bucket, count, min_step, min_value, max_step, max_value, nan_step, pos_inf_step, neg_inf_step)
    select * from unnest(${c.seriesIds}::int4[], ${c.levels}::int2[], ${c.buckets}::int8[], ${c.counts}::int4[],
      ${c.minSteps}::int8[], ${c.minValues}::float8[], ${c.maxSteps}::int8[], ${c.maxValues}::float8[],
      ${c.nanSteps}::int8[], ${c.posInfSteps}::int8[], ${c.negInfSteps}::int8[])
    on conflict (series_id, level, bucket) do update set
      count = r.count + excluded.count,
      min_step = case when r.min_step is null or excluded.min_value < r.min_value then excluded.min_step else r.min_step end,
      min_value = case when r.min_step is null or excluded.min_value < r.min_value then excluded.min_value else r.min_value end,
      max_step = case when r.max_step is null or excluded.max_value > r.max_value then excluded.max_step else r.max_step end,
      max_value = case when r.max_step is null or excluded.max_value > r.max_value then excluded.max_value else r.max_value end,
      nan_step = coalesce(r.nan_step, excluded.nan_step),
      pos_inf_step = coalesce(r.pos_inf_step, excluded.pos_inf_step),
      neg_inf_step = coalesce(r.neg_inf_step, excluded.neg_inf_step)`;
}

/**
 * Recomputes every bucket holding a rewritten step, finest level first. Run after
 * the rewritten points are stored and before appended ones are merged.
 */
export function recomputeSummaries(
  tx: postgres.TransactionSql,
  groups: readonly SeriesPoints[],
): postgres.PendingQuery<postgres.Row[]>[] {
  if (groups.length === 0) return [];
  const queries: postgres.PendingQuery<postgres.Row[]>[] = [];
  ROLLUP_LEVELS.forEach((level, index) => {
    const width = 2 ** level;
    const seriesIds: number[] = [];
    const buckets: number[] = [];
    for (const { seriesId, steps } of groups) {
      let last: number | null = null;
      for (const s of steps) {
        const bucket = Math.floor(s / width);
        if (bucket !== last) {
          seriesIds.push(seriesId);
          buckets.push(bucket);
          last = bucket;
        }
      }
    }
    const touched = tx`unnest(${`{${seriesIds.join(',')}}`}::int4[], ${`{${buckets.join(',')}}`}::int8[]) as t(s, b)`;
    const source =
      index === 0
        ? tx`
          select t.s, t.b, count(*)::int4 as count,
            min(array[p.value, p.step::float8]) filter (where p.value > '-Infinity' and p.value < 'Infinity') as mn,
            max(array[p.value, -p.step::float8]) filter (where p.value > '-Infinity' and p.value < 'Infinity') as mx,
            min(p.step) filter (where p.value = 'NaN') as nan,
            min(p.step) filter (where p.value = 'Infinity') as pinf,
            min(p.step) filter (where p.value = '-Infinity') as ninf
          from ${touched}
          join metric_points p on p.series_id = t.s and p.step >= t.b * ${width} and p.step < (t.b + 1) * ${width}
          group by t.s, t.b`
        : tx`
          select t.s, t.b, sum(r.count)::int4 as count,
            min(array[r.min_value, r.min_step::float8]) filter (where r.min_step is not null) as mn,
            max(array[r.max_value, -r.max_step::float8]) filter (where r.max_step is not null) as mx,
            min(r.nan_step) as nan, min(r.pos_inf_step) as pinf, min(r.neg_inf_step) as ninf
          from ${touched}
          join metric_rollups r on r.series_id = t.s and r.level = ${ROLLUP_LEVELS[index - 1]!}
            and r.bucket >= t.b * ${LEVEL_FANOUT} and r.bucket < (t.b + 1) * ${LEVEL_FANOUT}
          group by t.s, t.b`;
    queries.push(tx`
      insert into metric_rollups
        (series_id, level, bucket, count, min_step, min_value, max_step, max_value, nan_step, pos_inf_step, neg_inf_step)
      select s, ${level}, b, count, mn[2]::int8, mn[1], (-mx[2])::int8, mx[1], nan, pinf, ninf
      from (${source}) as summary
      on conflict (series_id, level, bucket) do update set
        count = excluded.count, min_step = excluded.min_step, min_value = excluded.min_value,
        max_step = excluded.max_step, max_value = excluded.max_value, nan_step = excluded.nan_step,
        pos_inf_step = excluded.pos_inf_step, neg_inf_step = excluded.neg_inf_step`);
  });
  return queries;
}
