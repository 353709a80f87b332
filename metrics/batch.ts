// Shapes a batch of metric points into the array literals that store.ts sends
// in one statement each: grouped by series with steps ascending (B-tree inserts
// then land next to each other), a point written again within the batch replacing
// the earlier one, and split into steps past everything stored (a plain INSERT)
// and steps that may rewrite a stored one (INSERT … ON CONFLICT DO UPDATE, which
// costs about twice as much per row). Pure: no I/O.
import { isPgText } from '../domain/pg-text.js';

export interface MetricPointInput {
  series: string;
  /** A safe integer; the reader counts a line with any other step as malformed. */
  step: number;
  /** Any number, NaN and ±Infinity included. */
  value: number;
}

export interface SeriesPoints {
  seriesId: number;
  /** Ascending, no duplicates. */
  steps: number[];
  values: number[];
}

export interface PointColumns {
  count: number;
  seriesIds: string;
  steps: string;
  values: string;
}

/**
 * A batch the reader should have refused (a bug upstream). Typed, because the same batch
 * fails the same way on every attempt: the watch must give up rather than retry it forever.
 */
export class InvalidBatchError extends TypeError {
  override name = 'InvalidBatchError';
}

/** Throws InvalidBatchError on what the reader should have counted as malformed. */
export function checkPoints(points: readonly MetricPointInput[]): void {
  for (const point of points) {
    // A name PostgreSQL text cannot hold would fail the insert, or come back changed.
    if (typeof point.series !== 'string' || !isPgText(point.series))
      throw new InvalidBatchError(`Series name ${JSON.stringify(point.series)} cannot be stored as text`);
    if (!Number.isSafeInteger(point.step))
      throw new InvalidBatchError(`Step ${point.step} of ${point.series} is not a safe integer`);
    if (typeof point.value !== 'number')
      throw new InvalidBatchError(`Value ${String(point.value)} of ${point.series} is not a number`);
  }
}

export function groupBySeries(points: readonly MetricPointInput[], ids: ReadonlyMap<string, number>): SeriesPoints[] {
  const groups = new Map<number, SeriesPoints & { ascending: boolean }>();
  for (const point of points) {
    const seriesId = ids.get(point.series);
    if (seriesId === undefined) throw new Error(`No id for series ${JSON.stringify(point.series)}`);
    let group = groups.get(seriesId);
    if (!group) groups.set(seriesId, (group = { seriesId, steps: [], values: [], ascending: true }));
    const n = group.steps.length;
    if (n > 0 && point.step <= group.steps[n - 1]!) group.ascending = false;
    group.steps.push(point.step);
    group.values.push(point.value);
  }
  const out: SeriesPoints[] = [];
  for (const group of groups.values()) {
    out.push(group.ascending ? group : lastWriteWins(group));
  }
  return out;
}

// Trainers write steps in order, so this runs only after a trainer went back
// (e.g. resumed from a checkpoint) within one batch.
function lastWriteWins(group: SeriesPoints): SeriesPoints {
  const latest = new Map<number, number>();
  for (let i = 0; i < group.steps.length; i++) latest.set(group.steps[i]!, group.values[i]!);
  const steps = [...latest.keys()].sort((a, b) => a - b);
  return { seriesId: group.seriesId, steps, values: steps.map((step) => latest.get(step)!) };
}

/**
 * Splits the points into those past the last stored step of their series
 * (`storedMax`, absent for a series with no points) and those that may replace
 * a stored point.
 */
export function splitByStoredMax(
  groups: readonly SeriesPoints[],
  storedMax: ReadonlyMap<number, number>,
): { append: SeriesPoints[]; rewrite: SeriesPoints[] } {
  const append: SeriesPoints[] = [];
  const rewrite: SeriesPoints[] = [];
  for (const group of groups) {
    const max = storedMax.get(group.seriesId);
    let first = 0;
    if (max !== undefined) {
      while (first < group.steps.length && group.steps[first]! <= max) first++;
    }
    if (first === 0) {
      append.push(group);
    } else if (first === group.steps.length) {
      rewrite.push(group);
    } else {
      const { seriesId, steps, values } = group;
      rewrite.push({ seriesId, steps: steps.slice(0, first), values: values.slice(0, first) });
      append.push({ seriesId, steps: steps.slice(first), values: values.slice(first) });
    }
  }
  return { append, rewrite };
}

/** The groups cut into runs of at most `size` points, in order. */
export function chunkGroups(groups: readonly SeriesPoints[], size: number): SeriesPoints[][] {
  const chunks: SeriesPoints[][] = [];
  let chunk: SeriesPoints[] = [];
  let room = size;
  for (const { seriesId, steps, values } of groups) {
    for (let from = 0; from < steps.length;) {
      const to = Math.min(steps.length, from + room);
      chunk.push(
        from === 0 && to === steps.length
          ? { seriesId, steps, values }
          : { seriesId, steps: steps.slice(from, to), values: values.slice(from, to) },
      );
      room -= to - from;
      from = to;
      if (room === 0) {
        chunks.push(chunk);
        chunk = [];
        room = size;
      }
    }
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

export function toColumns(groups: readonly SeriesPoints[]): PointColumns {
  const seriesIds: string[] = [];
  const steps: string[] = [];
  const values: string[] = [];
  for (const group of groups) {
    const id = String(group.seriesId);
    for (let i = 0; i < group.steps.length; i++) {
      seriesIds.push(id);
      steps.push(String(group.steps[i]));
      values.push(floatLiteral(group.values[i]!));
    }
  }
  return {
    count: steps.length,
    seriesIds: `{${seriesIds.join(',')}}`,
    steps: `{${steps.join(',')}}`,
    values: `{${values.join(',')}}`,
  };
}

// JavaScript's shortest round-trip form, which float8in reads back exactly;
// NaN, Infinity and -Infinity are spelled the way PostgreSQL spells them.
export function floatLiteral(value: number): string {
  return value === 0 && Object.is(value, -0) ? '-0' : String(value);
}

/** A text[] literal, each element quoted. */
export function textArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}
