// The real stack for integration tests: the run's PostgreSQL database and Temporal dev
// server (from the global setup), an in-process worker, and helpers to make unique
// templates, machines and processes and to wait for what a user would see.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { eq } from 'drizzle-orm';
import { inject } from 'vitest';
import { openDatabase, type Database } from '../../db/client.js';
import { machines, metricPoints, metricSeries, processes, templates } from '../../db/schema.js';
import type { ProcessStatus } from '../../domain/status.js';
import { findTemporalCli } from '../../lib/temporal-cli.js';
import { seed } from '../../services/seed.js';
import { getProcess, type ProcessDeps, type ProcessView } from '../../services/processes.js';
import { startWorkers, WORKFLOWS_PATH, type RunningWorkers, type WorkerDeps } from '../../workers/worker.js';

export const TSX = path.resolve('node_modules/.bin/tsx');
export const EXAMPLE_TRAINER = path.resolve('trainers/example/train.ts');

let bundle: Promise<WorkflowBundleWithSourceMap> | null = null;
/** One workflow bundle per test file: bundling takes seconds. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
  });
  return bundle;
}

export interface Stack {
  temporalAddress: string;
  database: Database;
  connection: Connection;
  client: Client;
  deps: ProcessDeps;
  dataDir: string;
  workers: RunningWorkers | null;
  startWorker(options?: {
    serveLocalMachine?: boolean;
    probeIntervalMs?: number;
    notifyRetry?: WorkerDeps['notifyRetry'];
    reconcileAtStart?: boolean;
  }): Promise<RunningWorkers>;
  close(): Promise<void>;
}

export const TEST_SECRET = 'test-secret-0123456789abcdef';

export async function startStack(
  options: {
    worker?: boolean;
    probeIntervalMs?: number;
    temporalAddress?: string;
    /** Another database than the run's shared one (migrated already): another installation. */
    databaseUrl?: string;
    /** Another stack's data directory: the same host (a database restored under the same workers). */
    dataDir?: string;
  } = {},
): Promise<Stack> {
  const temporalAddress = options.temporalAddress ?? inject('temporalAddress');
  const database = openDatabase(options.databaseUrl ?? inject('databaseUrl'), {
    max: 20,
    applicationName: 'trainyard-test',
  });
  await seed(database.db, { adminPassword: 'admin-password-for-tests' });
  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection });
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-test-data-'));
  const stack: Stack = {
    temporalAddress,
    database,
    connection,
    client,
    deps: { db: database.db, client },
    dataDir,
    workers: null,
    async startWorker(workerOptions = {}) {
      const workers = await startWorkers({
        db: database.db,
        sql: database.sql,
        temporalAddress,
        namespace: 'default',
        serveLocalMachine: workerOptions.serveLocalMachine ?? true,
        dataDir,
        secret: TEST_SECRET,
        keysDir: null,
        reconcileIntervalMs: 500,
        probeIntervalMs: workerOptions.probeIntervalMs ?? 60_000,
        workflowBundle: await workflowBundle(),
        log: () => {},
        ...(workerOptions.notifyRetry ? { notifyRetry: workerOptions.notifyRetry } : {}),
        ...(workerOptions.reconcileAtStart !== undefined ? { reconcileAtStart: workerOptions.reconcileAtStart } : {}),
      });
      stack.workers = workers;
      return workers;
    },
    async close() {
      await stack.workers?.shutdown();
      await connection.close();
      await database.close();
    },
  };
  if (options.worker !== false)
    await stack.startWorker(options.probeIntervalMs ? { probeIntervalMs: options.probeIntervalMs } : {});
  return stack;
}

export const uid = () => crypto.randomBytes(4).toString('hex');

export async function makeTemplate(
  stack: Stack,
  values: Partial<typeof templates.$inferInsert> & { command: string },
): Promise<typeof templates.$inferSelect> {
  const [row] = await stack.database.db
    .insert(templates)
    .values({ name: `test template ${uid()}`, ...values })
    .returning();
  return row!;
}

/** The example trainer, fast: no delay between steps unless asked. */
export function exampleTemplate(
  stack: Stack,
  params: Record<string, unknown> = {},
  extra: Partial<typeof templates.$inferInsert> = {},
) {
  return makeTemplate(stack, {
    command: `'${TSX}' '${EXAMPLE_TRAINER}'`,
    params: { step_delay_ms: 0, log_every: 10, eval_every: 50, ...params },
    totalSteps: 300,
    stopGraceSeconds: 10,
    ...extra,
  });
}

