// `trainyard reconcile`, also run by every worker at start (without the pass over rows, which
// the worker's workflow reconciler makes for the rows holding work): puts the database and Temporal
// back in step after something moved one behind the other's back — a database restored
// from a backup, a workflow terminated by hand, a second installation on the namespace.
//
// - A process row whose workflow is not running gets one again (restoreProcessWorkflow: its
//   active run ends as failed with the reason, its lease is freed).
// - A running workflow of this installation that no row names (its row was lost with a
//   restore) is terminated, unless told to keep it: its activities already refuse rows that
//   are not its own (activities/ownership.ts). Then its trainers on its machine are stopped,
//   found by the process key in their run directories (activities/strays.ts). Other
//   installations' workflows are never touched: only ids with this installation's prefix are
//   looked at.
// - The queues from before installation ids stop being polled once nothing runs on them.
import crypto from 'node:crypto';
import { WorkflowNotFoundError, type Client, type WorkflowExecutionStatusName } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { processes } from '../db/schema.js';
import { eachLimited } from '../lib/each-limited.js';
import type { stopTrainersWorkflow } from '../workflows/stop-trainers.js';
import { installationOf, legacyQueuesInUse, retireLegacyQueues } from '../services/installation.js';
import { describeWorkflow, processesByWorkflowId, restoreProcessWorkflow } from '../services/process-workflow.js';
import {
  controlTaskQueue,
  LEGACY_CONTROL_TASK_QUEUE,
  LEGACY_PROCESS_WORKFLOW_ID,
  processKeyOf,
  processWorkflowPrefix,
  stopTrainersWorkflowId,
} from '../workflows/messages.js';

export interface ReconcileOptions {
  /** Report only: change nothing. */
  dryRun?: boolean;
  /** Report workflows without rows but leave them running. */
  keepOrphans?: boolean;
  /**
   * Look at every row's workflow (the command). A worker's start leaves it out: its workflow
   * reconciler describes the rows holding work on its first pass, and an idle row's workflow
   * is started again by its first action anyway.
   */
  checkRows?: boolean;
  /**
   * How long an orphan's trainer stop is waited for before it is reported as pending (ms;
   * a minute). A worker's start does not wait: the stop is a workflow, it finishes alone.
   */
  trainerWaitMs?: number;
}

export interface RestoredProcess {
  processId: number;
  workflowId: string;
  /** What Temporal said of its workflow before. */
  state: WorkflowExecutionStatusName | 'missing';
  outcome: 'restored' | 'would restore' | 'running' | 'failed';
  error?: string;
}

export interface OrphanWorkflow {
  workflowId: string;
  /** From the workflow's memo: the process it was started for, and its machine. */
  processId: number | null;
  machineId: number | null;
  outcome: 'terminated' | 'kept' | 'would terminate' | 'failed';
  error?: string;
  /** Once terminated: the pids of its trainers stopped on its machine (activities/strays.ts)… */
  trainersStopped?: number[];
  /** …or why they could not be… */
  trainersError?: string;
  /**
   * …or the workflow that stops them once a worker serves the machine. None of the three when
   * they could not be looked for (an id from before installation ids).
   */
  trainersPending?: string;
}

export interface ReconcileReport {
  installation: string;
  dryRun: boolean;
  /** Rows looked at: not those being deleted (left to their workflow); none at a worker's start. */
  processes: number;
  restored: RestoredProcess[];
  orphans: OrphanWorkflow[];
  /** The queues from before installation ids: not used, still in use, or retired by this pass. */
  legacyQueues: 'none' | 'in use' | 'retired' | 'would retire';
}

/** How many describes are in flight at once: a pass over thousands of rows must not flood the frontend. */
const CONCURRENCY = 8;

