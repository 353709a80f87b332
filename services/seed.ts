// What exists from the first start: built-in roles, the admin, the `local` machine and
// a demo template that runs the bundled example trainer — and, once this machine has a
// Python with PyTorch and scikit-learn, a second demo that runs the PyTorch digits trainer.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { appState, machines, roles, templates, users } from '../db/schema.js';
import { BUILTIN_ROLES } from '../domain/permissions.js';
import { findTorchPython } from '../lib/python.js';
import { createUser } from './accounts.js';
import { randomSecret } from './passwords.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const LOCAL_MACHINE_NAME = 'local';
export const DEMO_TEMPLATE_NAME = 'Demo: two spirals MLP';
export const PYTORCH_DEMO_TEMPLATE_NAME = 'Цифры: CNN (PyTorch)';
const FIRST_START_KEY = 'first-start-seed';
const PYTORCH_DEMO_KEY = 'pytorch-demo-seed';

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

export function demoTemplateCommand(root = PROJECT_ROOT): string {
  return `${shellQuote(path.join(root, 'node_modules', '.bin', 'tsx'))} ${shellQuote(path.join(root, 'trainers', 'example', 'train.ts'))}`;
}

export function pytorchDemoCommand(python: string, root = PROJECT_ROOT): string {
  return `${shellQuote(python)} ${shellQuote(path.join(root, 'trainers', 'pytorch-digits', 'train.py'))}`;
}

export interface SeedResult {
  /** Set on the first start only: the admin's login and password to print once. */
  admin: { login: string; password: string; generated: boolean } | null;
}

/** What every process may rely on: the built-in roles and the `local` machine. Idempotent. */
export async function seedBuiltins(db: Db): Promise<void> {
  for (const [name, permissions] of Object.entries(BUILTIN_ROLES)) {
    await db
      .insert(roles)
      .values({ name, permissions, builtin: true, description: `Built-in ${name} role` })
      .onConflictDoUpdate({ target: roles.name, set: { permissions, builtin: true } });
  }
  await db
    .insert(machines)
    .values({ name: LOCAL_MACHINE_NAME, kind: 'local', address: 'local', slots: 4 })
    .onConflictDoNothing({ target: machines.name });
}

/** The built-ins, and once per installation the admin (printed by the caller) and the demo template. */
export async function seed(
  db: Db,
  options: { adminPassword: string | null; findPython?: () => Promise<string | null> },
): Promise<SeedResult> {
  await seedBuiltins(db);
  const result = await seedFirstStart(db, options.adminPassword);
  await seedPytorchDemo(db, options.findPython ?? findTorchPython);
  return result;
}

async function seedFirstStart(db: Db, adminPassword: string | null): Promise<SeedResult> {
  // The first start's seed runs once per installation, whatever ran before it (a CLI
  // `user add` included): an app_state row marks it, and an advisory lock keeps two
  // processes starting together from both doing it.
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(7301002)`);
    const [done] = await tx.select().from(appState).where(eq(appState.key, FIRST_START_KEY));
    if (done) return { admin: null };
    await tx.insert(appState).values({ key: FIRST_START_KEY, value: { at: new Date().toISOString() } });
    const [demo] = await tx.select().from(templates).where(eq(templates.name, DEMO_TEMPLATE_NAME));
    if (!demo) {
      await tx.insert(templates).values({
        name: DEMO_TEMPLATE_NAME,
        description:
          'A small MLP learning the two-spirals task; shows a warm-up + cosine learning rate, a falling loss ' +
          'and a rising test accuracy.',
        command: demoTemplateCommand(),
        params: { learning_rate: 0.01, batch_size: 64, hidden: 32, step_delay_ms: 40 },
        totalSteps: 3000,
        stopGraceSeconds: 30,
      });
    }
    const [admin] = await tx.select().from(users).where(eq(users.login, 'admin'));
    if (admin) return { admin: null };
    const password = adminPassword ?? randomSecret(12);
    await createUser(tx, { login: 'admin', password, role: 'admin' });
    return { admin: { login: 'admin', password, generated: adminPassword === null } };
  });
}

/**
 * The PyTorch demo, once per installation, on the first start that finds a Python with torch
 * and scikit-learn for the `local` machine (so a later `apt-get install python3-torch` brings
 * it too). Without one nothing is added and the next start looks again; an admin who deletes
 * the template does not get it back.
 */
async function seedPytorchDemo(db: Db, findPython: () => Promise<string | null>): Promise<void> {
  const done = async (tx: Db) =>
    (await tx.select().from(appState).where(eq(appState.key, PYTORCH_DEMO_KEY))).length > 0;
  if (await done(db)) return;
  // Looked for outside the transaction: a child process must not hold the lock.
  const python = await findPython();
  if (!python) return;
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(7301003)`);
    if (await done(tx)) return;
    await tx.insert(appState).values({ key: PYTORCH_DEMO_KEY, value: { at: new Date().toISOString(), python } });
    await tx
      .insert(templates)
      .values({
        name: PYTORCH_DEMO_TEMPLATE_NAME,
        description:
          'Небольшая свёрточная сеть (PyTorch) учится распознавать рукописные цифры 8×8 из scikit-learn: SGD с ' +
          'расписанием OneCycle, точность на тесте около 0,98. При остановке сохраняет чекпоинт и продолжает с ' +
          'него.',
        command: pytorchDemoCommand(python),
        params: { step_delay_ms: 60, eval_every: 25, checkpoint_every: 100 },
        totalSteps: 600,
        stopGraceSeconds: 30,
      })
      .onConflictDoNothing({ target: templates.name });
  });
}
