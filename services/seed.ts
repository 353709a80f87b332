// What exists from the first start: built-in roles, the admin, the `local` machine and
// a demo template that runs the bundled example trainer.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { appState, machines, roles, templates, users } from '../db/schema.js';
import { BUILTIN_ROLES } from '../domain/permissions.js';
import { createUser } from './accounts.js';
import { randomSecret } from './passwords.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const LOCAL_MACHINE_NAME = 'local';
export const DEMO_TEMPLATE_NAME = 'Demo: two spirals MLP';
const FIRST_START_KEY = 'first-start-seed';

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

export function demoTemplateCommand(root = PROJECT_ROOT): string {
  return `${shellQuote(path.join(root, 'node_modules', '.bin', 'tsx'))} ${shellQuote(path.join(root, 'trainers', 'example', 'train.ts'))}`;
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
export async function seed(db: Db, options: { adminPassword: string | null }): Promise<SeedResult> {
  await seedBuiltins(db);
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
        description: 'A small MLP learning the two-spirals task; shows a warm-up + cosine learning rate, a falling loss and a rising test accuracy.',
        command: demoTemplateCommand(),
        params: { learning_rate: 0.01, batch_size: 64, hidden: 32, step_delay_ms: 40 },
        totalSteps: 3000,
        stopGraceSeconds: 30,
      });
    }
    const [admin] = await tx.select().from(users).where(eq(users.login, 'admin'));
    if (admin) return { admin: null };
    const password = options.adminPassword ?? randomSecret(12);
    await createUser(tx, { login: 'admin', password, role: 'admin' });
    return { admin: { login: 'admin', password, generated: options.adminPassword === null } };
  });
}
