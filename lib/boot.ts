// Shared start-up steps of `npm start` and the CLI's `web` / `worker` / `migrate`:
// reach the database and Temporal, migrate, seed. Each failure is one line saying what to do.
import type { Config } from './config.js';
import { connectDatabase, type Connected } from '../db/connect.js';
import { runMigrations } from '../db/migrate.js';
import { seed, type SeedResult } from '../services/seed.js';
import { resolveSecret } from './secret.js';
import { isExpectedError } from '../domain/failures.js';
import { surviveClosedSocketWrites } from './postgres-quirks.js';

export interface Booted {
  connected: Connected;
  secret: string;
  seeded: SeedResult;
}

export async function bootDatabase(config: Config, options: { applicationName: string }): Promise<Booted> {
  surviveClosedSocketWrites((line) => console.error(`trainyard: ${line}`));
  const secret = resolveSecret(config);
  const connected = await connectDatabase(config, { applicationName: options.applicationName });
  try {
    await runMigrations(connected.database);
    const seeded = await seed(connected.database.db, { adminPassword: config.adminPassword });
    return { connected, secret, seeded };
  } catch (error) {
    await connected.close();
    throw error;
  }
}

/**
 * Prints the message of an expected start-up failure (see EXPECTED_ERROR) as one line and exits non-zero; anything
 * else with its stack.
 */
export function fail(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  const expected = isExpectedError(error);
  console.error(`trainyard: ${expected ? message.split('\n')[0] : message}`);
  if (!expected && error instanceof Error && error.stack) console.error(error.stack);
  process.exit(1);
}
