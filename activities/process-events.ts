// The one place a process event that operators may subscribe to is recorded: a restart, a
// stall, a classified failure. It writes the process log and announces restarts and stalls
// to subscribers (services/notifications.ts), so every path that records such an event — the
// workflow's recordEvent activity and the watch's stall detection — reaches them the same way.
// (Completed and failed runs are announced by finishRun.)
import type { Db } from '../db/client.js';
import { processEvents } from '../db/schema.js';
import { pgText } from '../domain/pg-text.js';
import type { Notifier } from '../services/notifications.js';
import type { ProcessEvent } from './types.js';

export type EventNotifier = Pick<Notifier, 'announceProcessEvent'>;

/**
 * `occurrence` tells two events of one kind for one run apart (a run may stall, resume and
 * stall again); a retried activity passes the same one, so subscribers hear it once.
 */
export async function recordProcessEvent(
  db: Db,
  event: ProcessEvent,
  notifier?: EventNotifier,
  occurrence?: string,
): Promise<void> {
  await db.insert(processEvents).values({
    processId: event.processId,
    runId: event.runId,
    level: event.level,
    message: pgText(event.message),
  });
  if (notifier && event.runId !== null && (event.kind === 'restarted' || event.kind === 'stalled')) {
    await notifier.announceProcessEvent({
      processId: event.processId,
      runId: event.runId,
      event: event.kind,
      ...(occurrence !== undefined ? { key: `run-${event.runId}-${occurrence}` } : {}),
    });
  }
}
