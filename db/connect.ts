// Opens the database a process should use: DATABASE_URL when set, else the embedded
// database — the one another process already serves, or one this process serves.
import type { Config } from '../lib/config.js';
import { checkReachable, openDatabase, type Database } from './client.js';
import { findEmbeddedServer, startEmbeddedServer, type EmbeddedServer } from './embedded.js';

export interface Connected {
  database: Database;
  /** Set when this process opened the embedded database and serves it to the others. */
  served: EmbeddedServer | null;
  close(): Promise<void>;
}

export async function connectDatabase(
  config: Config,
  options: { applicationName?: string; max?: number } = {},
): Promise<Connected> {
  if (config.databaseUrl) {
    const database = openDatabase(config.databaseUrl, options);
    try {
      await checkReachable(database);
    } catch (error) {
      await database.close();
      throw error;
    }
    return { database, served: null, close: () => database.close() };
  }
  let served: EmbeddedServer | null = null;
  let url = await findEmbeddedServer(config.dataDir);
  if (!url) {
    served = await startEmbeddedServer(config.dataDir);
    url = served.url;
  }
  const database = openDatabase(url, { ...options, embedded: true });
  await checkReachable(database);
  return {
    database,
    served,
    async close() {
      await database.close();
      await served?.stop();
    },
  };
}
