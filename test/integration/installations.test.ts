// Workflow ids that never collide (docs/design.md, "Workflow ids and task queues"): two
// installations (two databases) on one Temporal namespace run side by side, and a
// database restored from an earlier dump is reconciled — its lost processes' workflows
// leave the rows that now have their ids alone and are ended — without touching the
// other installation's workflows. Real Temporal dev server, real PostgreSQL, real trainers,
// and the real `trainyard reconcile` command.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { processEvents, runs } from '../../db/schema.js';
import { installationOf } from '../../services/installation.js';
import { act, createProcess } from '../../services/processes.js';
import { LocalExecutor } from '../../executors/index.js';
import { processKeyOf, processWorkflowPrefix } from '../../workflows/messages.js';
import { reconcileInstallation, reportLines } from '../../workers/reconcile.js';
import { databaseUrlFor } from '../support/global-setup.js';
import {
  exampleTemplate,
  localMachine,
  startStack,
  TSX,
  waitFor,
  waitForStatus,
  workflowIdOf,
  type Stack,
} from '../support/stack.js';
import { inject } from 'vitest';

const run = promisify(execFile);
const admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
const databases: string[] = [];
const stacks: Stack[] = [];
const dumpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-dump-'));

/** A new, migrated database: a new installation. */
async function freshDatabase(): Promise<string> {
  const name = `trainyard_inst_${crypto.randomBytes(4).toString('hex')}`;
  await admin.unsafe(`create database ${name}`);
  databases.push(name);
  const url = databaseUrlFor(name, inject('adminDatabaseUrl'));
  const database = openDatabase(url);
  await runMigrations(database);
  await database.close();
  return url;
}

async function stackOn(databaseUrl: string, options: { reconcileAtStart?: boolean } = {}): Promise<Stack> {
  const stack = await startStack({ databaseUrl, worker: false });
  stacks.push(stack);
  await stack.startWorker(options);
  return stack;
}

/** The messages along an error's cause chain. */
function causes(error: unknown): string {
  const messages: string[] = [];
  for (let e = error; e instanceof Error; e = (e as { cause?: unknown }).cause) messages.push(e.message);
  return messages.join(' ← ');
}

/** A process that is still running: absent and zombie processes are gone. */
function processRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZXx]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

async function workflowState(stack: Stack, workflowId: string): Promise<string> {
  return (await stack.client.workflow.getHandle(workflowId).describe()).status.name;
}

afterAll(async () => {
  for (const stack of stacks.reverse()) await stack.close().catch(() => undefined);
  for (const name of databases) await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
  fs.rmSync(dumpDir, { recursive: true, force: true });
});

