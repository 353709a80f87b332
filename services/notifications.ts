// Announcing events to the channels whose subscriptions want them. Called from activities
// (activities/control.ts for completed/failed, the metrics path for non_finite_loss, the
// restart policy for stalled/restarted) and from the "send test" action. Each (event,
// channel) becomes one delivery workflow whose id is the event's idempotency key, so an
// event announced again (a retried activity) is delivered once.
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { and, arrayContains, eq, isNull, or, sql } from 'drizzle-orm';
import crypto from 'node:crypto';
import type { DeliveryInput, DeliveryRetry } from '../activities/types.js';
import type { Db } from '../db/client.js';
import { notificationChannels, notificationSubscriptions, runs, users } from '../db/schema.js';
import {
  eventKey,
  notificationWorkflowId,
  type NotificationEvent,
  type NotificationPayload,
} from '../domain/notifications.js';
import { controlTaskQueue } from '../workflows/messages.js';
import { installationId } from './installation.js';
import { notFound, THINGS } from './errors.js';
import { getProcess, type ProcessView } from './processes.js';

/** Retries for up to 24 h, at most 10 min apart (docs/design.md §8: a receiver down for hours gets every event). */
export const DEFAULT_DELIVERY_RETRY: DeliveryRetry = {
  initialIntervalMs: 1000,
  maximumIntervalMs: 10 * 60_000,
  giveUpAfterMs: 24 * 3_600_000,
};

export interface NotifierDeps {
  db: Db;
  client: Client;
  retry?: Partial<DeliveryRetry>;
}

export interface ProcessEventInput {
  processId: number;
  /** The run the event is about; null for a process-level event (then `key` names it). */
  runId: number | null;
  event: NotificationEvent;
  /**
   * What makes this event unique besides its run and kind; required when the same kind can happen more than once
   * for a run (e.g. `stalled` twice) or when there is no run. The same key is the same event.
   */
  key?: string;
  /** The status to report; the process's recorded one when left out (it may not be written yet). */
  status?: string;
  lastError?: string | null;
  exitCode?: number | null;
  /** 1-based within the restart chain (the restart policy knows it). */
  attempt?: number;
  /** non_finite_loss: where the loss went NaN or ±Infinity. */
  metric?: NotificationPayload['metric'];
}

export interface Announced {
  /** The event's idempotency key: the `id` the receivers see. */
  key: string;
  /** Channels a delivery was started for now (a repeated announcement starts none). */
  started: number[];
}

export interface Notifier {
  announceProcessEvent(input: ProcessEventInput): Promise<Announced>;
  /** A test event to one channel, delivered like any other (retried, logged). */
  sendTest(channelId: number): Promise<Announced>;
}

/**
 * Channel ids with a subscription for this event of the process's template, by an active user: asked first, so an
 * event nobody subscribed to (most runs) costs one query.
 */
async function subscribedChannels(db: Db, processId: number, event: NotificationEvent): Promise<number[]> {
  const rows = await db
    .selectDistinct({ channelId: notificationSubscriptions.channelId })
    .from(notificationSubscriptions)
    .innerJoin(users, eq(users.id, notificationSubscriptions.userId))
    .where(
      and(
        eq(users.isActive, true),
        or(
          isNull(notificationSubscriptions.templateId),
          sql`${notificationSubscriptions.templateId} = (select template_id from processes where id = ${processId})`,
        ),
        arrayContains(notificationSubscriptions.events, [event]),
      ),
    );
  return rows.map((row) => row.channelId).sort((a, b) => a - b);
}

async function runOf(db: Db, runId: number): Promise<{ number: number; attempt: number } | null> {
  const [row] = await db.select({ number: runs.number, attempt: runs.attempt }).from(runs).where(eq(runs.id, runId));
  return row ?? null;
}

export function createNotifier({ db, client, retry }: NotifierDeps): Notifier {
  const policy: DeliveryRetry = { ...DEFAULT_DELIVERY_RETRY, ...retry };
  let installation: Promise<string> | null = null;
  const installationOnce = () =>
    (installation ??= installationId(db).catch((error: unknown) => {
      installation = null;
      throw error;
    }));

  /** Starts the delivery unless this event's delivery to the channel was started before (then false). */
  async function deliver(channelId: number, payload: NotificationPayload): Promise<boolean> {
    const installation = await installationOnce();
    const input: DeliveryInput = { channelId, payload, retry: policy, installation };
    try {
      await client.workflow.start('notificationDeliveryWorkflow', {
        taskQueue: controlTaskQueue(installation),
        workflowId: notificationWorkflowId(payload.id, channelId),
        args: [input],
        // Closed or running, a delivery of the same key is the same event: never a second one.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
      return true;
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) return false;
      throw error;
    }
  }

  function processPart(view: ProcessView, input: ProcessEventInput): NotificationPayload['process'] {
    return {
      id: view.id,
      name: view.name,
      templateId: view.templateId,
      machineId: view.machineId,
      status: input.status ?? view.status,
      attempt: input.attempt ?? view.attempt,
      lastError: input.lastError !== undefined ? input.lastError : view.lastError,
    };
  }

  return {
    async announceProcessEvent(input) {
      if (input.key === undefined && input.runId === null) throw new Error('An event without a run needs a key.');
      const id = eventKey(
        await installationOnce(),
        input.event,
        input.key !== undefined ? { key: input.key } : { runId: input.runId! },
      );
      const channels = await subscribedChannels(db, input.processId, input.event);
      if (channels.length === 0) return { key: id, started: [] };
      let view: ProcessView;
      try {
        view = await getProcess({ db }, input.processId);
      } catch {
        // Deleted meanwhile: nothing left to report on.
        return { key: id, started: [] };
      }
      const run = input.runId === null ? null : await runOf(db, input.runId);
      const runNumber = run?.number ?? null;
      const payload: NotificationPayload = {
        id,
        event: input.event,
        at: new Date().toISOString(),
        // The attempt of the run the event is about (a restart bumps the process's before a late retry reads it).
        process: processPart(view, { ...input, attempt: input.attempt ?? run?.attempt }),
        run: runNumber === null ? null : { number: runNumber, exitCode: input.exitCode ?? null },
        ...(input.metric ? { metric: input.metric } : {}),
      };
      const started: number[] = [];
      for (const channelId of channels) if (await deliver(channelId, payload)) started.push(channelId);
      return { key: id, started };
    },

    async sendTest(channelId) {
      const [channel] = await db.select().from(notificationChannels).where(eq(notificationChannels.id, channelId));
      if (!channel) throw notFound(THINGS.channel, channelId);
      const id = `${await installationOnce()}-test-${crypto.randomUUID()}`;
      await deliver(channelId, { id, event: 'test', at: new Date().toISOString(), process: null, run: null });
      return { key: id, started: [channelId] };
    },
  };
}
