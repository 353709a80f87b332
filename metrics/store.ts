// The write side of run metrics (DESIGN §5 "Exactly once", §8 ingest): a batch of
// points, the file offset it reaches and the run's progress commit in one
// transaction, fenced by the run's owner attempt, so every point is stored once
// however often a reader is retried or re-attached.
//
// Fencing rule: `claimRun` makes its caller the run's owner unconditionally — the
// last claim wins. Temporal starts a retried attempt only after it has given up
// on the previous one, so the last claimer is the newest attempt; an older
// attempt still alive learns at its next commit that it is `fenced`, commits
// nothing, and must let go of the trainer. Claim before touching the trainer,
// with a token unique to the attempt (e.g. workflow run id, activity id, attempt).
//
// Speed (DESIGN §8: ≥ 200 000 points/s): points travel as three array literals
// into one set-based INSERT … SELECT FROM unnest; steps past every stored step of
// their series (the usual case) take a plain INSERT, only the rest pay for ON
// CONFLICT DO UPDATE; the writes are pipelined, and the commit does not wait for
// the WAL flush (see commitBatch).
import { eq } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Db } from '../db/client.js';
import { runs } from '../db/schema.js';
import {
  checkPoints,
  chunkGroups,
  groupBySeries,
  splitByStoredMax,
  textArray,
  toColumns,
  type MetricPointInput,
} from './batch.js';
import { mergeAppendSummaries, recomputeSummaries } from './rollups.js';

export type { MetricPointInput } from './batch.js';

export interface CommitBatchInput {
  runId: number;
  /** The fencing token this attempt claimed the run with. */
  ownerAttempt: string;
  /** The committed offset this batch starts from; must equal the run's. */
  fromOffset: number;
  /** The file offset just past the last line of this batch. */
  toOffset: number;
  points: readonly MetricPointInput[];
  /** The latest progress in the batch; null leaves the run's progress as it is. */
  progress: { step: number; totalSteps?: number; epoch?: number } | null;
  /** Lines skipped in this batch, added to the run's counters. */
  malformed: number;
  oversized: number;
  /** undefined leaves the stored value as it is; null clears it. */
  etaState?: unknown;
  etaSeconds?: number | null;
}

export type CommitResult =
  | { committed: true; committedOffset: number }
  | {
      committed: false;
      /**
       * fenced: another attempt owns the run (or the run is gone) — let go. offset_moved: resume from
       * committedOffset.
       */
      reason: 'fenced' | 'offset_moved';
      committedOffset: number;
    };

export interface MetricsStore {
  commitBatch(input: CommitBatchInput): Promise<CommitResult>;
}

class RunNotFoundError extends Error {
  override name = 'RunNotFoundError';
  constructor(readonly runId: number) {
    super(`Run ${runId} does not exist.`);
  }
}

const INT4_MAX = 2_147_483_647;
const APPEND_CHUNK_POINTS = 5_000;

