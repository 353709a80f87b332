// launchTrainer: starts the run's trainer on the machine, or adopts the one an earlier or
// overlapping attempt started, so that however often it is retried one trainer runs.
import crypto from 'node:crypto';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, isNull } from 'drizzle-orm';
import { runs } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';
import { isExecutorError, type TrainerHandle } from '../executors/types.js';
import { graceMsOf, handleOf, loadRun, type MachineContext, type RunRow } from './machine-context.js';
import { secondsSince } from '../telemetry/hooks.js';
import { callingWorkflow } from './ownership.js';
import { trainerEnv } from './trainer-env.js';
import { processKeyOf } from '../workflows/messages.js';

// How long a launch that found its run directory taken waits for the other launch's handle.
const HANDLE_WAIT_MS = 15_000;
// The grace a trainer launched too late gets: it has done nothing worth saving yet.
const LATE_LAUNCH_GRACE_MS = 5_000;

export async function launchTrainer(ctx: MachineContext, runId: number): Promise<{ pid: number }> {
  const { db } = ctx;
  const startedAt = performance.now();
  const run = await loadRun(db, runId);
  // A late attempt (one that outlived its timeout) must not start what the workflow gave up on.
  if (run.finishedAt)
    throw ApplicationFailure.nonRetryable(`Run ${runId} is finished; nothing to launch.`, FAILURE.launchFailed);
  try {
    const adopted = handleOf(run);
    if (adopted) return { pid: adopted.pid };
    const { runDir, ours } = await claimRunDir(ctx, run);
    // An earlier or overlapping attempt may have launched before it could record the
    // handle: adopt it. (A directory this attempt just claimed holds nothing yet.)
    const recorded = ours ? null : await ctx.executor().readHandle(runDir);
    if (recorded) {
      await recordHandle(ctx, runId, recorded);
      return { pid: recorded.pid };
    }
    const template = run.templateSnapshot as { command: string; workingDir?: string | null };
    let handle: TrainerHandle;
    try {
      handle = await ctx.executor().launch({
        runDir,
        command: template.command,
        ...(template.workingDir ? { workingDir: template.workingDir } : {}),
        env: await trainerEnv(ctx, run, runDir),
      });
    } catch (error) {
      if (!isExecutorError(error, 'RUN_DIR_EXISTS')) throw error;
      // Another attempt created the directory; its wrapper records the handle right after.
      const found = await handleSoon(ctx, runDir);
      if (!found)
        throw ApplicationFailure.nonRetryable(
          `The run directory ${runDir} exists but holds no trainer.`,
          FAILURE.launchFailed,
        );
      handle = found;
    }
    await recordHandle(ctx, runId, handle);
    // The workflow gave up on this run while this (late) attempt launched: nobody
    // watches this trainer, so it must not keep its GPUs.
    const [now] = await db.select({ finishedAt: runs.finishedAt }).from(runs).where(eq(runs.id, runId));
    if (now?.finishedAt) {
      await ctx.executor().stop(handle, Math.min(graceMsOf(run), LATE_LAUNCH_GRACE_MS));
      throw ApplicationFailure.nonRetryable(
        `Run ${runId} finished while this attempt launched; its trainer was stopped.`,
        FAILURE.launchFailed,
      );
    }
    // Counted for a trainer this attempt started, never for one it adopted.
    ctx.telemetry.trainerLaunched(ctx.machine.name, secondsSince(startedAt));
    ctx.telemetry.runStarted(ctx.machine.name);
    return { pid: handle.pid };
  } catch (error) {
    typedFailure(error);
  }
}

async function recordHandle(ctx: MachineContext, runId: number, handle: TrainerHandle): Promise<void> {
  await ctx.db
    .update(runs)
    .set({
      pid: handle.pid,
      pgid: handle.pgid,
      processStartTime: handle.startTime,
      runDir: handle.runDir,
      startedAt: new Date(),
    })
    .where(eq(runs.id, runId));
}

/**
 * The run's directory, chosen once: overlapping attempts of launchTrainer agree on the
 * first one recorded, so they cannot start two trainers in two directories. `ours`:
 * this call recorded it, so no trainer can be there yet.
 */
async function claimRunDir(ctx: MachineContext, run: RunRow): Promise<{ runDir: string; ours: boolean }> {
  if (run.runDir !== null) return { runDir: run.runDir, ours: false };
  const root = await ctx.executor().runsRoot();
  // The process key from the calling workflow's id (assertOwner made sure the process is its
  // own), so that its trainers can be found on the machine without the database
  // (activities/strays.ts); and a random part: ids restart with a restored database, and a run
  // must never adopt the trainer an older run left in a directory of the same name.
  const caller = callingWorkflow();
  const key = caller ? processKeyOf(caller) : null;
  const fresh = path.posix.join(
    root,
    `process-${run.processId}`,
    `run-${run.number}-${run.id}-${key ? `${key}-` : ''}${crypto.randomBytes(4).toString('hex')}`,
  );
  const [claimed] = await ctx.db
    .update(runs)
    .set({ runDir: fresh })
    .where(and(eq(runs.id, run.id), isNull(runs.runDir)))
    .returning({ runDir: runs.runDir });
  if (claimed) return { runDir: fresh, ours: true };
  const stored = (await loadRun(ctx.db, run.id)).runDir;
  if (stored === null) throw new Error(`Run ${run.id}: the run directory was neither recorded nor found.`);
  return { runDir: stored, ours: false };
}

/** The handle a launch under way in `runDir` is about to record (its wrapper writes it within moments). */
async function handleSoon(ctx: MachineContext, runDir: string): Promise<TrainerHandle | null> {
  const deadline = Date.now() + HANDLE_WAIT_MS;
  for (;;) {
    const found = await ctx.executor().readHandle(runDir);
    if (found || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The executor's expected launch failures as typed, non-retryable ones; anything else as it is. */
function typedFailure(error: unknown): never {
  if (isExecutorError(error, 'HOST_KEY_MISMATCH'))
    throw ApplicationFailure.nonRetryable(error.message, FAILURE.hostKeyMismatch);
  if (
    isExecutorError(error, 'HOST_KEY_NOT_PINNED') ||
    isExecutorError(error, 'AUTH_FAILED') ||
    isExecutorError(error, 'LAUNCH_FAILED')
  ) {
    throw ApplicationFailure.nonRetryable((error as Error).message, FAILURE.launchFailed);
  }
  throw error;
}