describe('two installations on one namespace', () => {
  let a: Stack;
  let b: Stack;
  beforeAll(async () => {
    [a, b] = await Promise.all([stackOn(await freshDatabase()), stackOn(await freshDatabase())]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
  });

  it('run processes with the same ids side by side, each on its own workflows and queues', async () => {
    const [installationA, installationB] = [await installationOf(a.database.db), await installationOf(b.database.db)];
    expect(installationA).toMatch(/^[0-9a-f]{12}$/);
    expect(installationA).not.toBe(installationB);

    const made = await Promise.all(
      [a, b].map(async (stack) => {
        const template = await exampleTemplate(stack);
        const machine = await localMachine(stack);
        const created = [];
        for (let i = 0; i < 3; i += 1)
          created.push(await createProcess(stack.deps, { templateId: template.id, machineId: machine.id }));
        await Promise.all(created.map((p) => act(stack.deps, p.id, 'start')));
        return created;
      }),
    );
    const [inA, inB] = made as [(typeof made)[0], (typeof made)[0]];
    // The same process ids in both: before installation ids, B's would have met A's workflows.
    expect(inB.map((p) => p.id)).toEqual(inA.map((p) => p.id));
    for (const p of inA) expect(p.workflowId).toMatch(new RegExp(`^${processWorkflowPrefix(installationA)}${p.id}-`));
    for (const p of inB) expect(p.workflowId).toMatch(new RegExp(`^${processWorkflowPrefix(installationB)}${p.id}-`));

    for (const [stack, list] of [
      [a, inA],
      [b, inB],
    ] as const) {
      for (const p of list) {
        await waitForStatus(stack, p.id, 'completed');
        const stored = await stack.database.db.select().from(runs).where(eq(runs.processId, p.id));
        expect(stored.map((r) => [r.number, r.status, r.step])).toEqual([[1, 'completed', 300]]);
      }
    }
    // Each installation's workers poll only its own queues.
    expect(a.workers!.queues().every((q) => q.includes(installationA))).toBe(true);
    expect(b.workers!.queues().every((q) => q.includes(installationB))).toBe(true);
    // Neither sees the other's workflows as its own.
    for (const stack of [a, b]) {
      const report = await reconcileInstallation(stack.deps, { dryRun: true });
      expect(report.restored).toEqual([]);
      expect(report.orphans).toEqual([]);
    }
  }, 180_000);
});

describe('a database restored from an earlier dump', () => {
  it('is reconciled: the lost processes’ workflows touch nothing and are ended, ids handed out again start new workflows, the other installation is untouched', async () => {
    const urlA = await freshDatabase();
    const a = await stackOn(urlA);
    const b = await stackOn(await freshDatabase());
    // ~15 s runs: still running while the dump is restored.
    const slow = { step_delay_ms: 50 };
    const [templateA, templateB] = [await exampleTemplate(a, slow), await exampleTemplate(b, slow)];
    const [machineA, machineB] = [await localMachine(a), await localMachine(b)];

    // The lost process's trainer runs for minutes: still running when its workflow ends.
    const slowest = await exampleTemplate(a, { step_delay_ms: 1000 });
    const kept = await createProcess(a.deps, { templateId: templateA.id, machineId: machineA.id });
    await act(a.deps, kept.id, 'start');
    await waitForStatus(a, kept.id, 'running');

    // The backup.
    const dump = path.join(dumpDir, 'a.dump');
    await run('pg_dump', ['--format=custom', '--file', dump, urlA]);

    // After it: a process the restore will lose, while another installation runs its own.
    const lost = await createProcess(a.deps, { templateId: slowest.id, machineId: machineA.id });
    await act(a.deps, lost.id, 'start');
    const other = await createProcess(b.deps, { templateId: templateB.id, machineId: machineB.id });
    await act(b.deps, other.id, 'start');
    await Promise.all([waitForStatus(a, lost.id, 'running'), waitForStatus(b, other.id, 'running')]);

    const [lostRun] = await a.database.db.select().from(runs).where(eq(runs.processId, lost.id));
    expect(lostRun!.pid).not.toBeNull();
    expect(path.basename(lostRun!.runDir!)).toContain(`-${processKeyOf(lost.workflowId)}-`);

    // The restore: A's processes stop (their trainers keep running), its database is the dump.
    await a.workers!.shutdown();
    const restoredName = `trainyard_inst_${crypto.randomBytes(4).toString('hex')}`;
    await admin.unsafe(`create database ${restoredName}`);
    databases.push(restoredName);
    const restoredUrl = databaseUrlFor(restoredName, inject('adminDatabaseUrl'));
    await run('pg_restore', ['--no-owner', '--dbname', restoredUrl, dump]);
    await a.close();
    const restored = await startStack({ databaseUrl: restoredUrl, worker: false, dataDir: a.dataDir });
    stacks.push(restored);
    expect(await installationOf(restored.database.db)).toBe(await installationOf(a.database.db));

    // The id of the lost process is handed out again, to a process with a workflow of its own.
    const reborn = await createProcess(restored.deps, { templateId: templateA.id, machineId: machineA.id });
    expect(reborn.id).toBe(lost.id);
    expect(reborn.workflowId).not.toBe(lost.workflowId);
    // No reconcile at start: first, the lost process's workflow meets the row that has its id now.
    await restored.startWorker({ reconcileAtStart: false });
    await act(restored.deps, reborn.id, 'start');

    // The lost process's workflow writes the row of the reborn one: refused, and it ends.
    await waitFor('the lost process’s workflow to end', async () =>
      (await workflowState(restored, lost.workflowId)) !== 'RUNNING' ? true : null,
    );
    const closed = await restored.client.workflow
      .getHandle(lost.workflowId)
      .result()
      .then(
        () => 'completed',
        (error: unknown) => causes(error),
      );
    expect(closed).toMatch(/(Process|Run) 2 belongs to workflow trainyard-/);
    // Ending so, it stopped its trainer, found by the key in its run directory.
    expect(closed).toContain(`Its trainer was stopped (pid ${lostRun!.pid}).`);
    expect(processRunning(lostRun!.pid!)).toBe(false);
    expect(fs.existsSync(path.join(lostRun!.runDir!, 'stop_requested'))).toBe(true);

    // The reborn process runs its own run, untouched.
    const done = await waitForStatus(restored, reborn.id, 'completed', 90_000);
    expect(done.workflowId).toBe(reborn.workflowId);
    const rebornRuns = await restored.database.db.select().from(runs).where(eq(runs.processId, reborn.id));
    expect(rebornRuns.map((r) => [r.number, r.status, r.step])).toEqual([[1, 'completed', 300]]);
    const events = await restored.database.db
      .select()
      .from(processEvents)
      .where(eq(processEvents.processId, reborn.id));
    expect(events.map((e) => e.message).join('\n')).not.toMatch(/restor|workflow was/i);

    // The process from before the dump kept its workflow, and ends as it would have.
    expect(await workflowIdOf(restored, kept.id)).toBe(kept.workflowId);
    await waitForStatus(restored, kept.id, 'completed', 90_000);

    // An orphan still running (the restore lost its row; it has nothing to write yet), with a
    // trainer of its own on the machine: the command finds and ends it, and stops the trainer.
    const installation = await installationOf(restored.database.db);
    // A training-process workflow no row has (as a restore leaves it), started by hand.
    const startOrphan = async (processId: number, machineId: number) => {
      const key = crypto.randomBytes(6).toString('hex');
      const workflowId = `${processWorkflowPrefix(installation)}${processId}-${key}`;
      await restored.client.workflow.start('trainingProcessWorkflow', {
        taskQueue: `trainyard-${installation}-control`,
        workflowId,
        args: [{ processId, templateId: templateA.id, machineId, installation }],
        memo: { processId, machineId },
      });
      return { key, workflowId };
    };
    const { key: orphanKey, workflowId: orphanWorkflowId } = await startOrphan(999, machineA.id);
    const local = new LocalExecutor({ runsRoot: path.join(a.dataDir, 'runs') });
    const orphanTrainer = await local.launch({
      runDir: path.join(await local.runsRoot(), 'process-999', `run-1-999-${orphanKey}-00000001`),
      command: 'sleep 300',
      env: { PATH: '/usr/bin:/bin' },
    });
    await local.close();
    const env = {
      ...process.env,
      DATABASE_URL: restoredUrl,
      TEMPORAL_ADDRESS: restored.temporalAddress,
      TRAINYARD_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-cli-')),
    };
    const dry = await run(TSX, ['bin/trainyard.ts', 'reconcile', '--dry-run'], { env, timeout: 60_000 });
    expect(dry.stdout).toContain('(dry run: nothing changed)');
    expect(dry.stdout).toContain(
      `workflow ${orphanWorkflowId} (started for process 999 on machine ${machineA.id}) has no process row; would terminate`,
    );
    expect(await workflowState(restored, orphanWorkflowId)).toBe('RUNNING');
    const real = await run(TSX, ['bin/trainyard.ts', 'reconcile'], { env, timeout: 60_000 });
    expect(real.stdout).toContain(
      `workflow ${orphanWorkflowId} (started for process 999 on machine ${machineA.id}) has no process row; terminated; its trainer was stopped (pid ${orphanTrainer.pid})`,
    );
    expect(processRunning(orphanTrainer.pid)).toBe(false);
    expect(await workflowState(restored, orphanWorkflowId)).toBe('TERMINATED');
    const again = await run(TSX, ['bin/trainyard.ts', 'reconcile'], { env, timeout: 60_000 });
    expect(again.stdout).toContain('database and Temporal agree');

    // An orphan on a machine no worker serves (the workers are stopped, say): its trainers' stop waits for one.
    const { workflowId: unserved } = await startOrphan(998, 424242);
    const pending = await reconcileInstallation(restored.deps, { trainerWaitMs: 500 });
    expect(pending.orphans).toEqual([
      expect.objectContaining({ workflowId: unserved, outcome: 'terminated', trainersPending: expect.any(String) }),
    ]);
    const stopper = pending.orphans[0]!.trainersPending!;
    expect((await restored.client.workflow.getHandle(stopper).describe()).status.name).toBe('RUNNING');
    expect(reportLines(pending)[1]).toBe(
      `workflow ${unserved} (started for process 998 on machine 424242) has no process row; terminated; its trainer is being stopped on machine 424242 by workflow ${stopper} (it waits for a worker serving that machine)`,
    );
    await restored.client.workflow.getHandle(stopper).terminate('test over');

    // The other installation's process ran on, untouched, to its end.
    expect(await workflowState(b, other.workflowId)).toMatch(/RUNNING|COMPLETED/);
    await waitForStatus(b, other.id, 'completed', 90_000);
    const otherRuns = await b.database.db.select().from(runs).where(eq(runs.processId, other.id));
    expect(otherRuns.map((r) => [r.number, r.status, r.step])).toEqual([[1, 'completed', 300]]);
  }, 240_000);
});
