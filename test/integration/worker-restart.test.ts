// Worker processes come and go; trainers and their metrics do not. The worker here is the
// real CLI (`trainyard worker`) in its own process, killed with SIGKILL or stopped with
// SIGTERM mid-run; the next worker re-attaches to the same trainer.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { metricPoints, metricSeries } from '../../db/schema.js';
import { act, createProcess, findRun, getProcess } from '../../services/processes.js';
import { EXAMPLE_TRAINER, groupAlive, localMachine, makeTemplate, startStack, TSX, waitFor, waitForStatus, type Stack } from '../support/stack.js';

let stack: Stack;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  // No in-process worker: the workers of this file are separate processes.
  stack = await startStack({ worker: false });
});
afterEach(() => {
  for (const w of workers.splice(0)) if (w.exitCode === null && w.signalCode === null) process.kill(-w.pid!, 'SIGKILL');
});
afterAll(async () => {
  await stack?.close();
});

async function startWorkerProcess(): Promise<ChildProcess> {
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
      TRAINYARD_SECRET: 'test-secret-0123456789abcdef',
    },
  });
  workers.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor('the worker to poll', async () => {
    if (child.exitCode !== null) throw new Error(`worker exited ${child.exitCode}: ${output}`);
    return output.includes('Trainyard worker: polling');
  }, 60_000, 100);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

/** A trainer that notes each launch, then runs the example trainer for a few seconds. */
async function countedTemplate(dir: string) {
  return makeTemplate(stack, {
    command: `echo $$ >> "$LAUNCHES"; exec '${TSX}' '${EXAMPLE_TRAINER}'`,
    env: { LAUNCHES: path.join(dir, 'launches') },
    params: { step_delay_ms: 15, log_every: 5, eval_every: 50 },
    totalSteps: 1500,
  });
}

async function storedPointCount(runId: number): Promise<number> {
  const rows = await stack.database.db
    .select({ step: metricPoints.step })
    .from(metricPoints)
    .innerJoin(metricSeries, eq(metricSeries.id, metricPoints.seriesId))
    .where(eq(metricSeries.runId, runId));
  return rows.length;
}

function pointsWritten(file: string): number {
  const seen = new Set<string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const record = JSON.parse(line) as Record<string, unknown>;
    for (const key of Object.keys(record)) if (!['step', 'total_steps', 'epoch'].includes(key)) seen.add(`${key}@${String(record.step)}`);
  }
  return seen.size;
}

describe('a worker that dies or stops mid-run', () => {
  it('SIGKILL: the trainer keeps running, the next worker re-attaches, one launch, every point stored once', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-kill-'));
    const template = await countedTemplate(dir);
    const machine = await localMachine(stack);
    let worker = await startWorkerProcess();
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'running');
    await waitFor('progress', async () => ((await getProcess(stack.deps, process1.id)).progress.step ?? 0) > 100, 60_000);
    const run = await findRun(stack.deps, process1.id);

    process.kill(-worker.pid!, 'SIGKILL');
    await exited(worker);
    expect(groupAlive(run.pgid!)).toBe(true);

    worker = await startWorkerProcess();
    const done = await waitForStatus(stack, process1.id, 'completed', 120_000);
    expect(done.progress.step).toBe(1500);
    const launches = fs.readFileSync(path.join(dir, 'launches'), 'utf8').trim().split('\n');
    expect(launches).toHaveLength(1);
    expect(await storedPointCount(run.id)).toBe(pointsWritten(path.join(run.runDir!, 'metrics.jsonl')));
  });

  it('SIGTERM (Ctrl-C, deploy): the worker lets go, the trainer keeps running, and the next worker re-attaches', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-drain-'));
    const template = await countedTemplate(dir);
    const machine = await localMachine(stack);
    let worker = await startWorkerProcess();
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'running');
    await waitFor('progress', async () => ((await getProcess(stack.deps, process1.id)).progress.step ?? 0) > 100, 60_000);
    const run = await findRun(stack.deps, process1.id);

    process.kill(worker.pid!, 'SIGTERM');
    await exited(worker);
    expect(worker.exitCode).toBe(0);
    expect(groupAlive(run.pgid!)).toBe(true);
    expect((await getProcess(stack.deps, process1.id)).status).toBe('running');

    worker = await startWorkerProcess();
    await waitForStatus(stack, process1.id, 'completed', 120_000);
    expect(fs.readFileSync(path.join(dir, 'launches'), 'utf8').trim().split('\n')).toHaveLength(1);
    expect(await storedPointCount(run.id)).toBe(pointsWritten(path.join(run.runDir!, 'metrics.jsonl')));
  });
});
