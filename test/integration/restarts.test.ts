// Restarts and stalls on the built-in `local` machine, through the real Temporal dev server,
// PostgreSQL and real trainers (shell scripts): a trainer that fails once resumes from the
// checkpoint its failed run left (TRAINYARD_PREVIOUS_RUN_DIR), and a trainer that stops
// writing metrics is marked stalled, stopped and restarted — or only marked.
import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processEvents, processes, runs } from '../../db/schema.js';
import { act, createProcess, getProcess, listRuns } from '../../services/processes.js';
import {
  groupAlive,
  localMachine,
  makeTemplate,
  startStack,
  waitFor,
  waitForStatus,
  type Stack,
} from '../support/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

async function events(processId: number): Promise<string[]> {
  const rows = await stack.database.db
    .select({ message: processEvents.message })
    .from(processEvents)
    .where(eq(processEvents.processId, processId))
    .orderBy(asc(processEvents.id));
  return rows.map((row) => row.message);
}

async function runRows(processId: number) {
  return stack.database.db.select().from(runs).where(eq(runs.processId, processId)).orderBy(asc(runs.number));
}

// Fails the first time after saving a checkpoint; a restart finds it in the failed run's directory.
const FAILS_ONCE = `
if [ -n "$TRAINYARD_PREVIOUS_RUN_DIR" ] && [ -f "$TRAINYARD_PREVIOUS_RUN_DIR/checkpoint" ]; then
  echo "resumed from step $(cat "$TRAINYARD_PREVIOUS_RUN_DIR/checkpoint")"
  echo '{"step":2,"total_steps":2,"loss":0.5}' >> "$TRAINYARD_METRICS_FILE"
  exit 0
fi
echo 1 > "$TRAINYARD_RUN_DIR/checkpoint"
echo '{"step":1,"total_steps":2,"loss":0.9}' >> "$TRAINYARD_METRICS_FILE"
echo "crashed at step 1" >&2
exit 1
`;

// Writes one line and then nothing (the first time); a restart completes.
const STALLS_ONCE = `
if [ -n "$TRAINYARD_PREVIOUS_RUN_DIR" ]; then
  echo '{"step":2,"loss":0.5}' >> "$TRAINYARD_METRICS_FILE"
  exit 0
fi
echo '{"step":1,"loss":0.9}' >> "$TRAINYARD_METRICS_FILE"
exec sleep 300
`;

describe('a template that restarts failed runs', () => {
  it('follows a failed run with a new one that resumes from its checkpoint, and shows the attempt', async () => {
    const template = await makeTemplate(stack, {
      command: FAILS_ONCE,
      restart: { onFailure: 3, backoffSeconds: 1, onMachineLost: false, except: [] },
    });
    const machine = await localMachine(stack);
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, created.id, 'start');

    const done = await waitForStatus(stack, created.id, 'completed', 90_000);
    expect(done).toMatchObject({ attempt: 2, maxAttempts: 4, stalled: false, runNumber: 2 });
    const [first, second] = await runRows(created.id);
    expect(first).toMatchObject({ status: 'failed', exitCode: 1, attempt: 1, failureClass: 'exit_code' });
    expect(first!.error).toBe('The trainer exited with code 1: crashed at step 1');
    expect(second).toMatchObject({ status: 'completed', attempt: 2, failureClass: null });
    expect(second!.stdoutTail).toContain('resumed from step 1');
    expect(await events(created.id)).toContain('Run 1 failed (a non-zero exit code); attempt 2/4 starts in 1 s.');
    expect((await listRuns(stack.deps, created.id)).map((run) => [run.attempt, run.failureClass])).toEqual([
      [1, 'exit_code'],
      [2, null],
    ]);

    // A user's start begins a new chain, fresh: a completed run is not resumed from.
    await act(stack.deps, created.id, 'start');
    await waitFor('the third run to fail', async () => (await runRows(created.id))[2]?.status === 'failed');
    const restarted = await waitForStatus(stack, created.id, 'completed', 90_000);
    expect(restarted.attempt).toBe(2);
  });

  it('marks a run that stops writing metrics stalled, stops it and restarts', async () => {
    const template = await makeTemplate(stack, {
      command: STALLS_ONCE,
      stallSeconds: 5,
      stopGraceSeconds: 2,
      restart: { onFailure: 1, backoffSeconds: 0, onMachineLost: false, except: [] },
    });
    const machine = await localMachine(stack);
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, created.id, 'start');

    const done = await waitForStatus(stack, created.id, 'completed', 90_000);
    expect(done).toMatchObject({ attempt: 2, stalled: false });
    const [first, second] = await runRows(created.id);
    expect(first).toMatchObject({ status: 'failed', failureClass: 'stalled', stalled: true });
    expect(first!.error).toBe('Stalled: no metric line for 5 s.');
    expect(groupAlive(first!.pgid!)).toBe(false);
    expect(second).toMatchObject({ status: 'completed', attempt: 2, stalled: false });
    const log = await events(created.id);
    expect(log).toContain('Run 1 stalled: no metric line for 5 s; stopping it to restart.');
    expect(log).toContain('Run 1 failed (stalled); attempt 2/2 starts in 0 s.');
  });

  it('only marks a stalled run when the policy does not restart stalls, and clears the mark on the next line', async () => {
    const template = await makeTemplate(stack, {
      command: `echo '{"step":1}' >> "$TRAINYARD_METRICS_FILE"; sleep 12; echo '{"step":2}' >> "$TRAINYARD_METRICS_FILE"; sleep 2`,
      stallSeconds: 5,
      restart: { onFailure: 2, backoffSeconds: 0, onMachineLost: false, except: ['stalled'] },
    });
    const machine = await localMachine(stack);
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, created.id, 'start');

    const stalled = await waitFor(
      'the process to be marked stalled',
      async () => {
        const view = await getProcess(stack.deps, created.id);
        return view.stalled ? view : null;
      },
      30_000,
    );
    expect(stalled.status).toBe('running');
    expect(await events(created.id)).toContain('Run 1 stalled: no metric line for 5 s.');
    await waitFor(
      'the mark to clear',
      async () => {
        const [row] = await stack.database.db.select().from(processes).where(eq(processes.id, created.id));
        return row && !row.stalled;
      },
      30_000,
    );
    const done = await waitForStatus(stack, created.id, 'completed', 30_000);
    expect(done).toMatchObject({ attempt: 1, stalled: false, runNumber: 1 });
  });
});
