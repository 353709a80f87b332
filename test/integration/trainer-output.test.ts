// Trainers whose output is hostile to the platform, through the real stack: bytes
// PostgreSQL text cannot hold (NUL, lone surrogates), FIFOs where files belong, and a big
// run directory to remove. None may stall a run, the worker or a delete.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMachineActivities } from '../../activities/machine.js';
import { runs } from '../../db/schema.js';
import { act, createProcess, deleteProcess, findRun, getProcess, logTail } from '../../services/processes.js';
import {
  exampleTemplate,
  localMachine,
  makeTemplate,
  startStack,
  storedPoints,
  TEST_SECRET,
  waitFor,
  waitForStatus,
  type Stack,
} from '../support/stack.js';

const ODD_BYTES_TRAINER = path.resolve('test/integration/fixtures/odd-bytes-trainer.mjs');
const FIFO_TRAINER = path.resolve('test/integration/fixtures/fifo-trainer.sh');

let stack: Stack;
const leftovers: number[] = [];
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  // Trainer groups a failed watch may leave behind (the worker reaps them on its own later).
  for (const pgid of leftovers) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {}
  }
  await stack?.close();
});

async function gone(processId: number): Promise<boolean> {
  return getProcess(stack.deps, processId).then(
    () => false,
    () => true,
  );
}

describe('trainer output PostgreSQL text cannot hold', () => {
  it('NUL bytes in the logs and NUL or lone-surrogate series names: the run completes, the bad lines are malformed, the rest is stored, the logs are readable', async () => {
    const template = await makeTemplate(stack, { command: `node '${ODD_BYTES_TRAINER}'` });
    const machine = await localMachine(stack);
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, created.id, 'start');
    const done = await waitForStatus(stack, created.id, 'completed', 60_000);
    expect(done.progress.step).toBe(5);
    const run = await findRun(stack.deps, created.id);
    expect(run.exitCode).toBe(0);
    expect(run.malformedLines).toBe(3);
    expect(await storedPoints(stack, run.id)).toEqual(
      new Map([
        ['loss@1', 0.9],
        ['loss@5', 0.6],
        ['😀@5', 1],
      ]),
    );
    const logs = await logTail(stack.deps, created.id);
    expect(logs.stdout).toBe('start\uFFFDstdout\nend\uFFFD\uFFFD\uFFFD\uFFFD\n');
    expect(logs.stderr).toBe('warn\uFFFDstderr\n');
  });

  it('a failing trainer with a NUL in its stderr is recorded failed with a readable reason', async () => {
    const template = await makeTemplate(stack, { command: `printf 'bad\\000thing happened\\n' >&2; exit 3` });
    const machine = await localMachine(stack);
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, created.id, 'start');
    const failed = await waitForStatus(stack, created.id, 'failed', 60_000);
    expect(failed.lastError).toBe('The trainer exited with code 3: bad\uFFFDthing happened');
    const run = await findRun(stack.deps, created.id);
    expect(run.exitCode).toBe(3);
    expect(run.error).toBe('The trainer exited with code 3: bad\uFFFDthing happened');
    expect(run.stderrTail).toBe('bad\uFFFDthing happened\n');
  });
});

