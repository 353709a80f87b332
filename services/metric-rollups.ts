// The summary table behind the monitoring chart (DESIGN §8 "chart"). Scanning a
// million points takes ~300 ms per series here, so the chart reads summaries: per
// series, buckets of 2^level steps at each level below, each holding its point
// count, its finite minimum and maximum with their steps (the earliest on a tie)
// and the step of its first NaN, +Infinity and -Infinity. They are written in the
// same transaction as the points they summarise (activities/metrics-rollups.ts),
// so they are exactly as committed as the points.
//
// The table is not in the schema yet. Until a migration adds it, hasRollups says
// false: writers skip it and the chart scans points.
//
//   export const metricRollups = pgTable('metric_rollups', {
//     seriesId: integer('series_id').notNull().references(() => metricSeries.id, { onDelete: 'cascade' }),
//     level: smallint('level').notNull(),
//     bucket: bigint('bucket', { mode: 'number' }).notNull(),
//     count: integer('count').notNull(),
//     minStep: bigint('min_step', { mode: 'number' }),
//     minValue: doublePrecision('min_value'),
//     maxStep: bigint('max_step', { mode: 'number' }),
//     maxValue: doublePrecision('max_value'),
//     nanStep: bigint('nan_step', { mode: 'number' }),
//     posInfStep: bigint('pos_inf_step', { mode: 'number' }),
//     negInfStep: bigint('neg_inf_step', { mode: 'number' }),
//   }, (t) => [primaryKey({ columns: [t.seriesId, t.level, t.bucket] })]);
import type postgres from 'postgres';

/**
 * log2 of the bucket widths: 64 steps to 4 Mi steps, each level's bucket made of
 * LEVEL_FANOUT buckets of the level below, so a chart reads between one and four
 * summary rows per range. The finest level sets the cost of keeping them (about
 * one summary row per 48 points); a chart with fewer than 64 steps per range
 * reads the points instead.
 */
export const ROLLUP_LEVELS = [6, 8, 10, 12, 14, 16, 18, 20, 22] as const;
export const LEVEL_FANOUT = 4;

export const ROLLUP_TABLE_DDL = `
  create table if not exists metric_rollups (
    series_id integer not null references metric_series(id) on delete cascade,
    level smallint not null,
    bucket bigint not null,
    count integer not null,
    min_step bigint,
    min_value double precision,
    max_step bigint,
    max_value double precision,
    nan_step bigint,
    pos_inf_step bigint,
    neg_inf_step bigint,
    constraint metric_rollups_pk primary key (series_id, level, bucket)
  )`;

const detected = new WeakMap<postgres.Sql, Promise<boolean>>();

/** Whether the database has the rollup table; asked once per client. */
export function hasRollups(sql: postgres.Sql): Promise<boolean> {
  let answer = detected.get(sql);
  if (!answer) {
    answer = sql<{ present: boolean }[]>`select to_regclass('metric_rollups') is not null as present`.then((rows) => rows[0]?.present === true);
    answer.catch(() => detected.delete(sql));
    detected.set(sql, answer);
  }
  return answer;
}
