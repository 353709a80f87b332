// A process's workflow: started when the process is created, and started again when it
// was closed behind Trainyard's back (terminated in the Temporal UI, failed, timed out)
// or never started. Without a running workflow every action on the process answers 404
// and a run it held keeps its slot lease, so the worker's reconciler and the actions
// themselves restore one from the database: the active run ends as failed with the
// reason, its lease is freed, its trainer is left to the worker's reaper.
import {
  Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type WorkflowExecutionStatusName,
} from '@temporalio/client';
import { and, eq, inArray, isNull, or, isNotNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { auditEvents, machines, processEvents, processes, runs, slotLeases, templates } from '../db/schema.js';
import { isActive, isStatus, type ProcessStatus } from '../domain/status.js';
import { controlTaskQueue, SEARCH_KEYS } from '../workflows/messages.js';
import type { TrainingProcessInput, trainingProcessWorkflow } from '../workflows/training-process.js';
import { ServiceError } from './errors.js';
import { installationOf } from './installation.js';

export interface ProcessWorkflowDeps {
  db: Db;
  client: Client;
}

interface WorkflowTarget {
  processId: number;
  /** The row's workflow_id (named by db/migrations/0012_workflow_ids.sql; older rows: `training-process-<id>`). */
  workflowId: string;
  /** The installation whose control queue runs it (services/installation.ts). */
  installation: string;
  template: { id: number; name: string };
  machine: { id: number; name: string };
  /** The process's name at creation, for the memo (a rename later does not reach it). */
  name?: string | null;
}

/** Starts the process's workflow; an execution already running under its id is the process's and is kept. */
export async function startProcessWorkflow(
  client: Client,
  target: WorkflowTarget,
  carried?: TrainingProcessInput['carried'],
  options: { start?: boolean } = {},
): Promise<'started' | 'running'> {
  const input: TrainingProcessInput = {
    processId: target.processId,
    templateId: target.template.id,
    machineId: target.machine.id,
    installation: target.installation,
    ...(carried ? { carried } : {}),
    // Started in the same call: the workflow begins queued, with no start update to wait for.
    ...(options.start ? { start: true } : {}),
  };
  try {
    await client.workflow.start<typeof trainingProcessWorkflow>('trainingProcessWorkflow', {
      taskQueue: controlTaskQueue(target.installation),
      workflowId: target.workflowId,
      // A closed execution of this id (terminated by hand) may be followed by a new one;
      // a running one is never replaced: concurrent starters get "already started".
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
      args: [input],
      memo: {
        processId: target.processId,
        ...(target.name ? { name: target.name } : {}),
        templateId: target.template.id,
        templateName: target.template.name,
        machineId: target.machine.id,
        machineName: target.machine.name,
      },
      typedSearchAttributes: [
        { key: SEARCH_KEYS.processId, value: String(target.processId) },
        { key: SEARCH_KEYS.templateId, value: String(target.template.id) },
        { key: SEARCH_KEYS.machineId, value: String(target.machine.id) },
        { key: SEARCH_KEYS.status, value: carried?.status ?? (options.start ? 'queued' : 'created') },
      ],
    });
    return 'started';
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return 'running';
    throw error;
  }
}

/** The latest execution of a workflow, described (strongly consistent, unlike a visibility list); null when none. */
export async function describeWorkflow(client: Client, workflowId: string) {
  try {
    return await client.workflow.getHandle(workflowId).describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return null;
    throw error;
  }
}

/** The state of the latest execution of a process's workflow (its row's workflow_id); null when there is none. */
export async function workflowState(client: Client, workflowId: string): Promise<WorkflowExecutionStatusName | null> {
  return (await describeWorkflow(client, workflowId))?.status.name ?? null;
}

/** The processes these workflow ids belong to, by workflow id; ids no row has are left out. */
export async function processesByWorkflowId(db: Db, workflowIds: string[]): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  // In chunks: a namespace may list thousands of executions.
  for (let i = 0; i < workflowIds.length; i += 500) {
    const rows = await db
      .select({ id: processes.id, workflowId: processes.workflowId })
      .from(processes)
      .where(inArray(processes.workflowId, workflowIds.slice(i, i + 500)));
    for (const row of rows) found.set(row.workflowId, row.id);
  }
  return found;
}