export function createMetricsStore(_db: Db, sql: postgres.Sql): MetricsStore {
  async function commitBatch(input: CommitBatchInput): Promise<CommitResult> {
    const { runId } = input;
    checkPoints(input.points);
    const names = seriesNames(input.points);
    return sql.begin(async (tx): Promise<CommitResult> => {
      // One round trip: the run's row locked, then its series named in the batch with the
      // highest step each has stored (read under the lock, so no other writer moves them).
      // Durability is not what makes this exactly once: a commit lost in a server crash
      // loses its points and its offset together, and the reader reads those lines
      // again. Not waiting for the WAL flush keeps big batches fast.
      const [, [run], stored] = await Promise.all([
        tx`set local synchronous_commit = off`.execute(),
        tx<{ owner: string | null; offset: string }[]>`
          select owner_attempt as owner, metrics_offset as offset from runs where id = ${runId} for update`.execute(),
        tx<{ id: number; name: string; max: string | null }[]>`
          select id, name, (select max(step) from metric_points where series_id = s.id) as max
          from metric_series s where run_id = ${runId} and name = any(${textArray(names)}::text[])`.execute(),
      ]);
      if (!run || run.owner !== input.ownerAttempt) {
        return { committed: false, reason: 'fenced', committedOffset: run ? Number(run.offset) : 0 };
      }
      if (Number(run.offset) !== input.fromOffset) {
        return { committed: false, reason: 'offset_moved', committedOffset: Number(run.offset) };
      }
      const ids = new Map<string, number>();
      const storedMax = new Map<number, number>();
      for (const row of stored) {
        ids.set(row.name, row.id);
        if (row.max !== null) storedMax.set(row.id, Number(row.max));
      }
      const missing = names.filter((name) => !ids.has(name));
      if (missing.length > 0) {
        // Only the first batches of a run name new series. The plain select finds any a
        // concurrent statement made; the insert the rest (a statement does not see its own rows).
        const rows = await tx<{ id: number; name: string }[]>`
          with inserted as (
            insert into metric_series (run_id, name)
            select ${runId}, name from unnest(${textArray(missing)}::text[]) as t(name)
            on conflict (run_id, name) do nothing
            returning id, name)
          select id, name from inserted
          union all
          select id, name from metric_series where run_id = ${runId} and name = any(${textArray(missing)}::text[])`;
        for (const row of rows) ids.set(row.name, row.id);
      }
      const writes: Promise<unknown>[] = [];
      if (input.points.length > 0) {
        // Holding the run's row, this transaction is the only writer of its series:
        // steps past the stored maximum cannot conflict and skip ON CONFLICT.
        const { append, rewrite } = splitByStoredMax(groupBySeries(input.points, ids), storedMax);
        if (rewrite.length > 0) {
          const c = toColumns(rewrite);
          writes.push(
            tx`
            insert into metric_points (series_id, step, value)
            select * from unnest(${c.seriesIds}::int4[], ${c.steps}::int8[], ${c.values}::float8[])
            on conflict (series_id, step) do update set value = excluded.value`.execute(),
          );
          for (const query of recomputeSummaries(tx, rewrite)) writes.push(query.execute());
        }
        // In chunks, so that the server stores one while the next is being built.
        for (const chunk of chunkGroups(append, APPEND_CHUNK_POINTS)) {
          const c = toColumns(chunk);
          writes.push(
            tx`
            insert into metric_points (series_id, step, value)
            select * from unnest(${c.seriesIds}::int4[], ${c.steps}::int8[], ${c.values}::float8[])`.execute(),
          );
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (append.length > 0) writes.push(mergeAppendSummaries(tx, append).execute());
      }
      const u = runUpdate(input);
      writes.push(
        tx`
        update runs set
          metrics_offset = ${input.toOffset},
          malformed_lines = least(${INT4_MAX}, malformed_lines::int8 + ${u.malformed}::int8)::int4,
          oversized_lines = least(${INT4_MAX}, oversized_lines::int8 + ${u.oversized}::int8)::int4,
          step = coalesce(${u.step}::int4, step),
          total_steps = coalesce(${u.totalSteps}::int4, total_steps),
          epoch = coalesce(${u.epoch}::float8, epoch),
          eta_state = case when ${u.etaState !== undefined} then ${u.etaState ?? null}::jsonb else eta_state end,
          eta_seconds = case when ${u.etaSeconds !== undefined} then ${u.etaSeconds ?? null}::int4 else eta_seconds end
        where id = ${runId}`.execute(),
      );
      // Pipelined on the transaction's connection, run in the order issued: one round trip.
      await Promise.all(writes);
      return { committed: true, committedOffset: input.toOffset };
    });
  }

  return { commitBatch };
}

/** The offset a reader of the run resumes from. */
export async function readCommittedOffset(db: Db, runId: number): Promise<number> {
  const [run] = await db.select({ offset: runs.metricsOffset }).from(runs).where(eq(runs.id, runId));
  if (!run) throw new RunNotFoundError(runId);
  return run.offset;
}

/**
 * Makes `ownerAttempt` the run's owner (the last claim wins, see the top of this
 * file) and returns the offset to resume reading from, with the owner it displaced.
 */
export async function claimRun(
  db: Db,
  runId: number,
  ownerAttempt: string,
): Promise<{ committedOffset: number; previousOwner: string | null }> {
  return db.transaction(async (tx) => {
    const [run] = await tx
      .select({ owner: runs.ownerAttempt, offset: runs.metricsOffset })
      .from(runs)
      .where(eq(runs.id, runId))
      .for('update');
    if (!run) throw new RunNotFoundError(runId);
    await tx.update(runs).set({ ownerAttempt }).where(eq(runs.id, runId));
    return { committedOffset: run.offset, previousOwner: run.owner };
  });
}

function seriesNames(points: readonly MetricPointInput[]): string[] {
  const names = new Set<string>();
  for (const point of points) names.add(point.series);
  return [...names];
}

// Progress fields outside the columns' int4 range (or not integers) leave the
// stored value as it is rather than failing the commit, which would stall ingest.
// null means "leave as it is" for progress; undefined for the ETA fields.
interface RunUpdate {
  malformed: number;
  oversized: number;
  step: number | null;
  totalSteps: number | null;
  epoch: number | null;
  etaState: string | null | undefined;
  etaSeconds: number | null | undefined;
}

function runUpdate(input: CommitBatchInput): RunUpdate {
  const progress = input.progress;
  const int4 = (value: number | undefined): number | null => (value !== undefined && isInt4(value) ? value : null);
  return {
    malformed: countOf(input.malformed),
    oversized: countOf(input.oversized),
    step: int4(progress?.step),
    totalSteps: int4(progress?.totalSteps),
    epoch: progress?.epoch !== undefined && Number.isFinite(progress.epoch) ? progress.epoch : null,
    etaState:
      input.etaState === undefined ? undefined : input.etaState === null ? null : JSON.stringify(input.etaState),
    etaSeconds:
      input.etaSeconds === undefined
        ? undefined
        : input.etaSeconds === null || !Number.isFinite(input.etaSeconds)
          ? null
          : Math.max(0, Math.min(INT4_MAX, Math.round(input.etaSeconds))),
  };
}

function isInt4(value: number): boolean {
  return Number.isInteger(value) && value >= -INT4_MAX - 1 && value <= INT4_MAX;
}

function countOf(value: number): number {
  return Number.isFinite(value) && value > 0 ? Math.min(INT4_MAX, Math.floor(value)) : 0;
}
