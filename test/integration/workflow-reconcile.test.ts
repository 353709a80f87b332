// A training process's workflow terminated by hand in Temporal (the UI, `temporal workflow
// terminate`): the worker notices, frees the slot lease, ends the run as failed with the
// reason, stops the trainer it left, and starts the workflow again, so every action works.
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, processEvents, processes, runs, slotLeases } from '../../db/schema.js';
import { act, createProcess, deleteProcess, findRun, getProcess } from '../../services/processes.js';
import { ServiceError } from '../../services/errors.js';
import { startWorkers, type RunningWorkers } from '../../workers/worker.js';
import {
  exampleTemplate,
  groupAlive,
  localMachine,
  processRow,
  startStack,
  TEST_SECRET,
  waitFor,
  waitForStatus,
  workflowBundle,
  type Stack,
  workflowIdOf,
} from '../support/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

const REASON = 'The workflow was terminated in Temporal.';

async function terminate(processId: number): Promise<void> {
  await stack.client.workflow.getHandle(await workflowIdOf(stack, processId)).terminate('terminated by hand in a test');
}

async function eventsOf(processId: number): Promise<string[]> {
  const rows = await stack.database.db.select().from(processEvents).where(eq(processEvents.processId, processId));
  return rows.map((r) => r.message);
}

/** The status of the latest execution of the process's workflow, as the Temporal UI shows it. */
async function workflowState(processId: number): Promise<string> {
  return (await stack.client.workflow.getHandle(await workflowIdOf(stack, processId)).describe()).status.name;
}

async function runningExecutions(processId: number): Promise<number> {
  let n = 0;
  for await (const _ of stack.client.workflow.list({
    query: `WorkflowId = '${await workflowIdOf(stack, processId)}' AND ExecutionStatus = 'Running'`,
  }))
    n += 1;
  return n;
}

/** A trainer that runs for minutes unless stopped. */
const slowTemplate = () => exampleTemplate(stack, { step_delay_ms: 50 }, { totalSteps: 100_000, stopGraceSeconds: 5 });

