// Notification events and what a channel receives (docs/design.md §6.1). Pure: the
// announcing activities, the delivery workflow and the API all read it.

export const NOTIFICATION_EVENTS = ['completed', 'failed', 'stalled', 'restarted', 'non_finite_loss'] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];

export const CHANNEL_KINDS = ['webhook', 'slack'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

export const SIGNATURE_HEADER = 'X-Trainyard-Signature';

export function isNotificationEvent(value: unknown): value is NotificationEvent {
  return typeof value === 'string' && (NOTIFICATION_EVENTS as readonly string[]).includes(value);
}

/** The JSON a webhook receives; `id` is the event's idempotency key. */
export interface NotificationPayload {
  id: string;
  event: NotificationEvent | 'test';
  at: string;
  process: {
    id: number;
    name: string;
    templateId: number;
    machineId: number;
    status: string;
    attempt: number;
    lastError: string | null;
  } | null;
  run: { number: number; exitCode: number | null } | null;
  /** non_finite_loss only: the series and step where the loss went NaN or ±Infinity. */
  metric?: { name: string; step: number; value: 'NaN' | 'Infinity' | '-Infinity' };
}

/** A non-finite value as JSON can carry it. */
export function nonFiniteText(value: number): 'NaN' | 'Infinity' | '-Infinity' {
  return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
}

/**
 * An event's idempotency key, the same however often it is announced: one per run and kind
 * for the events a run has once (completed, failed, non_finite_loss); the announcer names
 * its own for the rest (a restart, a stall episode).
 */
export function eventKey(
  installation: string,
  event: NotificationEvent,
  ref: { runId: number } | { key: string },
): string {
  return 'runId' in ref ? `${installation}-run-${ref.runId}-${event}` : `${installation}-${event}-${ref.key}`;
}

/** The delivery workflow of one event to one channel: Temporal refuses a second start of the same id. */
export function notificationWorkflowId(key: string, channelId: number): string {
  return `notify-${key}-channel-${channelId}`;
}

const EVENT_WORDS: Record<NotificationPayload['event'], string> = {
  completed: 'completed',
  failed: 'failed',
  stalled: 'stalled (no new metrics)',
  restarted: 'was restarted',
  non_finite_loss: 'reported a NaN/Infinity loss',
  test: 'test notification',
};

/** A Slack message: plain English (a channel is shared), with the process's name, status and link. */
export function slackText(payload: NotificationPayload, baseUrl: string | null): string {
  // Slack reads &, < and > as markup; a process name must stay text.
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  if (!payload.process) return `Trainyard: ${EVENT_WORDS[payload.event]} (${payload.id})`;
  const p = payload.process;
  const name = esc(p.name);
  const title = baseUrl ? `<${baseUrl.replace(/\/$/, '')}/training/processes/${p.id}/monitoring|${name}>` : name;
  const run = payload.run ? `, run ${payload.run.number}` : '';
  const exit =
    payload.run?.exitCode !== null && payload.run?.exitCode !== undefined ? `, exit code ${payload.run.exitCode}` : '';
  const metric = payload.metric
    ? `: ${esc(payload.metric.name)} = ${payload.metric.value} at step ${payload.metric.step}`
    : '';
  const error = p.lastError ? `\n> ${esc(p.lastError.slice(0, 500)).replace(/\n/g, '\n> ')}` : '';
  return `Trainyard: ${title} ${EVENT_WORDS[payload.event]}${metric} (status ${p.status}${run}${exit})${error}`;
}
