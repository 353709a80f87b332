// The lost-trainer reaper of a machine worker. Trainers of runs that failed while the
// machine was unreachable, or whose workflow was closed by hand
// (services/process-workflow.ts), are flagged `trainerMayRemain`: once the machine
// answers, any that is still alive is stopped and noted in its process's log, never
// re-adopted.
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { processEvents, runs } from '../db/schema.js';
import { graceMsOf, handleOf } from '../activities/machine-context.js';
import type { MachineRow } from '../executors/factory.js';
import type { Executor } from '../executors/types.js';

export interface LostTrainerDeps {
  db: Db;
  machine: MachineRow;
  executor(): Executor;
}

/** The advisory lock (with the run id) that lets one reaper at a time look at a run. */
const REAP_LOCK = 0x7472_6c74; // "trlt"

/** Stops the flagged trainers still alive on the machine; returns how many it stopped. */
export async function reapLostTrainers({ db, machine, executor }: LostTrainerDeps): Promise<number> {
  const lost = await db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.machineId, machine.id), eq(runs.trainerMayRemain, true)));
  let stopped = 0;
  for (const { id } of lost) {
    // One reaper per run, when several workers serve the machine: the others skip it. An
    // advisory lock, not the row's: ingest locks the run's row for every batch it commits
    // (metrics/store.ts), and a reaper that skipped a locked row skipped a trainer that was
    // still writing, until the next periodic probe. The lock is held until the trainer is
    // gone; if the machine fails to answer, the flag stays set for the next look.
    await db.transaction(async (tx) => {
      const [lock] = await tx.execute<{ got: boolean }>(
        sql`select pg_try_advisory_xact_lock(${REAP_LOCK}, ${id}) as got`,
      );
      if (!lock?.got) return;
      const [run] = await tx
        .select()
        .from(runs)
        .where(and(eq(runs.id, id), eq(runs.trainerMayRemain, true)));
      if (!run) return;
      const handle = handleOf(run) ?? (run.runDir ? await executor().readHandle(run.runDir) : null);
      if (handle && (await executor().inspect(handle)).alive) {
        await executor().stop(handle, graceMsOf(run));
        await tx.insert(processEvents).values({
          processId: run.processId,
          runId: run.id,
          level: 'warn',
          message: run.unreachableSince
            ? `The trainer of run ${run.number} (pid ${handle.pid}) was still running when the machine "${machine.name}" answered again; it was stopped.`
            : `The trainer of run ${run.number} (pid ${handle.pid}) was still running after its run had ended; it was stopped.`,
        });
        stopped += 1;
      }
      await tx.update(runs).set({ trainerMayRemain: false }).where(eq(runs.id, run.id));
    });
  }
  return stopped;
}