describe('a workflow terminated by hand', () => {
  it('of a running process: the slot frees for the queued process, the trainer is stopped, the process shows failed and start and delete work', async () => {
    const machine = await localMachine(stack, 1);
    const held = await createProcess(stack.deps, { templateId: (await slowTemplate()).id, machineId: machine.id });
    await act(stack.deps, held.id, 'start');
    await waitForStatus(stack, held.id, 'running');
    const run = await waitFor('the trainer handle', async () => {
      const r = await findRun(stack.deps, held.id);
      return r.pgid !== null ? r : null;
    });
    const waiting = await createProcess(stack.deps, {
      templateId: (await exampleTemplate(stack)).id,
      machineId: machine.id,
    });
    await act(stack.deps, waiting.id, 'start');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await getProcess(stack.deps, waiting.id)).status).toBe('queued');

    await terminate(held.id);

    // The one slot is free again: the queued process runs to the end.
    await waitForStatus(stack, waiting.id, 'completed', 60_000);
    // Well before the periodic probe (60 s here) would look: the restore asks for it.
    await waitFor('the trainer left behind to be stopped', async () => !groupAlive(run.pgid!), 30_000, 200);
    await waitFor('the reaper to be done with the run', async () => {
      const [row] = await stack.database.db
        .select({ mayRemain: runs.trainerMayRemain })
        .from(runs)
        .where(eq(runs.id, run.id));
      return row?.mayRemain === false;
    });
    const failed = await waitForStatus(stack, held.id, 'failed');
    expect(failed.lastError).toBe(REASON);
    const [ended] = await stack.database.db.select().from(runs).where(eq(runs.id, run.id));
    expect(ended).toMatchObject({ status: 'failed', error: REASON, trainerMayRemain: false });
    expect(ended!.finishedAt).not.toBeNull();
    expect(await stack.database.db.select().from(slotLeases).where(eq(slotLeases.processId, held.id))).toEqual([]);
    const events = await eventsOf(held.id);
    expect(events.some((m) => m.startsWith(REASON) && m.includes(`Run ${run.number} ended as failed`))).toBe(true);
    expect(events.some((m) => m.includes(`The trainer of run ${run.number}`) && m.includes('it was stopped'))).toBe(
      true,
    );

    // Every action works again: start queues a new run, delete removes the process.
    expect(await act(stack.deps, held.id, 'start')).toEqual({ status: 'queued' });
    await waitForStatus(stack, held.id, ['running', 'starting']);
    expect((await findRun(stack.deps, held.id)).number).toBe(run.number + 1);
    expect(await deleteProcess(stack.deps, held.id)).toEqual({ status: 'stopping' });
    await waitFor('the process to be gone', async () => (await processRow(stack, held.id)) === null, 60_000, 200);
  });

  it('of an idle process: the reconciler starts it again with its status unchanged, and actions work', async () => {
    const machine = await localMachine(stack);
    const template = await exampleTemplate(stack);
    const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    const before = await processRow(stack, created.id);
    await terminate(created.id);
    expect(await workflowState(created.id)).toBe('TERMINATED');

    // Nobody acts: the worker restores it by itself. The new execution runs a moment before the
    // restore's transaction commits (it starts it last, inside), so the row is waited for too.
    const after = await waitFor(
      'the workflow to run again and the row to say so',
      async () => {
        if ((await workflowState(created.id)) !== 'RUNNING') return null;
        const row = await processRow(stack, created.id);
        return row!.statusVersion > before!.statusVersion ? row : null;
      },
      30_000,
      200,
    );
    expect(after.status).toBe('created');
    expect(after.lastError).toBeNull();
    expect(after.statusVersion).toBeGreaterThan(before!.statusVersion);
    expect(await eventsOf(created.id)).toEqual([
      `${REASON} Trainyard started the process's workflow again; its actions work as before.`,
    ]);
    const audit = await stack.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, 'process.workflow.restore'), eq(auditEvents.targetId, String(created.id))));
    expect(audit).toHaveLength(1);

    expect(await act(stack.deps, created.id, 'disable')).toEqual({ status: 'disabled' });
    expect(await act(stack.deps, created.id, 'enable')).toEqual({ status: 'created' });

    // Stopped, terminated, and acted on at once: the action restores it instead of answering 404.
    await act(stack.deps, created.id, 'start');
    await waitForStatus(stack, created.id, 'completed');
    await terminate(created.id);
    expect(await act(stack.deps, created.id, 'disable')).toEqual({ status: 'disabled' });
    expect((await getProcess(stack.deps, created.id)).status).toBe('disabled');
    expect(await act(stack.deps, created.id, 'enable')).toEqual({ status: 'completed' });
    await deleteProcess(stack.deps, created.id);
    await waitFor('the process to be gone', async () => (await processRow(stack, created.id)) === null, 60_000, 200);
  });

  it('a process row whose workflow was never started (the web server died in between): its first action starts one and works', async () => {
    const machine = await localMachine(stack);
    const template = await exampleTemplate(stack);
    const [row] = await stack.database.db
      .insert(processes)
      .values({ templateId: template.id, machineId: machine.id })
      .returning();
    await expect(stack.client.workflow.getHandle(row!.workflowId).describe()).rejects.toThrow(/not found/i);

    expect(await act(stack.deps, row!.id, 'start')).toEqual({ status: 'queued' });
    await waitForStatus(stack, row!.id, 'completed');
    expect(await eventsOf(row!.id)).toContain(
      `The workflow was missing in Temporal. Trainyard started the process's workflow again; its actions work as before.`,
    );
  });

  it('two workers and concurrent actions restore it once: one new execution, the run ended once, one event', async () => {
    const second: RunningWorkers = await startWorkers({
      db: stack.database.db,
      sql: stack.database.sql,
      temporalAddress: stack.temporalAddress,
      namespace: 'default',
      serveLocalMachine: true,
      dataDir: stack.dataDir,
      secret: TEST_SECRET,
      keysDir: null,
      reconcileIntervalMs: 300,
      workflowBundle: await workflowBundle(),
      log: () => {},
    });
    try {
      const machine = await localMachine(stack);
      const process1 = await createProcess(stack.deps, {
        templateId: (await slowTemplate()).id,
        machineId: machine.id,
      });
      await act(stack.deps, process1.id, 'start');
      await waitForStatus(stack, process1.id, 'running');
      const run = await waitFor('the trainer handle', async () => {
        const r = await findRun(stack.deps, process1.id);
        return r.pgid !== null ? r : null;
      });

      await terminate(process1.id);
      // Both workers reconcile every few hundred ms; four actions at once race them.
      const [actions] = await Promise.all([
        Promise.allSettled(Array.from({ length: 4 }, () => act(stack.deps, process1.id, 'disable'))),
        second.reconcile(),
        stack.workers!.reconcile(),
      ]);
      // One disable is accepted; the others are refused by the status table, none answers 404.
      expect(actions.filter((a) => a.status === 'fulfilled').map((a) => a.value)).toEqual([{ status: 'disabled' }]);
      for (const a of actions) if (a.status === 'rejected') expect(a.reason).toMatchObject({ code: 'not_allowed' });
      expect(actions.every((a) => a.status === 'fulfilled' || a.reason instanceof ServiceError)).toBe(true);
      await waitForStatus(stack, process1.id, 'disabled');
      await waitFor('the trainer to be stopped', async () => !groupAlive(run.pgid!), 30_000, 200);
      // A few more rounds of both reconcilers change nothing.
      await new Promise((r) => setTimeout(r, 1500));
      await Promise.all([second.reconcile(), stack.workers!.reconcile()]);

      expect(await runningExecutions(process1.id)).toBe(1);
      const events = await eventsOf(process1.id);
      expect(events.filter((m) => m.startsWith(REASON))).toHaveLength(1);
      expect(events.filter((m) => m.includes('it was stopped'))).toHaveLength(1);
      const audit = await stack.database.db
        .select()
        .from(auditEvents)
        .where(and(eq(auditEvents.action, 'process.workflow.restore'), eq(auditEvents.targetId, String(process1.id))));
      expect(audit).toHaveLength(1);
      const [ended] = await stack.database.db.select().from(runs).where(eq(runs.id, run.id));
      expect(ended).toMatchObject({ status: 'failed', error: REASON });
      const row = await processRow(stack, process1.id);
      expect(row).toMatchObject({ status: 'disabled', statusBeforeDisable: 'failed', lastError: REASON });
      const snapshot = await stack.client.workflow
        .getHandle(process1.workflowId)
        .query<{ statusVersion: number; status: string }>('snapshot');
      // The new workflow and the database mirror agree, so its next change is recorded.
      expect(snapshot).toMatchObject({ status: 'disabled', statusVersion: row!.statusVersion });
      expect(await act(stack.deps, process1.id, 'enable')).toEqual({ status: 'failed' });
      expect((await processRow(stack, process1.id))!.status).toBe('failed');
    } finally {
      await second.shutdown();
    }
  });
});