export async function reconcileInstallation(
  deps: { db: Db; client: Client },
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const dryRun = options.dryRun === true;
  const installation = await installationOf(deps.db);
  const legacy = await legacyQueuesInUse(deps.db);
  const live =
    options.checkRows === false
      ? []
      : await deps.db
          .select({ id: processes.id, workflowId: processes.workflowId })
          .from(processes)
          .where(eq(processes.deleting, false));

  // Rows without a running workflow. Described one by one, not read from a visibility list:
  // a list lags behind a start by up to a second, and a row whose workflow was just started
  // would be restored over it.
  const restored: RestoredProcess[] = [];
  let onLegacyQueue = false;
  await eachLimited(live, CONCURRENCY, async (row) => {
    const description = await describeWorkflow(deps.client, row.workflowId);
    const state = description?.status.name ?? 'missing';
    if (state === 'RUNNING') {
      if (description!.taskQueue === LEGACY_CONTROL_TASK_QUEUE) onLegacyQueue = true;
      return;
    }
    const entry: RestoredProcess = { processId: row.id, workflowId: row.workflowId, state, outcome: 'would restore' };
    restored.push(entry);
    if (dryRun) return;
    try {
      const result = await restoreProcessWorkflow(deps, row.id);
      entry.outcome = result.outcome === 'restored' ? 'restored' : 'running';
    } catch (error) {
      entry.outcome = 'failed';
      entry.error = (error as Error).message;
    }
  });

  // Running workflows of this installation that no row names.
  const prefix = processWorkflowPrefix(installation);
  const orphans: OrphanWorkflow[] = [];
  const listed: string[] = [];
  for await (const execution of deps.client.workflow.list({
    query: `WorkflowType = 'trainingProcessWorkflow' AND ExecutionStatus = 'Running'`,
  })) {
    const id = execution.workflowId;
    if (id.startsWith(prefix) || (legacy && LEGACY_PROCESS_WORKFLOW_ID.test(id))) listed.push(id);
  }
  // The rows are read after the list: a process's row is written before its workflow starts, so a
  // workflow listed here whose row is not found now has none (read before, a process made during the
  // pass would look like an orphan).
  const known = await processesByWorkflowId(deps.db, listed);
  const candidates = listed.filter((id) => !known.has(id));
  await eachLimited(candidates, CONCURRENCY, async (workflowId) => {
    // The list lags: the workflow may have ended since (a delete removes the row, then the workflow ends).
    const description = await describeWorkflow(deps.client, workflowId);
    if (description?.status.name !== 'RUNNING') return;
    const memo = (description.memo ?? {}) as { processId?: unknown; machineId?: unknown };
    const entry: OrphanWorkflow = {
      workflowId,
      processId: typeof memo.processId === 'number' ? memo.processId : null,
      machineId: typeof memo.machineId === 'number' ? memo.machineId : null,
      outcome: dryRun ? 'would terminate' : options.keepOrphans ? 'kept' : 'terminated',
    };
    orphans.push(entry);
    if (entry.outcome !== 'terminated') return;
    try {
      await deps.client.workflow
        .getHandle(workflowId)
        .terminate(`trainyard reconcile: no process of installation ${installation} has this workflow`);
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) {
        entry.outcome = 'failed';
        entry.error = (error as Error).message;
        return;
      }
    }
    // Terminated, it cannot stop its trainers: they are found by the key in their run directories.
    const key = processKeyOf(workflowId);
    if (key === null || entry.processId === null || entry.machineId === null) return;
    try {
      const handle = await deps.client.workflow.start<typeof stopTrainersWorkflow>('stopTrainersWorkflow', {
        taskQueue: controlTaskQueue(installation),
        workflowId: stopTrainersWorkflowId(installation, key, crypto.randomBytes(4).toString('hex')),
        workflowExecutionTimeout: '2h',
        args: [{ machineId: entry.machineId, installation, processId: entry.processId, key }],
      });
      // With the workers stopped (after a restore), it waits for one to serve the machine.
      const waitMs = options.trainerWaitMs ?? 60_000;
      let waited: { stopped: number[] } | null = null;
      if (waitMs > 0) {
        const result = handle.result();
        result.catch(() => undefined); // still running when the wait below ends: nobody reads it
        waited = await Promise.race([
          result,
          new Promise<null>((resolve) => setTimeout(() => resolve(null), waitMs).unref()),
        ]);
      }
      if (waited) entry.trainersStopped = waited.stopped;
      else entry.trainersPending = handle.workflowId;
    } catch (error) {
      entry.trainersError = causeMessage(error);
    }
  });

  // The legacy queues: retired once no running workflow (a process's or a delivery's) is left on them.
  let legacyQueues: ReconcileReport['legacyQueues'] = 'none';
  if (legacy) {
    if (!onLegacyQueue) {
      for await (const _ of deps.client.workflow.list({
        query: `TaskQueue = '${LEGACY_CONTROL_TASK_QUEUE}' AND ExecutionStatus = 'Running'`,
        pageSize: 1,
      })) {
        onLegacyQueue = true;
        break;
      }
    }
    legacyQueues = onLegacyQueue ? 'in use' : dryRun ? 'would retire' : 'retired';
    if (legacyQueues === 'retired') await retireLegacyQueues(deps.db);
  }

  restored.sort((a, b) => a.processId - b.processId);
  orphans.sort((a, b) => a.workflowId.localeCompare(b.workflowId));
  return { installation, dryRun, processes: live.length, restored, orphans, legacyQueues };
}

function trainerNote(o: OrphanWorkflow): string {
  if (o.trainersStopped) {
    return o.trainersStopped.length
      ? `; its trainer was stopped (pid ${o.trainersStopped.join(', ')})`
      : '; no trainer of it was running';
  }
  if (o.trainersError)
    return `; its trainer could not be stopped (${o.trainersError}): it may still run on that machine`;
  if (o.trainersPending)
    return `; its trainer is being stopped on machine ${o.machineId ?? '?'} by workflow ${o.trainersPending} (it waits for a worker serving that machine)`;
  return '; a trainer it ran may still run on that machine until it ends';
}

/** The innermost message of a workflow's failure: what the activity said. */
function causeMessage(error: unknown): string {
  let current = error as Error & { cause?: unknown };
  while (current.cause instanceof Error) current = current.cause;
  return current.message;
}

/** The report as lines for a terminal or a log. */
export function reportLines(report: ReconcileReport): string[] {
  const lines = [
    `installation ${report.installation}: ${report.processes} processes checked${report.dryRun ? ' (dry run: nothing changed)' : ''}`,
  ];
  for (const r of report.restored) {
    const was = r.state === 'missing' ? 'missing' : r.state.toLowerCase();
    lines.push(
      `process ${r.processId}: workflow ${r.workflowId} was ${was}; ${r.outcome}${r.error ? `: ${r.error}` : ''}`,
    );
  }
  for (const o of report.orphans) {
    const of = o.processId === null ? '' : ` (started for process ${o.processId} on machine ${o.machineId ?? '?'})`;
    const trainer = o.outcome === 'terminated' ? trainerNote(o) : '';
    lines.push(
      `workflow ${o.workflowId}${of} has no process row; ${o.outcome}${o.error ? `: ${o.error}` : ''}${trainer}`,
    );
  }
  if (report.legacyQueues !== 'none') lines.push(`queues from before installation ids: ${report.legacyQueues}`);
  if (!report.restored.length && !report.orphans.length) lines.push('database and Temporal agree');
  return lines;
}
