// What the web app is built from; tests pass their own real parts.
import type { Client, Connection } from '@temporalio/client';
import type { Db } from '../db/client.js';
import type { Config } from '../lib/config.js';

export interface AppDeps {
  config: Config;
  db: Db;
  temporal: { client: Client; connection: Connection };
  /** Browser-facing Temporal UI base URL, for links from process pages. */
  temporalUiUrl: string | null;
}
