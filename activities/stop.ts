// stopTrainer: TERM, the template's grace period, KILL. The grace runs from the first TERM,
// which the heartbeat remembers, so a stop that outlives a worker carries on where it was.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../domain/failures.js';
import { isExecutorError, type TrainerHandle } from '../executors/types.js';
import {
  graceMsOf,
  handleOf,
  heartbeating,
  letGoIfCancelled,
  loadRun,
  unreachable,
  type MachineContext,
} from './machine-context.js';
import type { StopOptions } from './types.js';

// How often a stop in its grace period looks whether the trainer is gone.
const STOP_POLL_MS = 50;

/** Heartbeat details of stopTrainer: when its first TERM was sent (ms since the epoch). */
interface StopProgress {
  termSentAt: number;
}

export async function stopTrainer(
  ctx: MachineContext,
  runId: number,
  options?: StopOptions,
): Promise<{ killed: boolean }> {
  const { machine } = ctx;
  const context = Context.current();
  const run = await loadRun(ctx.db, runId);
  const graceMs = graceMsOf(run);
  // When an earlier attempt of this stop sent TERM (its heartbeat said so), the grace
  // runs from then: a worker restart mid-grace must not start it afresh, or a trainer
  // that ignores TERM could outlive every attempt.
  const earlier = context.info.heartbeatDetails as Partial<StopProgress> | undefined;
  let termSentAt = typeof earlier?.termSentAt === 'number' ? earlier.termSentAt : null;
  const startedAt = Date.now();
  for (;;) {
    try {
      const handle = handleOf(run) ?? (run.runDir ? await ctx.executor().readHandle(run.runDir) : null);
      if (!handle) return { killed: false };
      if (termSentAt === null) {
        const at = Date.now();
        // Said before the TERM leaves, so that a worker dying right after it cannot lose it.
        context.heartbeat({ termSentAt: at } satisfies StopProgress);
        try {
          await ctx.executor().signal(handle, 'TERM');
        } catch (error) {
          // No connection was made, so no TERM went out: the grace has not begun.
          if (isExecutorError(error, 'UNREACHABLE')) context.heartbeat({});
          throw error;
        }
        termSentAt = at;
      }
      const progress: StopProgress = { termSentAt };
      context.heartbeat(progress);
      // Wait out what is left of the grace (all of it, unless an earlier attempt sent the
      // TERM), then TERM again in case it never arrived, and KILL.
      const gone = await heartbeating(
        ctx.heartbeatMs,
        goneWithin(ctx, handle, Math.max(0, termSentAt + graceMs - Date.now()), context),
        progress,
      );
      const stopped = gone
        ? { killed: false }
        : await heartbeating(ctx.heartbeatMs, ctx.executor().stop(handle, 0), progress);
      ctx.wakers.get(runId)?.();
      // From the TERM (sent by this attempt or an earlier one) to the group gone.
      ctx.telemetry.trainerStopped(machine.name, (Date.now() - termSentAt) / 1000);
      return stopped;
    } catch (error) {
      if (!unreachable(error)) throw error;
      if (
        Date.now() - startedAt >
        Math.min(machine.lostTimeoutSeconds, options?.unreachableForSeconds ?? Infinity) * 1000
      ) {
        throw ApplicationFailure.nonRetryable(
          `Could not stop the trainer: the machine "${machine.name}" is unreachable.`,
          FAILURE.machineLost,
        );
      }
      context.heartbeat(termSentAt === null ? undefined : { termSentAt });
      await context.sleep(1000).catch(() => undefined);
      letGoIfCancelled(context);
    }
  }
}

/**
 * True once the trainer's group is gone, false if it is still there after `ms`. A worker
 * shutting down mid-grace lets go (CancelledFailure): the next attempt of the stop keeps
 * the first TERM's deadline from its heartbeat, so nothing is lost by leaving.
 */
async function goneWithin(ctx: MachineContext, handle: TrainerHandle, ms: number, context?: Context): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!(await ctx.executor().inspect(handle)).alive) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    letGoIfCancelled(context);
    await new Promise((resolve) => setTimeout(resolve, Math.min(STOP_POLL_MS, left)));
  }
}
