// /api/v1/notification-channels and /api/v1/subscriptions (docs/design.md §6.1). Channels
// are managed with notifications.manage; anyone who sees a template may subscribe to its
// events, and subscribing to every template's needs notifications.manage. A channel's URL
// and secret are for managers only: the list shows others names and kinds to pick from.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import {
  createChannel,
  createSubscription,
  deleteChannel,
  deleteSubscription,
  listChannels,
  listDeliveries,
  listSubscriptions,
} from '../../../services/notification-channels.js';
import { notFound, THINGS } from '../../../services/errors.js';
import { createNotifier } from '../../../services/notifications.js';
import { authorize, can, permitted } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import {
  Announced,
  Delivery,
  errors,
  IdParams,
  list,
  NoContent,
  NotificationChannel,
  NotificationChannelCreate,
  Subscription,
  SubscriptionCreate,
} from './schemas.js';

export const DeliveriesQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Page size (default 100).' })),
  cursor: Type.Optional(Type.Integer({ minimum: 1, description: 'nextCursor of the previous page (older attempts).' })),
});

export async function notificationRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const manage = permitted('notifications.manage');
  const notifier = createNotifier({
    db: deps.db,
    client: deps.temporal.client,
    retry: { initialIntervalMs: deps.config.notifyRetryInitialMs },
  });

  app.get(
    '/notification-channels',
    {
      config: { permission: 'templates.view (anywhere); url and hasSecret need notifications.manage' },
      schema: {
        summary: 'Notification channels',
        description: 'Everyone who may subscribe sees names and kinds; holders of notifications.manage the rest.',
        tags: ['notifications'],
        response: { 200: list(NotificationChannel), ...errors() },
      },
      preHandler: async (request) => {
        authorize(request, 'templates.view', { anywhere: true });
      },
    },
    async (request) => ({
      items: await listChannels(deps.db, can(request.principal, 'notifications.manage')),
      nextCursor: null,
    }),
  );

  app.post(
    '/notification-channels',
    {
      config: { permission: 'notifications.manage', audit: 'notification_channel.create' },
      schema: {
        summary: 'Add a notification channel',
        description:
          'A webhook gets each event as JSON with X-Trainyard-Signature: sha256=<hex HMAC-SHA256 of the raw body ' +
          'under secret>; a slack channel gets `{text}`. The secret is stored encrypted and never returned.',
        tags: ['notifications'],
        body: NotificationChannelCreate,
        response: { 201: NotificationChannel, ...errors(409) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      const channel = await createChannel(deps.db, deps.secret, request.body);
      request.audit.targetId = channel.id;
      request.audit.detail = { name: channel.name, kind: channel.kind };
      return reply.code(201).send(channel);
    },
  );

  app.delete(
    '/notification-channels/:id',
    {
      config: { permission: 'notifications.manage', audit: 'notification_channel.delete' },
      schema: {
        summary: 'Delete a notification channel',
        description: 'Its subscriptions and delivery log go with it; deliveries still retrying stop.',
        tags: ['notifications'],
        params: IdParams,
        response: { 204: NoContent, ...errors(404) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      await deleteChannel(deps.db, request.params.id);
      return reply.code(204).send();
    },
  );

  app.get(
    '/notification-channels/:id/deliveries',
    {
      config: { permission: 'notifications.manage' },
      schema: {
        summary: "A channel's delivery log",
        description: 'Every attempt to deliver an event, newest first: its idempotency key, HTTP status or error.',
        tags: ['notifications'],
        params: IdParams,
        querystring: DeliveriesQuery,
        response: { 200: list(Delivery), ...errors(404) },
      },
      preHandler: manage,
    },
    async (request) =>
      listDeliveries(deps.db, request.params.id, {
        ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
        ...(request.query.cursor !== undefined ? { before: request.query.cursor } : {}),
      }),
  );

  app.post(
    '/notification-channels/:id/test',
    {
      config: { permission: 'notifications.manage', audit: 'notification_channel.test' },
      schema: {
        summary: 'Send a test event to a channel',
        description: 'Delivered like any event (retried, in the delivery log), with event "test" and process null.',
        tags: ['notifications'],
        params: IdParams,
        response: { 202: Announced, ...errors(404) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      const { key } = await notifier.sendTest(request.params.id);
      return reply.code(202).send({ key });
    },
  );

  app.get(
    '/subscriptions',
    {
      config: { permission: 'signed in' },
      schema: {
        summary: 'Your notification subscriptions',
        tags: ['notifications'],
        response: { 200: list(Subscription), ...errors() },
      },
    },
    async (request) => ({ items: await listSubscriptions(deps.db, request.principal!.id), nextCursor: null }),
  );

  app.post(
    '/subscriptions',
    {
      config: {
        permission: 'templates.view on the template; notifications.manage for every template',
        audit: 'subscription.create',
      },
      schema: {
        summary: 'Subscribe a channel to events of a template’s processes',
        description: 'templateId null or left out: of every template (needs notifications.manage).',
        tags: ['notifications'],
        body: SubscriptionCreate,
        response: { 201: Subscription, ...errors(404) },
      },
      preHandler: async (request) => {
        const { templateId } = request.body;
        if (templateId === undefined || templateId === null) {
          authorize(request, 'notifications.manage');
          return;
        }
        // As elsewhere in the API: refused without the permission anywhere, a hidden template reads as missing.
        authorize(request, 'templates.view', { anywhere: true });
        if (!can(request.principal, 'templates.view', templateId)) throw notFound(THINGS.template, templateId);
      },
    },
    async (request, reply) => {
      const subscription = await createSubscription(deps.db, request.principal!.id, request.body);
      request.audit.targetId = subscription.id;
      request.audit.detail = { ...request.body };
      return reply.code(201).send(subscription);
    },
  );

  app.delete(
    '/subscriptions/:id',
    {
      config: { permission: 'signed in (your own; any with notifications.manage)', audit: 'subscription.delete' },
      schema: {
        summary: 'Unsubscribe',
        tags: ['notifications'],
        params: IdParams,
        response: { 204: NoContent, ...errors(404) },
      },
    },
    async (request, reply) => {
      const principal = request.principal!;
      await deleteSubscription(
        deps.db,
        request.params.id,
        can(principal, 'notifications.manage') ? null : principal.id,
      );
      return reply.code(204).send();
    },
  );
}
