// The installation id: random, made once per database by db/migrations/0012_workflow_ids.sql.
// Task queues and workflow ids carry it, so two installations sharing a Temporal namespace never
// meet (docs/design.md, "Workflow ids and task queues"); a restored backup keeps it, and with it
// its workflows.
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { appState } from '../db/schema.js';

const INSTALLATION_KEY = 'installation_id';

/**
 * Inserted as a process's workflow_id, asks the database to name its workflow
 * `trainyard-<installation>-process-<id>-<key>` (db/migrations/0012_workflow_ids.sql).
 */
export const NEW_WORKFLOW_ID = 'new';

/** This database's installation id (12 hex digits; migration 0012 makes it). */
export async function installationId(db: Db): Promise<string> {
  // Read as text, not through the jsonb column: drizzle parses a jsonb string again, and a hex id
  // such as "12e345678901" would come back as a number (Infinity).
  const [row] = await db
    .select({ id: sql<string>`${appState.value} #>> '{}'` })
    .from(appState)
    .where(eq(appState.key, INSTALLATION_KEY));
  if (!row)
    throw new Error('The database has no installation id: apply the migrations (npm run trainyard -- migrate).');
  return row.id;
}

const known = new WeakMap<Db, Promise<string>>();

/** installationId, read once per database handle (it never changes). */
export function installationOf(db: Db): Promise<string> {
  let id = known.get(db);
  if (!id) {
    id = installationId(db);
    known.set(db, id);
    id.catch(() => known.delete(db));
  }
  return id;
}

const LEGACY_QUEUES_KEY = 'legacy_task_queues';

/**
 * Whether workflows may still run on the queues from before installation ids (set by
 * db/migrations/0012_workflow_ids.sql for a database that had processes): workers poll them too.
 */
export async function legacyQueuesInUse(db: Db): Promise<boolean> {
  const [row] = await db.select({ key: appState.key }).from(appState).where(eq(appState.key, LEGACY_QUEUES_KEY));
  return row !== undefined;
}

/** No workflow is left on the legacy queues (workers/reconcile.ts checked): workers stop polling them. */
export async function retireLegacyQueues(db: Db): Promise<void> {
  await db.delete(appState).where(eq(appState.key, LEGACY_QUEUES_KEY));
}
