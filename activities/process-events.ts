// The one place a process event that operators may subscribe to is recorded: a restart, a
// stall, a classified failure. Today it writes the process log; notifications
// (services/notifications.ts, when it lands) are announced from here too, so every path
// that records such an event — the workflow's recordEvent activity and the watch's stall
// detection — reaches subscribers the same way.
import type { Db } from '../db/client.js';
import { processEvents } from '../db/schema.js';
import { pgText } from '../domain/pg-text.js';
import type { ProcessEvent } from './types.js';

export async function recordProcessEvent(db: Db, event: ProcessEvent): Promise<void> {
  await db.insert(processEvents).values({
    processId: event.processId,
    runId: event.runId,
    level: event.level,
    message: pgText(event.message),
  });
  // Notifications: announce `event.kind` ('restarted' | 'stalled' | 'failed') to subscribers here.
}
