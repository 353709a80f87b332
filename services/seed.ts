// What exists from the first start: built-in roles, the admin, the `local` machine and
// a demo template that runs the bundled example trainer.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { machines, roles, templates } from '../db/schema.js';
import { BUILTIN_ROLES } from '../domain/permissions.js';
import { countUsers, createUser } from './accounts.js';
import { randomSecret } from './passwords.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const LOCAL_MACHINE_NAME = 'local';
export const DEMO_TEMPLATE_NAME = 'Demo: two spirals MLP';

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

export function demoTemplateCommand(root = PROJECT_ROOT): string {
  return `${shellQuote(path.join(root, 'node_modules', '.bin', 'tsx'))} ${shellQuote(path.join(root, 'trainers', 'example', 'train.ts'))}`;
}

export interface SeedResult {
  /** Set on the first start only: the admin's login and password to print once. */
  admin: { login: string; password: string; generated: boolean } | null;
}

export async function seed(db: Db, options: { adminPassword: string | null }): Promise<SeedResult> {
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

  // An advisory lock keeps two processes starting together from both creating the admin.
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(7301002)`);
    if ((await countUsers(tx)) > 0) return { admin: null };
    const password = options.adminPassword ?? randomSecret(12);
    await createUser(tx, { login: 'admin', password, role: 'admin' });
    const [existing] = await tx.select().from(templates).where(eq(templates.name, DEMO_TEMPLATE_NAME));
    if (!existing) {
      await tx.insert(templates).values({
        name: DEMO_TEMPLATE_NAME,
        description: 'A small MLP learning the two-spirals task; shows a warm-up + cosine learning rate, a falling loss and a rising test accuracy.',
        command: demoTemplateCommand(),
        params: { learning_rate: 0.01, batch_size: 64, hidden: 32, step_delay_ms: 40 },
        totalSteps: 3000,
        stopGraceSeconds: 30,
      });
    }
    return { admin: { login: 'admin', password, generated: options.adminPassword === null } };
  });
}
