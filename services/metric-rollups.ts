// The summary table behind the monitoring chart (DESIGN §8 "chart"). Scanning a
// million points takes ~300 ms per series here, so the chart reads summaries: per
// series, buckets of 2^level steps at each level below, each holding its point
// count, its finite minimum and maximum with their steps (the earliest on a tie)
// and the step of its first NaN, +Infinity and -Infinity. They are written in the
// same transaction as the points they summarise (activities/metrics-rollups.ts),
// so they are exactly as committed as the points.
//
// The table: metricRollups in db/schema.ts.

/**
 * log2 of the bucket widths: 64 steps to 4 Mi steps, each level's bucket made of
 * LEVEL_FANOUT buckets of the level below, so a chart reads between one and four
 * summary rows per range. The finest level sets the cost of keeping them (about
 * one summary row per 48 points); a chart with fewer than 64 steps per range
 * reads the points instead.
 */
export const ROLLUP_LEVELS = [6, 8, 10, 12, 14, 16, 18, 20, 22] as const;
export const LEVEL_FANOUT = 4;
