// Training process operations the API, the pages and the CLI call: create, act, read.
// Status changes go through the process's workflow (its validators decide); reads come
// from the database mirror, which is fast and good for lists.
import { Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, desc, eq, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { machines, processEvents, processes, runs, templates } from '../db/schema.js';
import { estimate, type EtaState } from '../domain/eta.js';
import { FAILURE } from '../domain/failures.js';
import { defaultName } from '../domain/sweep.js';
import { maxAttempts, restartPolicyOf } from '../domain/restart.js';
import type { ProcessInput } from './inputs.js';
import { isStatus, type ProcessStatus, type UserAction } from '../domain/status.js';
import {
  deleteUpdate,
  disableUpdate,
  enableUpdate,
  startUpdate,
  stopUpdate,
  type ActionResult,
} from '../workflows/messages.js';
import { invalid, notFound, ServiceError, THINGS, type LocalizedText } from './errors.js';
import { installationOf, NEW_WORKFLOW_ID } from './installation.js';
import { restoreProcessWorkflow, startProcessWorkflow } from './process-workflow.js';

export interface ProcessDeps {
  db: Db;
  client: Client;
}

export interface ProcessView {
  id: number;
  /** Given, or the template's name and the params that differ from its own. */
  name: string;
  sweepId: number | null;
  templateId: number;
  templateName: string;
  machineId: number;
  machineName: string;
  machineAddress: string;
  status: ProcessStatus;
  enabled: boolean;
  /** Effective: the template's params with the process's own over them, as its next run gets them. */
  params: Record<string, unknown>;
  /** The process's own overrides of the template's params (what the add form took). */
  ownParams: Record<string, unknown>;
  progress: { step: number | null; totalSteps: number | null };
  etaSeconds: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  lastError: string | null;
  /** 1-based within the current restart chain. */
  attempt: number;
  /** How many runs the template's restart policy allows a chain (1: no restarts). */
  maxAttempts: number;
  /** The current run wrote no metric line for the template's stallSeconds. */
  stalled: boolean;
  runNumber: number | null;
  /** Set while the machine of the active run does not answer. */
  machineUnreachableSince: string | null;
  workflowId: string;
  createdAt: string;
}

const UPDATES = { start: startUpdate, stop: stopUpdate, disable: disableUpdate, enable: enableUpdate } as const;

function iso(date: Date | null | undefined): string | null {
  return date ? date.toISOString() : null;
}

/** The latest run of each listed process, by index (runs_process_number, backwards). */
export function latestRun(db: Db) {
  // A DISTINCT ON over all runs would sort the whole table for every page.
  return db
    .select({
      number: runs.number,
      step: runs.step,
      totalSteps: runs.totalSteps,
      etaState: runs.etaState,
      startedAt: runs.startedAt,
      finishedAt: runs.finishedAt,
      unreachableSince: runs.unreachableSince,
    })
    .from(runs)
    .where(eq(runs.processId, processes.id))
    .orderBy(desc(runs.number))
    .limit(1)
    .as('latest');
}

/** The latest run's columns, for the list's sort keys (services/process-list.ts). */
export type LatestRun = ReturnType<typeof latestRun>;

/**
 * The select every process read shares (the sweep's read too): process, its template and machine, its latest run
 * (`latest`, made by latestRun); `extra` adds columns computed over them (a list's sort key).
 */
export function processQuery<X extends Record<string, SQL.Aliased | SQL> = Record<never, never>>(
  db: Db,
  extra: X = {} as X,
  latest: LatestRun = latestRun(db),
) {
  return db
    .select({
      process: processes,
      templateName: templates.name,
      templateParams: templates.params,
      templateRestart: templates.restart,
      machineName: machines.name,
      machineAddress: machines.address,
      run: {
        number: latest.number,
        step: latest.step,
        totalSteps: latest.totalSteps,
        etaState: latest.etaState,
        startedAt: latest.startedAt,
        finishedAt: latest.finishedAt,
        unreachableSince: latest.unreachableSince,
      },
      ...extra,
    })
    .from(processes)
    .innerJoin(templates, eq(templates.id, processes.templateId))
    .innerJoin(machines, eq(machines.id, processes.machineId))
    .leftJoinLateral(latest, sql`true`);
}

export type ProcessRow = Awaited<ReturnType<ReturnType<typeof processQuery<Record<never, never>>>['execute']>>[number];

export function toView(row: ProcessRow, now = Date.now()): ProcessView {
  const p = row.process;
  const run = row.run;
  const status: ProcessStatus = isStatus(p.status) ? p.status : 'failed';
  const active = status === 'running' || status === 'starting' || status === 'stopping';
  let etaSeconds: number | null = null;
  if (run && active && run.etaState) etaSeconds = estimate(run.etaState as EtaState, now).etaSeconds;
  return {
    id: p.id,
    name: p.name ?? defaultName(row.templateName, row.templateParams, p.params),
    sweepId: p.sweepId,
    templateId: p.templateId,
    templateName: row.templateName,
    machineId: p.machineId,
    machineName: row.machineName,
    machineAddress: row.machineAddress,
    status,
    enabled: status !== 'disabled',
    params: { ...row.templateParams, ...p.params },
    ownParams: p.params,
    progress: { step: run?.step ?? null, totalSteps: run?.totalSteps ?? null },
    etaSeconds: etaSeconds === null ? null : Math.round(etaSeconds),
    startedAt: iso(run?.startedAt),
    finishedAt: iso(run?.finishedAt),
    lastError: p.lastError,
    attempt: p.attempt,
    maxAttempts: maxAttempts(restartPolicyOf(row.templateRestart)),
    stalled: p.stalled,
    runNumber: run?.number ?? null,
    machineUnreachableSince: active ? iso(run?.unreachableSince) : null,
    workflowId: p.workflowId,
    createdAt: p.createdAt.toISOString(),
  };
}

export async function getProcess(deps: Pick<ProcessDeps, 'db'>, id: number): Promise<ProcessView> {
  const [row] = await processQuery(deps.db).where(and(eq(processes.id, id), eq(processes.deleting, false)));
  if (!row) throw notFound(THINGS.process, id);
  return toView(row);
}

/** What creating a process takes: the JSON API's ProcessCreate body, as typed. */
export type CreateProcessInput = ProcessInput;

export async function createProcess(deps: ProcessDeps, input: CreateProcessInput): Promise<ProcessView> {
  const [template] = await deps.db.select().from(templates).where(eq(templates.id, input.templateId));
  if (!template) throw invalid('templateId', notFound(THINGS.template, input.templateId).text);
  const [machine] = await deps.db.select().from(machines).where(eq(machines.id, input.machineId));
  if (!machine) throw invalid('machineId', notFound(THINGS.machine, input.machineId).text);
  const params = input.params ?? {};
  if (typeof params !== 'object' || Array.isArray(params))
    throw invalid('params', { en: 'params is a JSON object of hyperparameters.', ru: 'Гиперпараметры — JSON-объект.' });
  if (JSON.stringify(params).length > 64 * 1024)
    throw invalid('params', {
      en: 'params may be at most 64 KiB of JSON.',
      ru: 'Гиперпараметры: не больше 64 КиБ JSON.',
    });

  const [row] = await deps.db
    .insert(processes)
    .values({
      templateId: template.id,
      machineId: machine.id,
      params,
      name: defaultName(template.name, template.params, params),
      workflowId: NEW_WORKFLOW_ID,
    })
    .returning();
  const processId = row!.id;
  try {
    await startProcessWorkflow(deps.client, {
      processId,
      workflowId: row!.workflowId,
      installation: await installationOf(deps.db),
      template,
      machine,
      name: row!.name,
    });
  } catch (error) {
    // Nothing half-made: without its workflow the process would be a dead row.
    await deps.db.delete(processes).where(eq(processes.id, processId));
    throw new ServiceError('unavailable', {
      en: `Could not start the process's workflow: ${(error as Error).message}`,
      ru: `Не удалось запустить рабочий процесс Temporal для процесса: ${(error as Error).message}`,
    });
  }
  return getProcess(deps, processId);
}

function localizedDetail(failure: ApplicationFailure): LocalizedText | null {
  const detail: unknown = failure.details?.[0];
  if (typeof detail !== 'object' || detail === null) return null;
  const { en, ru } = detail as Record<string, unknown>;
  return typeof en === 'string' && typeof ru === 'string' ? { en, ru } : null;
}

function refusal(error: unknown, id: number): ServiceError | null {
  if (error instanceof WorkflowNotFoundError) return notFound(THINGS.process, id);
  if (error instanceof WorkflowUpdateFailedError) {
    const cause = error.cause;
    if (cause instanceof ApplicationFailure && cause.type === FAILURE.notAllowed) {
      // The workflow sends the reason in both languages as the failure's first detail.
      return new ServiceError('not_allowed', localizedDetail(cause) ?? { en: cause.message, ru: cause.message });
    }
    const message = cause?.message ?? error.message;
    return new ServiceError('conflict', { en: message, ru: message });
  }
  return null;
}

/** The process's workflow id; 404 when there is no such process (or it is being deleted). */
async function ensureExists(deps: Pick<ProcessDeps, 'db'>, id: number): Promise<string> {
  const [row] = await deps.db
    .select({ workflowId: processes.workflowId })
    .from(processes)
    .where(and(eq(processes.id, id), eq(processes.deleting, false)));
  if (!row) throw notFound(THINGS.process, id);
  return row.workflowId;
}

/**
 * Sends an update to the process's workflow. A process whose workflow is closed (terminated
 * in the Temporal UI) or missing gets it back first, as the worker's reconciler would do
 * on its next pass, so the action works instead of answering 404.
 */
async function update(
  deps: ProcessDeps,
  id: number,
  send: (workflowId: string) => Promise<ActionResult>,
): Promise<ActionResult> {
  const workflowId = await ensureExists(deps, id);
  try {
    return await send(workflowId);
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw refusal(error, id) ?? error;
  }
  const restored = await restoreProcessWorkflow(deps, id);
  if (restored.outcome === 'gone') throw notFound(THINGS.process, id);
  try {
    return await send(workflowId);
  } catch (error) {
    throw refusal(error, id) ?? error;
  }
}

/** start / stop / disable / enable: the workflow's validator refuses what the status table refuses (409). */
export async function act(deps: ProcessDeps, id: number, action: Exclude<UserAction, 'delete'>): Promise<ActionResult> {
  return update(deps, id, (workflowId) => deps.client.workflow.getHandle(workflowId).executeUpdate(UPDATES[action]));
}

/** Delete: stops first if active; the process answers 404 once its workflow has cleaned up. */
export async function deleteProcess(
  deps: ProcessDeps,
  id: number,
  options: { force?: boolean } = {},
): Promise<ActionResult> {
  return update(deps, id, (workflowId) =>
    deps.client.workflow
      .getHandle(workflowId)
      .executeUpdate(deleteUpdate, { args: [{ force: options.force === true }] }),
  );
}

export async function listRuns(deps: Pick<ProcessDeps, 'db'>, processId: number) {
  await ensureExists(deps, processId);
  const rows = await deps.db.select().from(runs).where(eq(runs.processId, processId)).orderBy(asc(runs.number));
  return rows.map((run) => ({
    number: run.number,
    status: run.status,
    machineId: run.machineId,
    params: run.params,
    step: run.step,
    totalSteps: run.totalSteps,
    exitCode: run.exitCode,
    error: run.error,
    attempt: run.attempt,
    failureClass: run.failureClass,
    stalled: run.stalled,
    malformedLines: run.malformedLines,
    oversizedLines: run.oversizedLines,
    queuedAt: run.queuedAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
  }));
}

/** The run with that number, or the latest when omitted. */
export async function findRun(deps: Pick<ProcessDeps, 'db'>, processId: number, runNumber?: number) {
  await ensureExists(deps, processId);
  const where =
    runNumber === undefined
      ? eq(runs.processId, processId)
      : and(eq(runs.processId, processId), eq(runs.number, runNumber));
  const [run] = await deps.db.select().from(runs).where(where).orderBy(desc(runs.number)).limit(1);
  if (!run)
    throw notFound(
      runNumber === undefined
        ? { en: 'Any run of process', ru: 'ни один запуск процесса' }
        : { en: `Run ${runNumber} of process`, ru: `запуск ${runNumber} процесса` },
      processId,
    );
  return run;
}

export async function logTail(deps: Pick<ProcessDeps, 'db'>, processId: number, runNumber?: number) {
  const run = await findRun(deps, processId, runNumber);
  const events = await deps.db
    .select()
    .from(processEvents)
    .where(eq(processEvents.processId, processId))
    .orderBy(desc(processEvents.id))
    .limit(50);
  return {
    run: run.number,
    stdout: run.stdoutTail,
    stderr: run.stderrTail,
    events: events.reverse().map((e) => ({
      at: e.at.toISOString(),
      level: e.level,
      message: e.message,
      run: e.runId === run.id ? run.number : null,
    })),
  };
}

/** Counts for the scale benchmark and the pages: how many processes per status. */
export async function statusCounts(deps: Pick<ProcessDeps, 'db'>): Promise<Record<string, number>> {
  const rows = await deps.db
    .select({ status: processes.status, n: sql<number>`count(*)::int` })
    .from(processes)
    .groupBy(processes.status);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
