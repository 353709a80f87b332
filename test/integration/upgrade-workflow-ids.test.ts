// An installation from before installation ids, upgraded: migration 0012 gives the
// existing rows their keys and keeps their workflow ids, the workers poll the old queues
// as long as workflows run there, and `trainyard reconcile` retires those queues once
// none is left. Real PostgreSQL (the migrations as drizzle applies them), real Temporal
// dev server, real workers and trainer.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { openDatabase } from '../../db/client.js';
import { MIGRATIONS_DIR, runMigrations } from '../../db/migrate.js';
import { processes } from '../../db/schema.js';
import { installationOf, legacyQueuesInUse, NEW_WORKFLOW_ID } from '../../services/installation.js';
import { act, deleteProcess } from '../../services/processes.js';
import { LEGACY_CONTROL_TASK_QUEUE, processWorkflowPrefix } from '../../workflows/messages.js';
import { reconcileInstallation } from '../../workers/reconcile.js';
import { databaseUrlFor } from '../support/global-setup.js';
import { EXAMPLE_TRAINER, startStack, TSX, waitFor, waitForStatus, type Stack } from '../support/stack.js';

const admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
const name = `trainyard_upgrade_${crypto.randomBytes(4).toString('hex')}`;
const url = databaseUrlFor(name, inject('adminDatabaseUrl'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-migrations-'));
let stack: Stack | null = null;

afterAll(async () => {
  // Its workflows end with it, so no worker of another test ever sees them.
  if (stack) {
    const rows = await stack.database.db.select({ workflowId: processes.workflowId }).from(processes);
    for (const row of rows)
      await stack.client.workflow
        .getHandle(row.workflowId)
        .terminate('test over')
        .catch(() => undefined);
  }
  await stack?.close();
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The migrations up to `last` (a tag), as the release before shipped them. */
function migrationsUpTo(last: string): string {
  const dir = path.join(tmp, last);
  fs.cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  const journalPath = path.join(dir, 'meta', '_journal.json');
  const journal = JSON.parse(fs.readFileSync(journalPath, 'utf8')) as { entries: Array<{ tag: string }> };
  const end = journal.entries.findIndex((e) => e.tag === last);
  journal.entries = journal.entries.slice(0, end + 1);
  fs.writeFileSync(journalPath, JSON.stringify(journal));
  return dir;
}

describe('an installation from before installation ids, upgraded', () => {
  it('keeps its processes’ workflow ids, runs them on the old queues, and retires those once none is left', async () => {
    await admin.unsafe(`create database ${name}`);
    const before = openDatabase(url);
    await migrate(before.db, { migrationsFolder: migrationsUpTo('0011_user_invites') });
    const [template] = await before.sql<Array<{ id: number }>>`
      insert into templates (name, command, params, total_steps)
      values ('upgrade', ${`'${TSX}' '${EXAMPLE_TRAINER}'`}, ${JSON.stringify({ step_delay_ms: 0 })}::jsonb, 300)
      returning id`;
    // Old-style ids are not scoped by installation: far from the ids of the run's shared database,
    // whose workers share this Temporal namespace.
    await before.sql`alter sequence processes_id_seq restart with 900000`;
    const [machine] = await before.sql<Array<{ id: number }>>`
      insert into machines (name, kind, address, slots) values ('local', 'local', 'local', 2) returning id`;
    const old = await before.sql<Array<{ id: number }>>`
      insert into processes (template_id, machine_id) values (${template!.id}, ${machine!.id}), (${template!.id}, ${machine!.id})
      returning id`;
    await before.close();

    // The upgrade.
    const database = openDatabase(url);
    await runMigrations(database);
    const rows = await database.db.select().from(processes).orderBy(processes.id);
    expect(rows.map((r) => r.workflowId)).toEqual(old.map((p) => `training-process-${p.id}`));
    expect(new Set(rows.map((r) => r.key)).size).toBe(2);
    expect(await legacyQueuesInUse(database.db)).toBe(true);
    const installation = await installationOf(database.db);
    // Trainyard asks for a new workflow id; a release before it, still running in a rolling deploy, does not.
    const [made] = await database.db
      .insert(processes)
      .values({ templateId: template!.id, machineId: machine!.id, workflowId: NEW_WORKFLOW_ID })
      .returning();
    expect(made!.workflowId).toMatch(new RegExp(`^${processWorkflowPrefix(installation)}${made!.id}-[0-9a-f]{12}$`));
    const [byOldRelease] = await database.db
      .insert(processes)
      .values({ templateId: template!.id, machineId: machine!.id })
      .returning();
    expect(byOldRelease!.workflowId).toBe(`training-process-${byOldRelease!.id}`);
    await database.close();

    // The first process's workflow was running before the upgrade: as the old release started it.
    stack = await startStack({ databaseUrl: url, worker: false });
    const [legacy] = rows;
    await stack.client.workflow.start('trainingProcessWorkflow', {
      taskQueue: LEGACY_CONTROL_TASK_QUEUE,
      workflowId: legacy!.workflowId,
      args: [{ processId: legacy!.id, templateId: template!.id, machineId: machine!.id }],
    });

    const workers = await stack.startWorker();
    expect(workers.queues()).toEqual(
      expect.arrayContaining([
        LEGACY_CONTROL_TASK_QUEUE,
        `machine-${machine!.id}`,
        `trainyard-${installation}-control`,
        `trainyard-${installation}-machine-${machine!.id}`,
      ]),
    );
    // It runs on the old queues; the second process (no workflow yet) gets one on the new.
    await act(stack.deps, legacy!.id, 'start');
    await act(stack.deps, rows[1]!.id, 'start');
    await waitForStatus(stack, legacy!.id, 'completed');
    await waitForStatus(stack, rows[1]!.id, 'completed');
    const restarted = await stack.client.workflow.getHandle(rows[1]!.workflowId).describe();
    expect([restarted.workflowId, restarted.taskQueue]).toEqual([
      'training-process-' + rows[1]!.id,
      `trainyard-${installation}-control`,
    ]);
    const described = await stack.client.workflow.getHandle(legacy!.workflowId).describe();
    expect(described.taskQueue).toBe(LEGACY_CONTROL_TASK_QUEUE);

    // While it lives, the old queues stay; once it is deleted, reconcile retires them and workers stop polling them.
    expect((await reconcileInstallation(stack.deps)).legacyQueues).toBe('in use');
    await deleteProcess(stack.deps, legacy!.id);
    await waitFor('the legacy workflow to end', async () => {
      const d = await stack!.client.workflow.getHandle(legacy!.workflowId).describe();
      return d.status.name === 'COMPLETED';
    });
    const report = await waitFor('the old queues to be retired', async () => {
      const r = await reconcileInstallation(stack!.deps);
      return r.legacyQueues === 'retired' ? r : null;
    });
    expect(report.orphans).toEqual([]);
    expect(await legacyQueuesInUse(stack.database.db)).toBe(false);
    await workers.reconcile();
    expect(workers.queues().some((q) => q === LEGACY_CONTROL_TASK_QUEUE || q.startsWith('machine-'))).toBe(false);
    const [left] = await stack.database.db.select().from(processes).where(eq(processes.id, legacy!.id));
    expect(left).toBeUndefined();
  }, 180_000);
});