const CLOSED_AS: Partial<Record<WorkflowExecutionStatusName, string>> = {
  TERMINATED: 'terminated',
  FAILED: 'failed',
  TIMED_OUT: 'timed out',
  CANCELLED: 'cancelled',
  COMPLETED: 'completed',
};

export function closedReason(state: WorkflowExecutionStatusName | null): string {
  return state === null
    ? 'The workflow was missing in Temporal.'
    : `The workflow was ${CLOSED_AS[state] ?? state.toLowerCase()} in Temporal.`;
}

// Restorers of one process take turns (several workers, an action from the web server):
// the second one finds the workflow the first started, and does nothing.
const RESTORE_LOCK = 0x7472_7072; // "trpr"

/**
 * The status version a restored workflow starts from: above the stored one by a margin,
 * so a status write the closed execution had in flight when it was terminated (at most
 * one, a few versions behind its own count) can never overwrite the restored status.
 */
const VERSION_MARGIN = 100;

/** The audit action of a restore; workers read its detail to reap the trainers it names. */
export const RESTORE_ACTION = 'process.workflow.restore';

export interface RestoreDetail {
  workflowState: WorkflowExecutionStatusName | 'missing';
  previousStatus: ProcessStatus;
  status: ProcessStatus;
  endedRuns: number[];
  /** Machines of the ended runs whose trainers may still be there. */
  trainerMachines: number[];
}

export interface RestoreResult {
  outcome: 'restored' | 'running' | 'gone';
  /** Machines of the runs it ended whose trainers may still be there. */
  trainerMachines: number[];
}

/**
 * Gives the process a running workflow again if its latest execution is closed or
 * missing. Idempotent and safe to call from several workers at once.
 */