export async function localMachine(stack: Stack, slots?: number): Promise<typeof machines.$inferSelect> {
  if (slots === undefined) {
    const [local] = await stack.database.db.select().from(machines).where(eq(machines.name, 'local'));
    return local!;
  }
  const [row] = await stack.database.db
    .insert(machines)
    .values({ name: `local-${uid()}`, kind: 'local', address: 'local', slots })
    .returning();
  await stack.workers?.reconcile();
  return row!;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== null && value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function waitForStatus(
  stack: Stack,
  processId: number,
  status: ProcessStatus | ProcessStatus[],
  timeoutMs = 60_000,
): Promise<ProcessView> {
  const wanted = Array.isArray(status) ? status : [status];
  let seen = '';
  return waitFor(
    `process ${processId} to be ${wanted.join(' or ')}`,
    async () => {
      const view = await getProcess(stack.deps, processId);
      seen = `${view.status}${view.lastError ? ` (${view.lastError})` : ''}`;
      return wanted.includes(view.status) ? view : null;
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last seen ${seen}`);
  });
}

export async function processRow(stack: Stack, id: number) {
  const [row] = await stack.database.db.select().from(processes).where(eq(processes.id, id));
  return row ?? null;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export { groupAlive } from '../../lib/proc.js';

/** The workflow id of a process (its row's workflow_id). */
export async function workflowIdOf(stack: Pick<Stack, 'database'>, processId: number): Promise<string> {
  const [row] = await stack.database.db
    .select({ workflowId: processes.workflowId })
    .from(processes)
    .where(eq(processes.id, processId));
  if (!row) throw new Error(`No process ${processId}.`);
  return row.workflowId;
}

/**
 * Saves the histories of every training-process workflow execution this stack ran (each
 * run of a continued-as-new chain) into `dir`, for the replay test. Used by
 * `TRAINYARD_RECORD_HISTORIES=<dir> npx vitest run --project integration test/integration/lifecycle-local.test.ts`.
 */
export async function recordHistories(stack: Stack, dir: string, processIds: number[]): Promise<number> {
  fs.mkdirSync(dir, { recursive: true });
  const cli = findTemporalCli();
  if (!cli) throw new Error('No Temporal CLI to export histories with.');
  let count = 0;
  for (const id of processIds) {
    const workflowId = await workflowIdOf(stack, id);
    for await (const execution of stack.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      // The standard JSON form of a history, as the Temporal CLI writes it and historyFromJSON reads it.
      const json = execFileSync(
        cli.path,
        [
          'workflow',
          'show',
          '--address',
          stack.temporalAddress,
          '--workflow-id',
          workflowId,
          '--run-id',
          execution.runId,
          '--output',
          'json',
        ],
        {
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
        },
      );
      // A run whose first workflow task has not started (a continue-as-new's backoff) has nothing to replay,
      // and the replayer waits on it for ever.
      if (!json.includes('EVENT_TYPE_WORKFLOW_TASK_STARTED')) continue;
      const file = path.join(dir, `${workflowId}-${execution.runId.slice(0, 8)}.json`);
      fs.writeFileSync(file, JSON.stringify({ workflowId, history: JSON.parse(json) as unknown }));
      count += 1;
    }
  }
  return count;
}

/** What the trainer wrote, as `series@step` → value, the last write of a step winning (NaN kept). */
export function writtenPoints(file: string): Map<string, number> {
  const points = new Map<string, number>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const record = JSON.parse(line.replace(/\bNaN\b/g, '"NaN"')) as Record<string, number | string>;
    for (const [key, value] of Object.entries(record)) {
      if (['step', 'total_steps', 'epoch'].includes(key)) continue;
      if (typeof value === 'number') points.set(`${key}@${record.step}`, value);
      else if (value === 'NaN') points.set(`${key}@${record.step}`, NaN);
    }
  }
  return points;
}

/** What the database holds for a run, in the same shape as writtenPoints. */
export async function storedPoints(stack: Pick<Stack, 'database'>, runId: number): Promise<Map<string, number>> {
  const rows = await stack.database.db
    .select({ name: metricSeries.name, step: metricPoints.step, value: metricPoints.value })
    .from(metricPoints)
    .innerJoin(metricSeries, eq(metricSeries.id, metricPoints.seriesId))
    .where(eq(metricSeries.runId, runId));
  return new Map(rows.map((r) => [`${r.name}@${r.step}`, r.value]));
}

/**
 * The example trainer behind a line that notes each launch in `<dir>/launches`, so a
 * test can prove a trainer was launched once, whatever happened to workers and servers.
 */
export function countedExampleTemplate(stack: Stack, dir: string, totalSteps: number, stepDelayMs = 10) {
  return makeTemplate(stack, {
    command: `echo $$ >> "$LAUNCHES"; exec '${TSX}' '${EXAMPLE_TRAINER}'`,
    env: { LAUNCHES: path.join(dir, 'launches') },
    params: { step_delay_ms: stepDelayMs, log_every: 5, eval_every: 50 },
    totalSteps,
  });
}

export function launchCount(dir: string): number {
  return fs.readFileSync(path.join(dir, 'launches'), 'utf8').trim().split('\n').length;
}

const outputs = new WeakMap<ChildProcess, () => string>();
/** What a worker process of startWorkerProcess printed so far (stdout and stderr). */
export const workerOutput = (child: ChildProcess): string => outputs.get(child)?.() ?? '';

/**
 * A real `trainyard worker` process (the CLI) on the stack's database, Temporal and data
 * directory, serving `local`, in its own process group, with more settings from `env`;
 * pushed onto `workers` for the caller's clean-up. Resolves once it polls.
 */
export async function startWorkerProcess(
  stack: Stack,
  workers: ChildProcess[],
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const child = spawn(TSX, ['bin/trainyard.ts', 'worker'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: inject('databaseUrl'),
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TRAINYARD_LOCAL_MACHINE: 'true',
      TRAINYARD_DATA_DIR: stack.dataDir,
      TRAINYARD_SECRET: TEST_SECRET,
      ...env,
    },
  });
  workers.push(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  outputs.set(child, () => output);
  await waitFor(
    'the worker to poll',
    async () => {
      if (child.exitCode !== null) throw new Error(`worker exited ${child.exitCode}: ${output}`);
      return output.includes('Trainyard worker: polling');
    },
    60_000,
    100,
  );
  return child;
}
