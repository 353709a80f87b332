// Finds training processes whose workflow was closed behind Trainyard's back (terminated
// in the Temporal UI, failed, timed out, cancelled) and restores them
// (services/process-workflow.ts): the slot lease is freed, the active run ends as failed,
// the trainer it may have left is reaped, and actions work again.
//
// Cheap enough to run every reconcile tick on every worker: one visibility query for
// executions closed that way recently, not a describe per process. Processes that hold a
// run or a slot are also described now and then, for closures the query cannot see (the
// worker was down longer than the window, or visibility lost the record).
import type { Client } from '@temporalio/client';
import { and, eq, gt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { auditEvents } from '../db/schema.js';
import { LEGACY_PROCESS_WORKFLOW_ID, processWorkflowPrefix } from '../workflows/messages.js';
import {
  processesByWorkflowId,
  processesHoldingWork,
  RESTORE_ACTION,
  restoreProcessWorkflow,
  workflowState,
  type RestoreDetail,
} from '../services/process-workflow.js';

export interface WorkflowReconcilerDeps {
  db: Db;
  client: Client;
  /** This installation (services/installation.ts): only its workflows are looked at. */
  installation: string;
  /** Called with the machines whose trainers may have been left running, to reap them now. */
  reap(machineIds: number[]): void;
  log(line: string): void;
  /** How far back each pass looks for closed executions; the first pass looks at all. */
  windowMs?: number;
  /** How often processes holding a run or a slot are described one by one. */
  sweepEveryMs?: number;
}

export function createWorkflowReconciler(deps: WorkflowReconcilerDeps): { pass(): Promise<void> } {
  const windowMs = deps.windowMs ?? 10 * 60_000;
  const sweepEveryMs = deps.sweepEveryMs ?? 60_000;
  /** Closed executions already dealt with, by run id → close time, so a pass describes only new ones. */
  const handled = new Map<string, number>();
  let firstPass = true;
  let lastSweep = 0;

  async function restore(processId: number): Promise<boolean> {
    try {
      const result = await restoreProcessWorkflow(deps, processId);
      if (result.outcome === 'restored')
        deps.log(`worker: process ${processId} had no running workflow; started it again`);
      return true;
    } catch (error) {
      deps.log(`worker: restoring the workflow of process ${processId} failed: ${(error as Error).message}`);
      return false;
    }
  }

  async function closedRecently(): Promise<void> {
    const since = firstPass ? null : new Date(Date.now() - windowMs);
    const query =
      `WorkflowType = 'trainingProcessWorkflow' AND ExecutionStatus IN ('Terminated', 'Failed', 'TimedOut', 'Canceled')` +
      (since ? ` AND CloseTime > '${since.toISOString()}'` : '');
    // Other installations sharing the namespace have their own prefix; legacy ids are ours only if a row has them.
    const prefix = processWorkflowPrefix(deps.installation);
    const byWorkflow = new Map<string, Array<{ runId: string; closedAt: number }>>();
    for await (const execution of deps.client.workflow.list({ query })) {
      if (handled.has(execution.runId)) continue;
      const id = execution.workflowId;
      if (!id.startsWith(prefix) && !LEGACY_PROCESS_WORKFLOW_ID.test(id)) continue;
      const list = byWorkflow.get(id) ?? [];
      list.push({ runId: execution.runId, closedAt: execution.closeTime?.getTime() ?? Date.now() });
      byWorkflow.set(id, list);
    }
    for (const [workflowId, processId] of await processesByWorkflowId(deps.db, [...byWorkflow.keys()])) {
      if (await restore(processId)) for (const e of byWorkflow.get(workflowId)!) handled.set(e.runId, e.closedAt);
    }
    firstPass = false;
    const forget = Date.now() - 2 * windowMs;
    for (const [runId, closedAt] of handled) if (closedAt < forget) handled.delete(runId);
  }

  async function sweep(): Promise<void> {
    if (Date.now() - lastSweep < sweepEveryMs) return;
    lastSweep = Date.now();
    for (const process of await processesHoldingWork(deps.db)) {
      // Described before restore locks anything: nearly always the workflow is running.
      const state = await workflowState(deps.client, process.workflowId).catch(() => 'RUNNING' as const);
      if (state !== 'RUNNING') await restore(process.id);
    }
  }

  /**
   * Restores done anywhere (this worker, another, an action in the web server) name the
   * machines whose trainers may remain: those are probed and reaped now, not at the next
   * periodic probe. Read from the audit log by time (indexed), each restore once.
   */
  const reaped = new Set<number>();
  async function reapAfterRestores(): Promise<void> {
    const rows = await deps.db
      .select({ id: auditEvents.id, detail: auditEvents.detail })
      .from(auditEvents)
      .where(and(gt(auditEvents.at, sql`now() - interval '2 minutes'`), eq(auditEvents.action, RESTORE_ACTION)));
    const machineIds = new Set<number>();
    for (const row of rows) {
      if (reaped.has(row.id)) continue;
      reaped.add(row.id);
      for (const id of (row.detail as Partial<RestoreDetail> | null)?.trainerMachines ?? []) machineIds.add(id);
    }
    const recent = new Set(rows.map((r) => r.id));
    for (const id of reaped) if (!recent.has(id)) reaped.delete(id);
    if (machineIds.size) deps.reap([...machineIds]);
  }

  return {
    async pass() {
      await closedRecently();
      await sweep();
      await reapAfterRestores();
    },
  };
}
