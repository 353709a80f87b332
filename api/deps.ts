// What the web app is built from; tests pass their own real parts.
import type { Client, Connection } from '@temporalio/client';
import type postgres from 'postgres';
import type { Db } from '../db/client.js';
import type { Config } from '../lib/config.js';

export interface AppDeps {
  config: Config;
  db: Db;
  /** The driver under `db`, for the few raw queries (metrics downsampling). */
  sql: postgres.Sql;
  /** TRAINYARD_SECRET (resolved): the key SSH private keys are stored under. */
  secret: string;
  temporal: { client: Client; connection: Connection };
  /** Browser-facing Temporal UI base URL, for links from process pages. */
  temporalUiUrl: string | null;
}
