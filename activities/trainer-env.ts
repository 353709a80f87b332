// The whole environment a trainer starts with (docs/design.md §5): PATH, HOME and LANG,
// the template's env and secret env, the TRAINYARD_* variables and the slot's GPUs —
// nothing of the worker's own. The run's snapshot keeps the secret env sealed
// (services/templates.ts); it is opened only here, for the one moment of the launch, and
// a key that cannot be opened fails the launch for good: retrying with the same
// TRAINYARD_SECRET cannot help.
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { and, desc, eq, isNotNull, lt } from 'drizzle-orm';
import { runs } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';
import { KeyboxError, openSecretEnv } from '../lib/keybox.js';
import { METRICS_FILE } from '../metrics/tail.js';
import type { MachineContext, RunRow } from './machine-context.js';

function secretEnvOf(secret: string, snapshot: { secretEnv?: Record<string, string> | null }): Record<string, string> {
  try {
    return openSecretEnv(secret, snapshot.secretEnv);
  } catch (error) {
    if (error instanceof KeyboxError) throw ApplicationFailure.nonRetryable(error.message, FAILURE.launchFailed);
    throw error;
  }
}

export async function trainerEnv(ctx: MachineContext, run: RunRow, runDir: string): Promise<Record<string, string>> {
  const { db, machine } = ctx;
  const template = run.templateSnapshot as {
    env?: Record<string, string>;
    secretEnv?: Record<string, string>;
    totalSteps?: number | null;
  };
  const root = await ctx.executor().runsRoot();
  const local = ctx.executor().kind === 'local';
  const env: Record<string, string> = {
    PATH: local
      ? (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin')
      : '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: local ? (process.env.HOME ?? '/') : path.posix.dirname(path.posix.dirname(root)),
    LANG: local ? (process.env.LANG ?? 'C.UTF-8') : 'C.UTF-8',
    ...(template.env ?? {}),
    ...secretEnvOf(ctx.secret, template),
    TRAINYARD_RUN_DIR: runDir,
    TRAINYARD_METRICS_FILE: path.posix.join(runDir, METRICS_FILE),
    TRAINYARD_PARAMS: JSON.stringify(run.params ?? {}),
  };
  const totalSteps = run.params?.total_steps ?? template.totalSteps;
  if (typeof totalSteps === 'number' && Number.isFinite(totalSteps)) env.TRAINYARD_TOTAL_STEPS = String(totalSteps);
  // Resume from a stopped previous run on this machine, or from the failed one a restart
  // follows (attempt > 1: the restart policy started this run); a completed run, or a
  // failed one the user started again, starts fresh.
  const [previous] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.processId, run.processId), lt(runs.number, run.number), isNotNull(runs.finishedAt)))
    .orderBy(desc(runs.number))
    .limit(1);
  const resumable = previous?.status === 'stopped' || (previous?.status === 'failed' && run.attempt > 1);
  if (previous && resumable && previous.machineId === machine.id && previous.runDir) {
    env.TRAINYARD_PREVIOUS_RUN_DIR = previous.runDir;
  }
  if (machine.gpus.length > 0 && run.slotIndex !== null) {
    const perSlot = Math.max(1, Math.floor(machine.gpus.length / machine.slots));
    const mine = machine.gpus.slice(run.slotIndex * perSlot, run.slotIndex * perSlot + perSlot);
    if (mine.length > 0) env.CUDA_VISIBLE_DEVICES = mine.join(',');
  }
  return env;
}
