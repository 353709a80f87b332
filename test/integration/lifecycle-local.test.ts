// The training process lifecycle on the built-in `local` machine, through the real
// Temporal dev server, PostgreSQL and the example trainer.
import fs from 'node:fs';
import path from 'node:path';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricPoints, metricSeries, processEvents, runs } from '../../db/schema.js';
import {
  act,
  createProcess as create,
  deleteProcess,
  findRun,
  getProcess,
  listRuns,
  type CreateProcessInput,
} from '../../services/processes.js';
import { ServiceError } from '../../services/errors.js';
import {
  exampleTemplate,
  groupAlive,
  localMachine,
  makeTemplate,
  recordHistories,
  startStack,
  storedPoints,
  waitFor,
  waitForStatus,
  writtenPoints,
  type Stack,
} from '../support/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
const processIds: number[] = [];
afterAll(async () => {
  const recordTo = process.env.TRAINYARD_RECORD_HISTORIES;
  if (recordTo && stack)
    console.log(`recorded ${await recordHistories(stack, recordTo, processIds)} histories into ${recordTo}`);
  await stack?.close();
});

async function createProcess(deps: Stack['deps'], input: CreateProcessInput) {
  const created = await create(deps, input);
  processIds.push(created.id);
  return created;
}

async function expectRefused(work: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await work.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServiceError);
  expect((error as ServiceError).code).toBe('not_allowed');
  expect((error as ServiceError).message).toMatch(pattern);
}

