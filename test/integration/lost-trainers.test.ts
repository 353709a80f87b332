// The lost-trainer reaper (workers/lost-trainers.ts) against a real trainer, worker, Temporal
// and PostgreSQL: a run flagged `trainerMayRemain` whose row is locked meanwhile — as ingest
// locks it for every batch it commits — is still reaped on this look, not skipped until the
// next periodic probe; and two reapers at once stop it once.
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processEvents, runs } from '../../db/schema.js';
import { createExecutorFor } from '../../executors/factory.js';
import { act, createProcess, findRun } from '../../services/processes.js';
import { reapLostTrainers } from '../../workers/lost-trainers.js';
import {
  exampleTemplate,
  groupAlive,
  localMachine,
  startStack,
  TEST_SECRET,
  waitFor,
  waitForStatus,
  type Stack,
} from '../support/stack.js';

let stack: Stack;

beforeAll(async () => {
  // The periodic probe (and its reaper) is an hour away: only the calls below reap.
  stack = await startStack({ probeIntervalMs: 3_600_000 });
});
afterAll(async () => {
  await stack?.close();
});

describe('the lost-trainer reaper', () => {
  it('reaps a flagged trainer whose run row is locked meanwhile, once, with two reapers at it', async () => {
    const machine = await localMachine(stack, 1);
    const template = await exampleTemplate(stack, { step_delay_ms: 50 }, { totalSteps: 100_000, stopGraceSeconds: 2 });
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process.id, 'start');
    await waitForStatus(stack, process.id, 'running');
    const run = await waitFor('the trainer handle', async () => {
      const r = await findRun(stack.deps, process.id);
      return r.pgid !== null ? r : null;
    });
    await stack.database.db.update(runs).set({ trainerMayRemain: true }).where(eq(runs.id, run.id));

    // Another transaction holds the run's row for 3 s, as an ingest commit does for a moment.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = stack.database.sql.begin(async (tx) => {
      await tx`select id from runs where id = ${run.id} for update`;
      locked();
      await held;
    });
    await isLocked;
    setTimeout(release, 3000);

    const deps = {
      db: stack.database.db,
      machine,
      executor: () => createExecutorFor(machine, { dataDir: stack.dataDir, secret: TEST_SECRET, keysDir: null }),
    };
    const from = Date.now();
    const stopped = await Promise.all([reapLostTrainers(deps), reapLostTrainers(deps)]);
    await holder;
    expect(stopped.sort()).toEqual([0, 1]);
    expect(Date.now() - from).toBeGreaterThanOrEqual(2500);
    expect(groupAlive(run.pgid!)).toBe(false);
    const [after] = await stack.database.db.select().from(runs).where(eq(runs.id, run.id));
    expect(after!.trainerMayRemain).toBe(false);
    const notes = (
      await stack.database.db.select().from(processEvents).where(eq(processEvents.processId, process.id))
    ).filter((e) => e.message.includes('was still running after its run had ended; it was stopped'));
    expect(notes).toHaveLength(1);
  });
});
