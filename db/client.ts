// The client factory: every process reaches the database through the `postgres`
// driver, whether it is PostgreSQL or the embedded PGlite served over loopback.
import type { PgDatabase } from 'drizzle-orm/pg-core';
import { drizzle, type PostgresJsQueryResultHKT } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.js';

/** Typed against PgDatabase, so a transaction passes wherever the database does. */
export type Db = PgDatabase<PostgresJsQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  sql: postgres.Sql;
  url: string;
  close(): Promise<void>;
}

export function openDatabase(url: string, options: { max?: number; applicationName?: string; embedded?: boolean } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    // Notices (e.g. "relation already exists, skipping") are noise in our logs.
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'trainyard' },
    // The embedded server multiplexes every connection onto one backend, where named
    // prepared statements of different connections (and processes) would collide.
    prepare: !options.embedded,
  });
  return {
    db: drizzle(sql, { schema }),
    sql,
    url,
    close: () => sql.end({ timeout: 5 }),
  };
}

/** One clear line for an unreachable database, instead of a driver stack trace. */
export async function checkReachable(database: Database): Promise<void> {
  try {
    await database.sql`select 1`;
  } catch (error) {
    const safeUrl = database.url.replace(/\/\/([^:@/]+)(:[^@/]*)?@/, '//$1@');
    throw new DatabaseUnreachableError(`Cannot reach the database at ${safeUrl}: ${(error as Error).message}. Check DATABASE_URL (or unset it to use the embedded database).`);
  }
}

export class DatabaseUnreachableError extends Error {
  override name = 'DatabaseUnreachableError';
}
