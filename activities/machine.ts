// Activities on a machine's own task queue `machine-<id>`: launch (launch.ts), watch
// (watch.ts: tail metrics, heartbeat, re-attach on retry), stop (stop.ts), probe, and
// clean up a process's run directories. Each adapts the executors (executors/) and the
// metrics pipeline (metrics/) to the workflow.
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Db } from '../db/client.js';
import { machines, runs } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';
import { pgText } from '../domain/pg-text.js';
import { createExecutorFor, type MachineRow } from '../executors/factory.js';
import type { Executor } from '../executors/types.js';
import { createMetricsStore } from '../metrics/store.js';
import { reportingNonFiniteLoss } from '../metrics/non-finite-loss.js';
import { nonFiniteText } from '../domain/notifications.js';
import type { Notifier } from '../services/notifications.js';
import { launchTrainer } from './launch.js';
import { ownedOnly } from './ownership.js';
import { stopTrainersOf } from './strays.js';
import { heartbeating, type MachineContext } from './machine-context.js';
import { stopTrainer } from './stop.js';
import { NO_TELEMETRY, type WorkerTelemetry } from '../telemetry/hooks.js';
import type { MachineActivities, MachineProbe } from './types.js';
import { runTraining } from './watch.js';

export type { MachineRow };

export interface MachineDeps {
  db: Db;
  sql: postgres.Sql;
  machine: MachineRow;
  dataDir: string;
  secret: string;
  keysDir: string | null;
  /** Poll interval of the metrics tail when the file is quiet. */
  idlePollMs?: number;
  /** How often long activities (a grace period, a removal) heartbeat; default 2 s. */
  heartbeatMs?: number;
  telemetry?: WorkerTelemetry;
  /** Announces a run's first NaN/±Infinity loss to subscribed channels; none → no notifications. */
  notifier?: Pick<Notifier, 'announceProcessEvent'>;
}

const HEARTBEAT_MS = 2000;

export function createMachineActivities(deps: MachineDeps): {
  activities: MachineActivities;
  /** The machine's executor, for the worker's housekeeping (workers/lost-trainers.ts). */
  executor(): Executor;
  dispose(): Promise<void>;
} {
  const { db, machine } = deps;
  // Built on first use: a machine with a bad key or address fails its own activities with
  // the reason, and never stops the worker from serving the other machines.
  let built: Executor | null = null;
  const executor = (): Executor => {
    if (built) return built;
    try {
      built = createExecutorFor(machine, { dataDir: deps.dataDir, secret: deps.secret, keysDir: deps.keysDir });
      return built;
    } catch (error) {
      throw ApplicationFailure.nonRetryable(
        `Machine "${machine.name}": ${(error as Error).message}`,
        FAILURE.launchFailed,
      );
    }
  };
  const ctx: MachineContext = {
    db,
    machine,
    secret: deps.secret,
    executor,
    idlePollMs: deps.idlePollMs ?? 200,
    heartbeatMs: deps.heartbeatMs ?? HEARTBEAT_MS,
    wakers: new Map(),
    logTails: new Map(),
    telemetry: deps.telemetry ?? NO_TELEMETRY,
    ...(deps.notifier ? { notifier: deps.notifier } : {}),
  };
  const notifier = deps.notifier;
  const store = notifier
    ? reportingNonFiniteLoss(createMetricsStore(db, deps.sql), async (found) => {
        const [run] = await db.select({ processId: runs.processId }).from(runs).where(eq(runs.id, found.runId));
        if (!run) return;
        await notifier.announceProcessEvent({
          processId: run.processId,
          runId: found.runId,
          event: 'non_finite_loss',
          metric: { name: found.series, step: found.step, value: nonFiniteText(found.value) },
        });
      })
    : createMetricsStore(db, deps.sql);

  const activities: MachineActivities = {
    launchTrainer: (runId) => launchTrainer(ctx, runId),
    runTraining: (runId) => runTraining(ctx, store, runId),
    stopTrainer: (runId, options) => stopTrainer(ctx, runId, options),
    // Not checked for ownership: it reads no row, and stops only the trainers of the key it is given.
    stopTrainersOf: (spec) => stopTrainersOf(ctx, spec),

    async probeMachine() {
      let result: MachineProbe;
      try {
        result = { ...(await executor().probe()), probedAt: new Date().toISOString() };
      } catch (error) {
        result = { reachable: false, error: (error as Error).message, probedAt: new Date().toISOString() };
      }
      // Stored as jsonb, which refuses what text refuses: the error may quote the machine's output.
      if (result.error !== undefined) result.error = pgText(result.error);
      if (result.gpus) result.gpus = result.gpus.map((gpu) => ({ ...gpu, name: pgText(gpu.name) }));
      await db
        .update(machines)
        .set({ probe: result, probedAt: new Date(result.probedAt) })
        .where(eq(machines.id, machine.id));
      return result;
    },

    async removeRunDirs(processId) {
      // A big run directory (checkpoints, many files) can take minutes to remove, over SSH
      // too: the activity heartbeats all along, so its time budget is the workflow's long
      // one while a dead worker is still noticed within the heartbeat timeout.
      const removal = (async () => {
        const rows = await db
          .select()
          .from(runs)
          .where(and(eq(runs.processId, processId), eq(runs.machineId, machine.id)));
        for (const row of rows) {
          if (row.runDir) await executor().removeRunDir(row.runDir);
        }
        const root = await executor().runsRoot();
        await executor().removeRunDir(path.posix.join(root, `process-${processId}`));
      })();
      Context.current().heartbeat();
      await heartbeating(ctx.heartbeatMs, removal);
    },
  };

  return {
    // A workflow launches, watches, stops and removes only its own process's runs (activities/ownership.ts).
    activities: ownedOnly(db, activities, {
      launchTrainer: (runId) => ({ runId }),
      runTraining: (runId) => ({ runId }),
      stopTrainer: (runId) => ({ runId }),
      removeRunDirs: (processId) => ({ processId }),
    }),
    executor,
    dispose: async () => {
      await built?.close();
    },
  };
}