describe('FIFOs where the worker reads files', () => {
  it('never block the worker: other runs keep storing points, the FIFO run is failed with the reason or stopped, and both are deleted', async () => {
    const machine = await localMachine(stack, 4);
    const normalTemplate = await exampleTemplate(stack, { step_delay_ms: 20 }, { totalSteps: 100_000 });
    // The helper of fifo-trainer.sh frees a reader stuck on the FIFO after 20 s.
    const metricsFifo = await makeTemplate(stack, {
      command: `exec /bin/sh '${FIFO_TRAINER}' "$TRAINYARD_METRICS_FILE" 20`,
      stopGraceSeconds: 5,
    });
    const exitCodeFifo = await makeTemplate(stack, {
      command: `exec /bin/sh '${FIFO_TRAINER}' "$TRAINYARD_RUN_DIR/exit_code" 20`,
      stopGraceSeconds: 5,
    });
    const normal = await createProcess(stack.deps, { templateId: normalTemplate.id, machineId: machine.id });
    const onMetrics = await createProcess(stack.deps, { templateId: metricsFifo.id, machineId: machine.id });
    const onExitCode = await createProcess(stack.deps, { templateId: exitCodeFifo.id, machineId: machine.id });

    // The longest the test's own event loop (the worker's, too: it runs in this process) goes without a turn.
    let last = Date.now();
    let longestGap = 0;
    const ticker = setInterval(() => {
      const now = Date.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
    }, 50);
    try {
      await act(stack.deps, normal.id, 'start');
      await waitForStatus(stack, normal.id, 'running');
      await act(stack.deps, onMetrics.id, 'start');
      await act(stack.deps, onExitCode.id, 'start');
      await waitForStatus(stack, onExitCode.id, 'running');
      const exitCodeRun = await findRun(stack.deps, onExitCode.id);
      await waitFor(
        'the exit_code FIFO',
        async () =>
          fs.existsSync(path.join(exitCodeRun.runDir!, 'exit_code')) &&
          fs.statSync(path.join(exitCodeRun.runDir!, 'exit_code')).isFIFO(),
      );

      // A metrics file that is a FIFO is a clear, final error, not a hang.
      const failed = await waitForStatus(stack, onMetrics.id, 'failed', 30_000);
      expect(failed.lastError).toMatch(/metrics\.jsonl is a FIFO, not a regular file/);
      const metricsRun = await findRun(stack.deps, onMetrics.id);
      if (metricsRun.pgid) leftovers.push(metricsRun.pgid);

      // The exit_code FIFO run keeps being watched: its points flow, and a stop ends it.
      await waitFor(
        'points of the exit_code FIFO run',
        async () => ((await getProcess(stack.deps, onExitCode.id)).progress.step ?? 0) > 10,
        30_000,
      );
      const stepBefore = (await getProcess(stack.deps, normal.id)).progress.step ?? 0;
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect((await getProcess(stack.deps, normal.id)).progress.step ?? 0).toBeGreaterThan(stepBefore);
      await act(stack.deps, onExitCode.id, 'stop');
      await waitForStatus(stack, onExitCode.id, 'stopped', 30_000);
      // Before the FIFO helpers' 20 s are up: nothing in the worker waited for them.
      expect(longestGap).toBeLessThan(5000);

      await deleteProcess(stack.deps, onMetrics.id);
      await deleteProcess(stack.deps, onExitCode.id);
      await waitFor('both deleted', async () => (await gone(onMetrics.id)) && (await gone(onExitCode.id)), 60_000);
      expect(fs.existsSync(metricsRun.runDir!)).toBe(false);
      expect(fs.existsSync(exitCodeRun.runDir!)).toBe(false);

      expect((await getProcess(stack.deps, normal.id)).progress.step ?? 0).toBeGreaterThan(stepBefore + 10);
      await act(stack.deps, normal.id, 'stop');
      await waitForStatus(stack, normal.id, 'stopped', 30_000);
      expect(longestGap).toBeLessThan(5000);
    } finally {
      clearInterval(ticker);
    }
  });
});

describe('removing run directories', () => {
  it('heartbeats all along a long removal, and the workflow gives removal its own budget with a heartbeat timeout', async () => {
    const machine = await localMachine(stack);
    const template = await makeTemplate(stack, { command: 'exit 0' });
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, created.id, 'start');
    await waitForStatus(stack, created.id, 'completed', 60_000);
    const run = await findRun(stack.deps, created.id);
    // A second, big run directory of the same process: 5 000 files take a while to remove.
    const bigDir = path.join(path.dirname(run.runDir!), 'run-big');
    for (let d = 0; d < 5; d++) {
      fs.mkdirSync(path.join(bigDir, `d${d}`), { recursive: true });
      execFileSync('/bin/sh', ['-c', 'cd "$1" && seq -f f%g 1 1000 | xargs touch', 'make', path.join(bigDir, `d${d}`)]);
    }
    await stack.database.db.insert(runs).values({
      processId: created.id,
      number: 2,
      machineId: machine.id,
      templateSnapshot: {},
      params: {},
      runDir: bigDir,
      ownerAttempt: 'test',
    });

    // The activity as the worker runs it, with a heartbeat every 10 ms to see it beat during the removal.
    const machineActivities = createMachineActivities({
      db: stack.database.db,
      sql: stack.database.sql,
      machine,
      dataDir: stack.dataDir,
      secret: TEST_SECRET,
      keysDir: null,
      heartbeatMs: 10,
    });
    // As the process's own workflow would run it: an activity checks whose process it removes.
    const environment = new MockActivityEnvironment({
      workflowExecution: { workflowId: created.workflowId, runId: 'mock-run' },
    });
    const beats: number[] = [];
    environment.on('heartbeat', () => beats.push(Date.now()));
    const started = Date.now();
    try {
      await environment.run(machineActivities.activities.removeRunDirs, created.id);
    } finally {
      await machineActivities.dispose();
    }
    const finished = Date.now();
    console.log(`removal took ${finished - started} ms with ${beats.length} heartbeats`);
    expect(fs.existsSync(bigDir)).toBe(false);
    expect(fs.existsSync(run.runDir!)).toBe(false);
    expect(beats.length).toBeGreaterThanOrEqual(3);
    // Beats all along, not only at the start: the last one in the second half of the removal.
    expect(beats.at(-1)!).toBeGreaterThanOrEqual(started + (finished - started) / 2);

    // The workflow's delete schedules the removal with a long budget and a heartbeat timeout.
    await deleteProcess(stack.deps, created.id);
    await waitFor('the process deleted', () => gone(created.id), 60_000);
    const history = await stack.client.workflow.getHandle(created.workflowId).fetchHistory();
    const scheduled = (history.events ?? [])
      .map((event) => event.activityTaskScheduledEventAttributes)
      .find((attributes) => attributes?.activityType?.name === 'removeRunDirs');
    expect(Number(scheduled?.heartbeatTimeout?.seconds ?? 0)).toBeGreaterThan(0);
    expect(Number(scheduled?.startToCloseTimeout?.seconds ?? 0)).toBeGreaterThanOrEqual(3600);
  });
});
