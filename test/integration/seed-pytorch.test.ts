// The PyTorch demo template: seeded once a Python with torch and scikit-learn is found on
// this machine, and only then; found with Debian's interpreter here (.ci/run installs it).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { templates } from '../../db/schema.js';
import { findTorchPython } from '../../lib/python.js';
import { DEMO_TEMPLATE_NAME, PROJECT_ROOT, PYTORCH_DEMO_TEMPLATE_NAME, seed } from '../../services/seed.js';
import { databaseUrlFor } from '../support/global-setup.js';

const TRAIN_PY = path.join(PROJECT_ROOT, 'trainers', 'pytorch-digits', 'train.py');

async function freshDatabase(): Promise<{ database: Database; drop(): Promise<void> }> {
  const name = `trainyard_seedpy_${crypto.randomBytes(4).toString('hex')}`;
  const admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const database = openDatabase(databaseUrlFor(name, inject('adminDatabaseUrl')), { max: 2 });
  await runMigrations(database);
  return {
    database,
    async drop() {
      await database.close();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

const templateNamed = async (database: Database, name: string) =>
  (await database.db.select().from(templates).where(eq(templates.name, name)))[0] ?? null;

describe('the PyTorch demo template', () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => {
    fresh = await freshDatabase();
  });
  afterAll(async () => {
    await fresh?.drop();
  });

  it('is seeded only once a Python with torch is found, once, and not again after an admin deletes it', async () => {
    const db = fresh.database;
    let asked = 0;
    const none = async () => ((asked += 1), null);
    const found = async () => ((asked += 1), '/opt/py 3/bin/python3');

    await seed(db.db, { adminPassword: 'pw-for-seed-test', findPython: none });
    expect(await templateNamed(db, DEMO_TEMPLATE_NAME)).not.toBeNull();
    expect(await templateNamed(db, PYTORCH_DEMO_TEMPLATE_NAME)).toBeNull();

    // torch installed later: the next start adds it, with that interpreter, quoted.
    await seed(db.db, { adminPassword: null, findPython: found });
    const demo = await templateNamed(db, PYTORCH_DEMO_TEMPLATE_NAME);
    expect(demo).toMatchObject({ command: `'/opt/py 3/bin/python3' '${TRAIN_PY}'`, totalSteps: 600 });
    expect(asked).toBe(2);

    // Seeded once: later starts do not even look for Python, and a deleted demo stays deleted.
    await seed(db.db, { adminPassword: null, findPython: found });
    await db.db.delete(templates).where(eq(templates.id, demo!.id));
    await seed(db.db, { adminPassword: null, findPython: found });
    expect(await templateNamed(db, PYTORCH_DEMO_TEMPLATE_NAME)).toBeNull();
    expect(asked).toBe(2);
  });

  it("finds Debian's python3 with torch and scikit-learn, and passes over interpreters without them", async () => {
    expect(await findTorchPython()).toBe('/usr/bin/python3');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-nopy-'));
    try {
      // The same interpreter without its site packages: no torch to find.
      const bare = path.join(dir, 'python-without-site');
      fs.writeFileSync(bare, '#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n', { mode: 0o755 });
      expect(await findTorchPython([bare])).toBeNull();
      expect(await findTorchPython([path.join(dir, 'no-such-python'), bare, '/usr/bin/python3'])).toBe(
        '/usr/bin/python3',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the real detection at seed time: the demo runs train.py with /usr/bin/python3', async () => {
    const other = await freshDatabase();
    try {
      await seed(other.database.db, { adminPassword: 'pw-for-seed-test' });
      expect((await templateNamed(other.database, PYTORCH_DEMO_TEMPLATE_NAME))?.command).toBe(
        `'/usr/bin/python3' '${TRAIN_PY}'`,
      );
    } finally {
      await other.drop();
    }
  });
});