describe('a training process on the local machine', () => {
  it('goes created → queued → starting → running → completed, and stores exactly the points the trainer wrote', async () => {
    const template = await exampleTemplate(stack, {}, { totalSteps: 400 });
    const machine = await localMachine(stack);
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    expect(created.status).toBe('created');
    expect(created.enabled).toBe(true);

    const startedAt = Date.now();
    const accepted = await act(stack.deps, created.id, 'start');
    expect(accepted.status).toBe('queued');
    const running = await waitForStatus(stack, created.id, ['running', 'completed']);
    console.log(`start → ${running.status}: ${Date.now() - startedAt} ms`);

    const done = await waitForStatus(stack, created.id, 'completed', 90_000);
    expect(done.progress.step).toBe(400);
    expect(done.progress.totalSteps).toBe(400);
    expect(done.lastError).toBeNull();
    const run = await findRun(stack.deps, created.id);
    expect(run.exitCode).toBe(0);
    expect(run.malformedLines).toBe(0);
    const written = writtenPoints(path.join(run.runDir!, 'metrics.jsonl'));
    const stored = await storedPoints(stack, run.id);
    expect(written.size).toBeGreaterThan(50);
    expect(stored).toEqual(written);
    expect([...stored.keys()].some((k) => k.startsWith('test_accuracy@'))).toBe(true);
    expect(run.stdoutTail.length).toBeGreaterThan(0);
  });

  it('stops a running trainer: TERM reaches it, its checkpoint exists, its group is gone, and a restart resumes from it', async () => {
    const template = await exampleTemplate(
      stack,
      { step_delay_ms: 20, checkpoint_every: 100000 },
      { totalSteps: 100000 },
    );
    const machine = await localMachine(stack);
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process.id, 'start');
    await waitForStatus(stack, process.id, 'running');
    await waitFor('some progress', async () => ((await getProcess(stack.deps, process.id)).progress.step ?? 0) > 20);
    const run = await findRun(stack.deps, process.id);

    const stopAt = Date.now();
    expect((await act(stack.deps, process.id, 'stop')).status).toBe('stopping');
    // A start while stopping is refused: the old trainer must be gone first.
    await expectRefused(act(stack.deps, process.id, 'start'), /stopping/);
    const stopped = await waitForStatus(stack, process.id, 'stopped');
    console.log(`stop → stopped: ${Date.now() - stopAt} ms`);
    expect(stopped.lastError).toBeNull();
    expect(groupAlive(run.pgid!)).toBe(false);
    const checkpoint = JSON.parse(fs.readFileSync(path.join(run.runDir!, 'checkpoint.json'), 'utf8')) as {
      step: number;
    };
    expect(checkpoint.step).toBeGreaterThan(20);

    await act(stack.deps, process.id, 'start');
    await waitForStatus(stack, process.id, 'running');
    const second = await findRun(stack.deps, process.id);
    expect(second.number).toBe(run.number + 1);
    await waitFor(
      'resumed metrics',
      async () => ((await getProcess(stack.deps, process.id)).progress.step ?? 0) > checkpoint.step,
    );
    const firstLine = JSON.parse(
      await waitFor(
        'the resumed metrics file',
        async () => fs.readFileSync(path.join(second.runDir!, 'metrics.jsonl'), 'utf8').split('\n')[0] || null,
      ),
    ) as { step: number };
    expect(firstLine.step).toBe(checkpoint.step);
    await act(stack.deps, process.id, 'stop');
    await waitForStatus(stack, process.id, 'stopped');
  });

  it('kills a trainer that ignores TERM after the grace period, and records stopped only once the group is gone', async () => {
    const template = await makeTemplate(stack, {
      command: "trap '' TERM; sh -c \"trap '' TERM; sleep 600\" & while :; do sleep 0.1; done",
      stopGraceSeconds: 1,
    });
    const machine = await localMachine(stack);
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process.id, 'start');
    await waitForStatus(stack, process.id, 'running');
    const run = await findRun(stack.deps, process.id);
    const stopAt = Date.now();
    await act(stack.deps, process.id, 'stop');
    await waitForStatus(stack, process.id, 'stopped', 30_000);
    expect(Date.now() - stopAt).toBeGreaterThanOrEqual(1000);
    expect(groupAlive(run.pgid!)).toBe(false);
  });

  it('disable stops a running process and refuses start; enable brings it back as stopped; delete removes runs, metrics and logs', async () => {
    const template = await exampleTemplate(stack, { step_delay_ms: 20 }, { totalSteps: 100000 });
    const machine = await localMachine(stack);
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process.id, 'start');
    await waitForStatus(stack, process.id, 'running');
    await waitFor('some progress', async () => ((await getProcess(stack.deps, process.id)).progress.step ?? 0) > 10);
    const run = await findRun(stack.deps, process.id);

    await act(stack.deps, process.id, 'disable');
    const disabled = await waitForStatus(stack, process.id, 'disabled');
    expect(disabled.enabled).toBe(false);
    expect(groupAlive(run.pgid!)).toBe(false);
    expect((await findRun(stack.deps, process.id)).status).toBe('stopped');
    await expectRefused(act(stack.deps, process.id, 'start'), /Enable it first/);

    expect((await act(stack.deps, process.id, 'enable')).status).toBe('stopped');
    await waitForStatus(stack, process.id, 'stopped');

    const seriesIds = (
      await stack.database.db.select({ id: metricSeries.id }).from(metricSeries).where(eq(metricSeries.runId, run.id))
    ).map((r) => r.id);
    expect(seriesIds.length).toBeGreaterThan(0);
    await deleteProcess(stack.deps, process.id);
    await waitFor(
      'the process to be gone',
      async () =>
        await getProcess(stack.deps, process.id).then(
          () => false,
          (e: unknown) => e instanceof ServiceError && e.code === 'not_found',
        ),
    );
    const leftRuns = await stack.database.db.select().from(runs).where(eq(runs.processId, process.id));
    expect(leftRuns).toHaveLength(0);
    const leftSeries = await stack.database.db.select().from(metricSeries).where(eq(metricSeries.runId, run.id));
    expect(leftSeries).toHaveLength(0);
    const leftPoints = await stack.database.db
      .select({ n: sql<number>`count(*)::int` })
      .from(metricPoints)
      .where(inArray(metricPoints.seriesId, seriesIds));
    expect(leftPoints[0]!.n).toBe(0);
    const leftEvents = await stack.database.db
      .select()
      .from(processEvents)
      .where(eq(processEvents.processId, process.id));
    expect(leftEvents).toHaveLength(0);
    expect(fs.existsSync(run.runDir!)).toBe(false);
    await expect(listRuns(stack.deps, process.id)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('fails a run whose trainer exits non-zero, with the exit code and the end of stderr as the reason', async () => {
    const template = await makeTemplate(stack, {
      command:
        'echo "{\\"step\\":1,\\"loss\\":0.5}" >> "$TRAINYARD_METRICS_FILE"; echo "CUDA out of memory" >&2; exit 3',
    });
    const machine = await localMachine(stack);
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process.id, 'start');
    const failed = await waitForStatus(stack, process.id, 'failed');
    expect(failed.lastError).toMatch(/exited with code 3/);
    expect(failed.lastError).toMatch(/CUDA out of memory/);
    const run = await findRun(stack.deps, process.id);
    expect(run.exitCode).toBe(3);
    const stored = await storedPoints(stack, run.id);
    expect(stored.get('loss@1')).toBe(0.5);
    // A failed process may start again.
    expect((await act(stack.deps, process.id, 'start')).status).toBe('queued');
    await waitForStatus(stack, process.id, 'failed');
  });

  it('queues the second of two processes on a one-slot machine until the first is done', async () => {
    const machine = await localMachine(stack, 1);
    const template = await makeTemplate(stack, { command: 'sleep 2' });
    const first = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    const second = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, first.id, 'start');
    await waitForStatus(stack, first.id, 'running');
    await act(stack.deps, second.id, 'start');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await getProcess(stack.deps, second.id)).status).toBe('queued');
    await waitForStatus(stack, first.id, 'completed');
    await waitForStatus(stack, second.id, ['running', 'completed']);
    await waitForStatus(stack, second.id, 'completed');
    const [a, b] = [await findRun(stack.deps, first.id), await findRun(stack.deps, second.id)];
    expect(b.startedAt!.getTime()).toBeGreaterThanOrEqual(a.finishedAt!.getTime() - 50);
  });

  it('a stop while queued leaves the queue at once and records stopped', async () => {
    const machine = await localMachine(stack, 1);
    const blocker = await makeTemplate(stack, { command: 'sleep 30', stopGraceSeconds: 1 });
    const holder = await createProcess(stack.deps, { templateId: blocker.id, machineId: machine.id });
    const waiting = await createProcess(stack.deps, { templateId: blocker.id, machineId: machine.id });
    await act(stack.deps, holder.id, 'start');
    await waitForStatus(stack, holder.id, 'running');
    await act(stack.deps, waiting.id, 'start');
    await waitForStatus(stack, waiting.id, 'queued');
    await act(stack.deps, waiting.id, 'stop');
    await waitForStatus(stack, waiting.id, 'stopped', 10_000);
    await act(stack.deps, holder.id, 'stop');
    await waitForStatus(stack, holder.id, 'stopped');
    const [count] = await stack.database.db
      .select({ n: sql<number>`count(*)::int` })
      .from(runs)
      .where(and(eq(runs.processId, waiting.id), sql`${runs.startedAt} is not null`));
    expect(count!.n).toBe(0);
  });
});
