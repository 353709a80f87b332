// What the activities of one machine share: its row, the database, its executor (built on
// first use) and the small rules every one of them applies to the runs it touches.
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { MachineRow } from '../executors/factory.js';
import { runs } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';
import { isExecutorError, type Executor, type TrainerHandle } from '../executors/types.js';
import type { WorkerTelemetry } from '../telemetry/hooks.js';
import type { EventNotifier } from './process-events.js';

export type RunRow = typeof runs.$inferSelect;

export interface MachineContext {
  db: Db;
  machine: MachineRow;
  secret: string;
  /** The machine's executor; a machine it cannot be built for fails the activity for good. */
  executor(): Executor;
  /** Poll interval of the metrics tail when the file is quiet. */
  idlePollMs: number;
  /** How often long activities heartbeat. */
  heartbeatMs: number;
  /**
   * The watch loop of each run this worker reads, by run id: a stop that has seen the
   * trainer gone wakes it, so `stopped` does not wait for the loop's next poll.
   */
  wakers: Map<number, () => void>;
  /** What copyLogTails last stored for each run, so unchanged logs are not written again. */
  logTails: Map<number, string>;
  telemetry: WorkerTelemetry;
  /** Announces stalls to subscribers; none in tests that do not need it. */
  notifier?: EventNotifier;
}

export async function loadRun(db: Db, runId: number): Promise<RunRow> {
  const [run] = await db.select().from(runs).where(eq(runs.id, runId));
  if (!run) throw ApplicationFailure.nonRetryable(`Run ${runId} does not exist.`, FAILURE.notFound);
  return run;
}

export function handleOf(run: RunRow): TrainerHandle | null {
  if (run.pid === null || run.pgid === null || run.processStartTime === null || run.runDir === null) return null;
  return { pid: run.pid, pgid: run.pgid, startTime: run.processStartTime, runDir: run.runDir };
}

/** The template's stop grace period, in ms. */
export function graceMsOf(run: RunRow): number {
  return ((run.templateSnapshot as { stopGraceSeconds?: number }).stopGraceSeconds ?? 30) * 1000;
}

/** Errors that mean "the machine is not answering now", as opposed to a bug or a refusal. */
export function unreachable(error: unknown): boolean {
  return isExecutorError(error, 'UNREACHABLE') || isExecutorError(error, 'CONNECTION_LOST');
}

/** A worker shutting down (or a timed-out attempt): let go; the next attempt carries on from the heartbeat. */
export function letGoIfCancelled(context: Context | undefined): void {
  if (context?.cancellationSignal.aborted)
    throw new CancelledFailure('Let go of the stop; the next attempt carries on.');
}

/** Heartbeats while `work` runs, so long waits (a grace period) do not time out. */
export async function heartbeating<T>(heartbeatMs: number, work: Promise<T>, details?: unknown): Promise<T> {
  const context = Context.current();
  const timer = setInterval(() => context.heartbeat(details), heartbeatMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
