// The delivery activity: one POST of one event to one channel, each attempt written to the
// delivery log. A webhook gets the event as JSON signed with the channel's secret; a
// Slack-compatible channel gets `{text}`. Any answer but 2xx (or none) is retried by the
// delivery workflow's policy (workflows/notification-delivery.ts).
import crypto from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { notificationChannels, notificationDeliveries } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';
import { SIGNATURE_HEADER, slackText, type NotificationPayload } from '../domain/notifications.js';
import { pgText } from '../domain/pg-text.js';
import { openChannelSecret } from '../lib/keybox.js';
import type { NotificationActivities } from './types.js';

export interface NotifyDeps {
  db: Db;
  /** TRAINYARD_SECRET: webhook secrets are sealed under it. */
  secret: string;
  /** How long one request may take. */
  requestTimeoutMs?: number;
  /** Where links in Slack messages point (the web app's public URL), or null for none. */
  baseUrl?: string | null;
}

/** `sha256=<hex>`: the HMAC-SHA256 of the raw body under the channel's secret. */
export function signBody(secret: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The reason a request got no answer, as a person reads it (fetch hides it in `cause`). */
function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (error instanceof Error && error.name === 'TimeoutError') return 'No answer in time.';
  return cause?.message ?? (error as Error).message;
}

export function createNotificationActivities({
  db,
  secret,
  requestTimeoutMs = 10_000,
  baseUrl = null,
}: NotifyDeps): NotificationActivities {
  function request(kind: string, sealed: string | null, payload: NotificationPayload) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'Trainyard-Notifications',
    };
    if (kind === 'slack') return { headers, body: JSON.stringify({ text: slackText(payload, baseUrl) }) };
    const body = JSON.stringify(payload);
    headers['x-trainyard-event-id'] = payload.id;
    if (sealed) headers[SIGNATURE_HEADER.toLowerCase()] = signBody(openChannelSecret(secret, sealed), body);
    return { headers, body };
  }

  return {
    async deliverNotification({ channelId, payload }) {
      const attempt = Context.current().info.attempt;
      const [channel] = await db.select().from(notificationChannels).where(eq(notificationChannels.id, channelId));
      if (!channel)
        throw ApplicationFailure.nonRetryable(`Notification channel ${channelId} was deleted.`, FAILURE.notFound);
      const { headers, body } = request(channel.kind, channel.secretEncrypted, payload);
      let httpStatus: number | null = null;
      let error: string | null = null;
      try {
        // No redirects: a channel's URL is where the event goes, and nowhere it points on to.
        const response = await fetch(channel.url, {
          method: 'POST',
          headers,
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(requestTimeoutMs),
        });
        httpStatus = response.status;
        // Read (a little of) the answer so the connection is released; it helps explain a refusal.
        const text = (await response.text().catch(() => '')).slice(0, 300);
        if (!response.ok) error = `HTTP ${response.status}${text ? `: ${text}` : ''}`;
      } catch (caught) {
        error = reasonOf(caught);
      }
      await db.insert(notificationDeliveries).values({
        channelId,
        eventKey: payload.id,
        event: payload.event,
        processId: payload.process?.id ?? null,
        attempt,
        httpStatus,
        ok: error === null,
        error: error === null ? null : pgText(error.slice(0, 1000)),
      });
      if (error !== null) throw ApplicationFailure.retryable(error, 'DeliveryFailed');
      return { httpStatus: httpStatus! };
    },
  };
}