export async function restoreProcessWorkflow(deps: ProcessWorkflowDeps, processId: number): Promise<RestoreResult> {
  return deps.db
    .transaction(async (tx): Promise<RestoreResult> => {
      await tx.execute(sql`select pg_advisory_xact_lock(${RESTORE_LOCK}, ${processId})`);
      const [row] = await tx
        .select({
          process: processes,
          template: { id: templates.id, name: templates.name },
          machine: { id: machines.id, name: machines.name },
        })
        .from(processes)
        .innerJoin(templates, eq(templates.id, processes.templateId))
        .innerJoin(machines, eq(machines.id, processes.machineId))
        .where(eq(processes.id, processId));
      if (!row || row.process.deleting) return { outcome: 'gone', trainerMachines: [] };
      const state = await workflowState(deps.client, row.process.workflowId);
      if (state === 'RUNNING' || state === 'CONTINUED_AS_NEW') return { outcome: 'running', trainerMachines: [] };

      const reason = closedReason(state);
      const stored: ProcessStatus = isStatus(row.process.status) ? row.process.status : 'failed';
      const active = isActive(stored);
      const ended = await tx
        .update(runs)
        .set({
          status: 'failed',
          error: reason,
          finishedAt: new Date(),
          etaSeconds: null,
          // A run that got as far as a launch may have left its trainer: the reaper looks.
          trainerMayRemain: sql`${runs.pid} is not null or ${runs.runDir} is not null`,
        })
        .where(and(eq(runs.processId, processId), isNull(runs.finishedAt)))
        .returning({
          id: runs.id,
          number: runs.number,
          machineId: runs.machineId,
          trainerMayRemain: runs.trainerMayRemain,
        });
      await tx.delete(slotLeases).where(
        or(
          eq(slotLeases.processId, processId),
          ended.length
            ? inArray(
                slotLeases.runId,
                ended.map((r) => r.id),
              )
            : undefined,
        ),
      );

      const status: ProcessStatus = active || ended.length > 0 ? 'failed' : stored;
      const lastError = status === 'failed' && (active || ended.length > 0) ? reason : row.process.lastError;
      const statusBeforeDisable =
        row.process.statusBeforeDisable !== null && isStatus(row.process.statusBeforeDisable)
          ? row.process.statusBeforeDisable
          : null;
      const statusVersion = row.process.statusVersion + VERSION_MARGIN;
      const updated = await tx
        .update(processes)
        .set({ status, statusVersion, lastError, updatedAt: new Date() })
        .where(and(eq(processes.id, processId), eq(processes.statusVersion, row.process.statusVersion)))
        .returning({ id: processes.id });
      // A late write of the closed execution came in between: the next pass tries again.
      if (updated.length === 0)
        throw new ServiceError('conflict', {
          en: `Process ${processId} changed while its workflow was being restored; try again.`,
          ru: `Процесс ${processId} изменился, пока восстанавливался его рабочий процесс; повторите.`,
        });

      const [last] = await tx
        .select({ n: sql<number>`coalesce(max(${runs.number}), 0)::int` })
        .from(runs)
        .where(eq(runs.processId, processId));
      const runNote = ended.length ? ` Run ${ended.map((r) => r.number).join(', ')} ended as failed.` : '';
      await tx.insert(processEvents).values({
        processId,
        runId: ended[0]?.id ?? null,
        level: 'warn',
        message: `${reason}${runNote} Trainyard started the process's workflow again; its actions work as before.`,
      });
      const trainerMachines = [...new Set(ended.filter((r) => r.trainerMayRemain).map((r) => r.machineId))];
      const detail: RestoreDetail = {
        workflowState: state ?? 'missing',
        previousStatus: stored,
        status,
        endedRuns: ended.map((r) => r.number),
        trainerMachines,
      };
      await tx.insert(auditEvents).values({
        actorLogin: 'trainyard',
        action: RESTORE_ACTION,
        targetType: 'process',
        targetId: String(processId),
        outcome: 'ok',
        detail: { ...detail },
      });
      // Last, inside the lock: if it fails, the transaction is undone and the next pass tries again.
      // A restored workflow of a row from before installation ids keeps its id but moves to the installation's queues.
      const started = await startProcessWorkflow(
        deps.client,
        {
          processId,
          workflowId: row.process.workflowId,
          installation: await installationOf(deps.db),
          template: row.template,
          machine: row.machine,
          name: row.process.name,
        },
        {
          status,
          statusVersion,
          statusBeforeDisable,
          runNumber: last?.n ?? 0,
          lastError,
        },
      );
      // Someone else's start got there first (the process is being created): theirs stands, nothing here does.
      if (started === 'running') throw new AlreadyRunning();
      return { outcome: 'restored' as const, trainerMachines };
    })
    .catch((error: unknown): RestoreResult => {
      if (error instanceof AlreadyRunning) return { outcome: 'running' as const, trainerMachines: [] };
      throw error;
    });
}

class AlreadyRunning extends Error {}

/**
 * Processes that would hold a slot or a run if their workflow were gone: the only ones a sweep needs to describe.
 * Not those made in the last half minute: a sweep made with start writes its rows `queued` before it starts their
 * workflows, and a look in between would take a workflow not yet started for one gone.
 */
export async function processesHoldingWork(db: Db): Promise<Array<{ id: number; workflowId: string }>> {
  return db
    .selectDistinct({ id: processes.id, workflowId: processes.workflowId })
    .from(processes)
    .leftJoin(slotLeases, eq(slotLeases.processId, processes.id))
    .where(
      and(
        eq(processes.deleting, false),
        sql`${processes.createdAt} < now() - interval '30 seconds'`,
        or(
          inArray(processes.status, ['queued', 'starting', 'running', 'stopping']),
          isNotNull(slotLeases.runId),
          sql`exists (select 1 from ${runs} where ${runs.processId} = ${processes.id} and ${runs.finishedAt} is null)`,
        ),
      ),
    );
}
