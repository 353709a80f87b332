// Notification channels (admins), subscriptions (each user's own) and the delivery log:
// the reads and writes the JSON API and the pages share. A webhook's secret is sealed
// under TRAINYARD_SECRET on the way in and never shown again.
import { and, desc, eq, lt, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import {
  notificationChannels,
  notificationDeliveries,
  notificationSubscriptions,
  templates,
  users,
} from '../db/schema.js';
import {
  CHANNEL_KINDS,
  isNotificationEvent,
  type ChannelKind,
  type NotificationEvent,
} from '../domain/notifications.js';
import { sealChannelSecret } from '../lib/keybox.js';
import { invalid, notFound, ServiceError, THINGS } from './errors.js';
import { NOTIFICATION_LIMITS } from './inputs.js';
import { integer, isPlainObject, pgCode, rejectUnknown, text } from './validate.js';

export interface ChannelView {
  id: number;
  name: string;
  kind: ChannelKind;
  /** Only for holders of notifications.manage: a Slack URL is itself a credential. */
  url?: string;
  hasSecret?: boolean;
  createdAt?: string;
}

export interface SubscriptionView {
  id: number;
  userId: number;
  userLogin: string;
  channelId: number;
  channelName: string;
  templateId: number | null;
  templateName: string | null;
  events: NotificationEvent[];
  createdAt: string;
}

export interface DeliveryView {
  id: number;
  eventKey: string;
  event: string;
  processId: number | null;
  attempt: number;
  at: string;
  httpStatus: number | null;
  ok: boolean;
  error: string | null;
}

type ChannelRow = typeof notificationChannels.$inferSelect;

function channelView(row: ChannelRow, full: boolean): ChannelView {
  const view: ChannelView = { id: row.id, name: row.name, kind: row.kind as ChannelKind };
  if (!full) return view;
  return { ...view, url: row.url, hasSecret: row.secretEncrypted !== null, createdAt: row.createdAt.toISOString() };
}

/** Every channel; with `full` (notifications.manage) its URL too. */
export async function listChannels(db: Db, full: boolean): Promise<ChannelView[]> {
  const rows = await db.select().from(notificationChannels).orderBy(notificationChannels.name);
  return rows.map((row) => channelView(row, full));
}

export async function getChannel(db: Db, id: number): Promise<ChannelView> {
  const [row] = await db.select().from(notificationChannels).where(eq(notificationChannels.id, id));
  if (!row) throw notFound(THINGS.channel, id);
  return channelView(row, true);
}

function urlOf(value: unknown): string {
  const raw = text('url', value, { min: 1, max: NOTIFICATION_LIMITS.url });
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid('url', {
      en: 'url must be an absolute http or https URL.',
      ru: 'url должен быть полным адресом http или https.',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid('url', { en: 'url must use http or https.', ru: 'url должен начинаться с http или https.' });
  return raw;
}

/** Checks what forms, the API and the CLI send alike; `secret` is the key the webhook secret is sealed under. */
export async function createChannel(db: Db, secret: string, body: unknown): Promise<ChannelView> {
  if (!isPlainObject(body))
    throw invalid('body', { en: 'The body must be a JSON object.', ru: 'Тело запроса должно быть объектом JSON.' });
  rejectUnknown(body, ['name', 'kind', 'url', 'secret']);
  const name = text('name', typeof body.name === 'string' ? body.name.trim() : body.name, {
    min: 1,
    max: NOTIFICATION_LIMITS.name,
  });
  if (!(CHANNEL_KINDS as readonly unknown[]).includes(body.kind))
    throw invalid('kind', {
      en: `kind must be one of ${CHANNEL_KINDS.join(', ')}.`,
      ru: `Вид канала: один из ${CHANNEL_KINDS.join(', ')}.`,
    });
  const kind = body.kind as ChannelKind;
  const url = urlOf(body.url);
  const given = body.secret === undefined || body.secret === null || body.secret === '' ? null : body.secret;
  if (kind === 'slack' && given !== null)
    throw invalid('secret', {
      en: 'A Slack channel takes no secret (its URL is the credential).',
      ru: 'Каналу Slack секрет не нужен (его адрес и есть ключ).',
    });
  if (kind === 'webhook' && given === null)
    throw invalid('secret', {
      en: 'A webhook channel needs a secret to sign its bodies with (X-Trainyard-Signature).',
      ru: 'Каналу webhook нужен секрет для подписи сообщений (X-Trainyard-Signature).',
    });
  const plain = given === null ? null : text('secret', given, NOTIFICATION_LIMITS.secret);
  try {
    const [row] = await db
      .insert(notificationChannels)
      .values({ name, kind, url, secretEncrypted: plain === null ? null : sealChannelSecret(secret, plain) })
      .returning();
    return channelView(row!, true);
  } catch (error) {
    if (pgCode(error) === '23505')
      throw new ServiceError(
        'conflict',
        {
          en: `A notification channel named "${name}" already exists.`,
          ru: `Канал уведомлений «${name}» уже есть.`,
        },
        'name',
      );
    throw error;
  }
}

/** Its subscriptions and delivery log go with it; deliveries under way stop at their next attempt. */
export async function deleteChannel(db: Db, id: number): Promise<void> {
  const gone = await db.delete(notificationChannels).where(eq(notificationChannels.id, id)).returning();
  if (gone.length === 0) throw notFound(THINGS.channel, id);
}

/** The channel's delivery attempts, newest first; `before` (an id) pages back. */
export async function listDeliveries(
  db: Db,
  channelId: number,
  page: { limit?: number; before?: number } = {},
): Promise<{ items: DeliveryView[]; nextCursor: number | null }> {
  await getChannel(db, channelId);
  const limit = page.limit ?? 100;
  const where: SQL[] = [eq(notificationDeliveries.channelId, channelId)];
  if (page.before !== undefined) where.push(lt(notificationDeliveries.id, page.before));
  const rows = await db
    .select()
    .from(notificationDeliveries)
    .where(and(...where))
    .orderBy(desc(notificationDeliveries.id))
    .limit(limit + 1);
  const items = rows.slice(0, limit).map((row) => ({
    id: row.id,
    eventKey: row.eventKey,
    event: row.event,
    processId: row.processId,
    attempt: row.attempt,
    at: row.at.toISOString(),
    httpStatus: row.httpStatus,
    ok: row.ok,
    error: row.error,
  }));
  return { items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null };
}

const subscriptionSelect = {
  id: notificationSubscriptions.id,
  userId: notificationSubscriptions.userId,
  userLogin: users.login,
  channelId: notificationSubscriptions.channelId,
  channelName: notificationChannels.name,
  templateId: notificationSubscriptions.templateId,
  templateName: templates.name,
  events: notificationSubscriptions.events,
  createdAt: notificationSubscriptions.createdAt,
};

function subscriptionQuery(db: Db) {
  return db
    .select(subscriptionSelect)
    .from(notificationSubscriptions)
    .innerJoin(users, eq(users.id, notificationSubscriptions.userId))
    .innerJoin(notificationChannels, eq(notificationChannels.id, notificationSubscriptions.channelId))
    .leftJoin(templates, eq(templates.id, notificationSubscriptions.templateId));
}

type SubscriptionRow = Awaited<ReturnType<ReturnType<typeof subscriptionQuery>['execute']>>[number];

const subscriptionView = (row: SubscriptionRow): SubscriptionView => ({
  ...row,
  events: row.events.filter(isNotificationEvent),
  createdAt: row.createdAt.toISOString(),
});

/** A user's own subscriptions, or everyone's (`userId` null: for notifications.manage). */
export async function listSubscriptions(db: Db, userId: number | null): Promise<SubscriptionView[]> {
  const query = subscriptionQuery(db);
  const rows = await (userId === null ? query : query.where(eq(notificationSubscriptions.userId, userId))).orderBy(
    notificationSubscriptions.id,
  );
  return rows.map(subscriptionView);
}

/** The caller checks the template may be seen (or that the user may subscribe to every template). */
export async function createSubscription(db: Db, userId: number, body: unknown): Promise<SubscriptionView> {
  if (!isPlainObject(body))
    throw invalid('body', { en: 'The body must be a JSON object.', ru: 'Тело запроса должно быть объектом JSON.' });
  rejectUnknown(body, ['channelId', 'templateId', 'events']);
  const channelId = integer('channelId', body.channelId, 1, 2_147_483_647);
  const templateId =
    body.templateId === undefined || body.templateId === null
      ? null
      : integer('templateId', body.templateId, 1, 2_147_483_647);
  if (!Array.isArray(body.events) || body.events.length === 0)
    throw invalid('events', {
      en: 'events must list at least one event.',
      ru: 'Выберите хотя бы одно событие.',
    });
  for (const event of body.events)
    if (!isNotificationEvent(event))
      throw invalid('events', {
        en: `events holds an unknown event: ${String(event)}.`,
        ru: `Неизвестное событие: ${String(event)}.`,
      });
  const events = [...new Set(body.events as NotificationEvent[])];
  const [channel] = await db.select().from(notificationChannels).where(eq(notificationChannels.id, channelId));
  if (!channel)
    throw invalid('channelId', {
      en: `Notification channel ${channelId} does not exist.`,
      ru: `Канал уведомлений ${channelId} не найден.`,
    });
  if (templateId !== null) {
    const [template] = await db.select({ id: templates.id }).from(templates).where(eq(templates.id, templateId));
    if (!template)
      throw invalid('templateId', {
        en: `Template ${templateId} does not exist.`,
        ru: `Шаблон ${templateId} не найден.`,
      });
  }
  const [row] = await db
    .insert(notificationSubscriptions)
    .values({ userId, channelId, templateId, events })
    .returning({ id: notificationSubscriptions.id });
  const [view] = await subscriptionQuery(db).where(eq(notificationSubscriptions.id, row!.id));
  return subscriptionView(view!);
}

/** Deletes one of the user's subscriptions (any, for `userId` null); someone else's reads as missing. */
export async function deleteSubscription(db: Db, id: number, userId: number | null): Promise<void> {
  const where = [eq(notificationSubscriptions.id, id)];
  if (userId !== null) where.push(eq(notificationSubscriptions.userId, userId));
  const gone = await db
    .delete(notificationSubscriptions)
    .where(and(...where))
    .returning();
  if (gone.length === 0) throw notFound(THINGS.subscription, id);
}
