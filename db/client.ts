// The client factory: every process reaches the database through the `postgres`
// driver, whether it is PostgreSQL or the embedded PGlite served on a Unix socket.
import type { PgDatabase } from 'drizzle-orm/pg-core';
import { drizzle, type PostgresJsQueryResultHKT } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.js';
import { EXPECTED_ERROR } from '../domain/failures.js';

/** Typed against PgDatabase, so a transaction passes wherever the database does. */
export type Db = PgDatabase<PostgresJsQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  sql: postgres.Sql;
  url: string;
  close(): Promise<void>;
}

/**
 * A libpq-style `?host=/dir` names a Unix socket directory (the embedded database's
 * URL is one). postgres.js 3.4 reads the host only from the URL's authority, and would
 * send an unknown query parameter to the server as a setting, so it is taken out here
 * and given as the socket path instead.
 */
export function driverTarget(url: string): { url: string; path?: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url };
  }
  const host = parsed.searchParams.get('host');
  if (!host?.startsWith('/')) return { url };
  parsed.searchParams.delete('host');
  return { url: parsed.toString(), path: `${host.replace(/\/+$/, '')}/.s.PGSQL.${parsed.port || '5432'}` };
}

export function openDatabase(
  url: string,
  options: {
    max?: number;
    applicationName?: string;
    embedded?: boolean;
    /** Called with every query sent (postgres.js's debug hook): the pages benchmark counts queries per page. */
    onQuery?: (query: string) => void;
  } = {},
): Database {
  const target = driverTarget(url);
  const sql = postgres(target.url, {
    ...(target.path ? { path: target.path } : {}),
    max: options.max ?? 10,
    // Notices (e.g. "relation already exists, skipping") are noise in our logs.
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'trainyard' },
    // The embedded server multiplexes every connection onto one backend, where named
    // prepared statements of different connections (and processes) would collide.
    prepare: !options.embedded,
    ...(options.onQuery ? { debug: (_connection: number, query: string) => options.onQuery!(query) } : {}),
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
    throw new DatabaseUnreachableError(
      `Cannot reach the database at ${safeUrl}: ${(error as Error).message}. Check DATABASE_URL (or unset it to use the embedded database).`,
    );
  }
}

export class DatabaseUnreachableError extends Error {
  override name = EXPECTED_ERROR.databaseUnreachable;
}
