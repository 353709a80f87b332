// runTraining: watches the run's trainer until its process group is gone. Each pass looks
// at the trainer, lets the metrics tail (metrics/tail.ts) commit what the file holds,
// heartbeats and keeps the ends of its logs in the run's row. A retried attempt claims
// the run and re-attaches from the committed offset; a machine that stops answering
// is waited for up to its lost timeout.
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { runs } from '../db/schema.js';
import { initialEta, type EtaState } from '../domain/eta.js';
import { FAILURE } from '../domain/failures.js';
import { pgText } from '../domain/pg-text.js';
import { rejectedOutput } from '../metrics/data-errors.js';
import { claimRun, type MetricsStore } from '../metrics/store.js';
import { METRICS_FILE, MetricsTail } from '../metrics/tail.js';
import { handleOf, loadRun, unreachable, type MachineContext } from './machine-context.js';
import { stallWatch } from './stall.js';
import type { TrainerOutcome } from './types.js';

const LOG_TAIL_BYTES = 16 * 1024;

export async function runTraining(ctx: MachineContext, store: MetricsStore, runId: number): Promise<TrainerOutcome> {
  const { db, machine } = ctx;
  const context = Context.current();
  const info = context.info;
  const token = `${info.workflowExecution?.runId ?? 'standalone'}/${info.activityId}#${info.attempt}`;
  const run = await loadRun(db, runId);
  const handle = handleOf(run);
  if (!handle) throw ApplicationFailure.nonRetryable(`Run ${runId} has no launched trainer.`, FAILURE.launchFailed);
  // Claim before touching anything: an older attempt still alive is fenced out from here on.
  const { committedOffset } = await claimRun(db, runId, token);
  const tail = new MetricsTail({
    // Looked up on each read, like every other use of the executor in this loop.
    source: { readChunk: (file, offset, maxBytes) => ctx.executor().readChunk(file, offset, maxBytes) },
    file: path.posix.join(handle.runDir, METRICS_FILE),
    store,
    runId,
    ownerAttempt: token,
    fromOffset: committedOffset,
    eta: (run.etaState as EtaState | null) ?? initialEta({ totalSteps: run.totalSteps }),
    onCommit: (commit) => ctx.telemetry.metricsCommitted(commit),
  });
  // Silence counts from the launch; for a re-attached watch, from its own start (when the
  // trainer last wrote before is not known here).
  const silentSince = info.attempt === 1 && run.startedAt ? run.startedAt.getTime() : Date.now();
  const stall = stallWatch(db, run, tail.offset, silentSince, ctx.notifier);
  let unreachableSince: number | null = run.unreachableSince ? run.unreachableSince.getTime() : null;
  const lostMs = machine.lostTimeoutSeconds * 1000;
  let lastBeat = 0;

  for (;;) {
    if (context.cancellationSignal.aborted) {
      // Worker shutdown or a timed-out attempt: let go; the next attempt re-attaches.
      throw new CancelledFailure('Let go of the trainer; it keeps running.');
    }
    try {
      // Inspect before reading: once the group is gone, the reads reach the file's end.
      const state = await ctx.executor().inspect(handle);
      const committed = await tail.catchUp(state.alive);
      if (unreachableSince !== null) {
        unreachableSince = null;
        stall.clock.pause(Date.now());
        await db.update(runs).set({ unreachableSince: null }).where(eq(runs.id, runId));
      }
      if (!state.alive) {
        await tail.finish();
        const { stderr } = await copyLogTails(ctx, runId, handle.runDir);
        return { exitCode: state.exitCode, stderrTail: stderr.split('\n').slice(-10).join('\n').slice(-2000) };
      }
      await stall.note(stall.clock.observe(tail.offset, Date.now()));
      if (Date.now() - lastBeat > ctx.heartbeatMs) {
        context.heartbeat({ offset: tail.offset });
        lastBeat = Date.now();
        await copyLogTails(ctx, runId, handle.runDir);
      }
      // A pass that committed nothing sleeps before the next (see MetricsTail.catchUp).
      if (!committed) {
        const woken = new Promise<void>((resolve) => ctx.wakers.set(runId, resolve));
        await Promise.race([context.sleep(ctx.idlePollMs).catch(() => undefined), woken]);
        ctx.wakers.delete(runId);
      }
    } catch (error) {
      if (error instanceof ApplicationFailure && error.type === FAILURE.stalled) throw error;
      const rejected = rejectedOutput(error);
      if (rejected) throw rejected;
      if (!unreachable(error)) throw error;
      const now = Date.now();
      if (unreachableSince === null) {
        unreachableSince = now;
        await db
          .update(runs)
          .set({ unreachableSince: new Date(now) })
          .where(eq(runs.id, runId));
      }
      if (now - unreachableSince > lostMs) {
        throw ApplicationFailure.nonRetryable(
          `The machine "${machine.name}" was unreachable for more than ${machine.lostTimeoutSeconds} s: ${(error as Error).message}`,
          FAILURE.machineLost,
        );
      }
      context.heartbeat({ offset: tail.offset, unreachable: true });
      await context.sleep(1000).catch(() => undefined);
    }
  }
}

/**
 * Copies the ends of stdout/stderr into the run's row, so logs stay viewable without the
 * machine; NUL bytes and the like become U+FFFD, which PostgreSQL text can hold.
 */
async function copyLogTails(
  ctx: MachineContext,
  runId: number,
  runDir: string,
): Promise<{ stdout: string; stderr: string }> {
  const [stdout, stderr] = (
    await Promise.all([
      ctx.executor().tail(path.posix.join(runDir, 'stdout.log'), LOG_TAIL_BYTES),
      ctx.executor().tail(path.posix.join(runDir, 'stderr.log'), LOG_TAIL_BYTES),
    ])
  ).map(pgText) as [string, string];
  const key = `${stdout.length}:${stdout.slice(-64)}|${stderr.length}:${stderr.slice(-64)}`;
  if (ctx.logTails.get(runId) !== key) {
    await ctx.db.update(runs).set({ stdoutTail: stdout, stderrTail: stderr }).where(eq(runs.id, runId));
    ctx.logTails.set(runId, key);
  }
  return { stdout, stderr };
}
