// The installation id is read back exactly as stored, whatever its digits: a hex id that also
// reads as a JSON number ("12e345678901") once came back as Infinity through the jsonb column,
// so the workflow ids the database made no longer matched the queues the workers polled.
import crypto from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { processes, templates, machines } from '../../db/schema.js';
import { installationId, NEW_WORKFLOW_ID } from '../../services/installation.js';
import { processWorkflowPrefix } from '../../workflows/messages.js';
import { databaseUrlFor } from '../support/global-setup.js';

const admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
const name = `trainyard_instid_${crypto.randomBytes(4).toString('hex')}`;
let database: Database;
beforeAll(async () => {
  await admin.unsafe(`create database ${name}`);
  database = openDatabase(databaseUrlFor(name, inject('adminDatabaseUrl')), { max: 2 });
  await runMigrations(database);
});
afterAll(async () => {
  await database?.close();
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
});

describe('the installation id', () => {
  it.each(['12e345678901', '123456789012', '0e0000000001', 'abcdef012345'])(
    '%s reads back as itself, and names the workflows the database makes',
    async (id) => {
      await database.sql`update app_state set value = to_jsonb(${id}::text) where key = 'installation_id'`;
      expect(await installationId(database.db)).toBe(id);
      const [template] = await database.db
        .insert(templates)
        .values({ name: `t ${id}`, command: 'true' })
        .returning();
      const [machine] = await database.db
        .insert(machines)
        .values({ name: `m ${id}`, kind: 'local', address: 'local' })
        .returning();
      const [row] = await database.db
        .insert(processes)
        .values({ templateId: template!.id, machineId: machine!.id, workflowId: NEW_WORKFLOW_ID })
        .returning();
      expect(row!.workflowId.startsWith(processWorkflowPrefix(id))).toBe(true);
    },
  );
});
