// Integration tests' shared services: one Temporal dev server (found or built) and one
// fresh PostgreSQL database per run, dropped afterwards. Tests read them through inject().
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { ensureTemporalCli } from '../../lib/temporal-cli.js';
import { freePort, startTemporalDevServer } from '../../lib/temporal-dev-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    databaseUrl: string;
    adminDatabaseUrl: string;
  }
}

export const ADMIN_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function databaseUrlFor(name: string, base = ADMIN_DATABASE_URL): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cli = await ensureTemporalCli({ log: (line) => console.log(`[setup] ${line}`) });
  const server = await startTemporalDevServer({
    cli,
    port: await freePort(),
    uiPort: null,
    namespace: 'default',
    dbFile: null,
    stateDir: path.join(os.tmpdir(), `trainyard-test-temporal-${process.pid}`),
  });

  const name = `trainyard_test_${crypto.randomBytes(4).toString('hex')}`;
  const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const databaseUrl = databaseUrlFor(name);
  const database = openDatabase(databaseUrl);
  await runMigrations(database);
  await database.close();

  project.provide('temporalAddress', server.address);
  project.provide('databaseUrl', databaseUrl);
  project.provide('adminDatabaseUrl', ADMIN_DATABASE_URL);

  return async () => {
    await server.stop();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  };
}
