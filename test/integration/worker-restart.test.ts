// Worker processes come and go; trainers and their metrics do not. The worker here is the
// real CLI (`trainyard worker`) in its own process, killed with SIGKILL or stopped with
// SIGTERM mid-run; the next worker re-attaches to the same trainer.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { act, createProcess, findRun, getProcess } from '../../services/processes.js';
import {
  countedExampleTemplate,
  groupAlive,
  launchCount,
  localMachine,
  startStack,
  storedPoints,
  waitFor,
  waitForStatus,
  writtenPoints,
  startWorkerProcess as startWorkerWith,
  type Stack,
} from '../support/stack.js';

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

const startWorkerProcess = () => startWorkerWith(stack, workers);

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );
}

/** A run of the counted example trainer, far enough along that a worker is busy with it. */
async function runningProcess() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-worker-'));
  const template = await countedExampleTemplate(stack, dir, 1500, 15);
  const machine = await localMachine(stack);
  const worker = await startWorkerProcess();
  const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
  await act(stack.deps, created.id, 'start');
  await waitForStatus(stack, created.id, 'running');
  await waitFor('progress', async () => ((await getProcess(stack.deps, created.id)).progress.step ?? 0) > 100, 60_000);
  return { dir, worker, processId: created.id, run: await findRun(stack.deps, created.id) };
}

async function expectCompletedOnce(
  processId: number,
  dir: string,
  run: { id: number; runDir: string | null },
): Promise<void> {
  const done = await waitForStatus(stack, processId, 'completed', 120_000);
  expect(done.progress.step).toBe(1500);
  expect(launchCount(dir)).toBe(1);
  expect(await storedPoints(stack, run.id)).toEqual(writtenPoints(path.join(run.runDir!, 'metrics.jsonl')));
}

describe('a worker that dies or stops mid-run', () => {
  it('SIGKILL: the trainer keeps running, the next worker re-attaches, one launch, every point stored once', async () => {
    const { dir, worker, processId, run } = await runningProcess();
    process.kill(-worker.pid!, 'SIGKILL');
    await exited(worker);
    expect(groupAlive(run.pgid!)).toBe(true);
    await startWorkerProcess();
    await expectCompletedOnce(processId, dir, run);
  });

  it('SIGTERM (Ctrl-C, deploy): the worker lets go, the trainer keeps running, and the next worker re-attaches', async () => {
    const { dir, worker, processId, run } = await runningProcess();
    process.kill(worker.pid!, 'SIGTERM');
    await exited(worker);
    expect(worker.exitCode).toBe(0);
    expect(groupAlive(run.pgid!)).toBe(true);
    expect((await getProcess(stack.deps, processId)).status).toBe('running');
    await startWorkerProcess();
    await expectCompletedOnce(processId, dir, run);
  });
});
