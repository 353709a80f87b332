// Notifications pages: Administration → Notifications (notifications.manage) with each
// channel's delivery log, and Account → My notifications (any signed-in user, for the
// templates they may see). The forms reach the same services as the JSON API.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import {
  createChannel,
  createSubscription,
  deleteChannel,
  deleteSubscription,
  getChannel,
  listChannels,
  listDeliveries,
  listSubscriptions,
} from '../../services/notification-channels.js';
import { createNotifier } from '../../services/notifications.js';
import { listTemplates } from '../../services/templates.js';
import { channelsPage, deliveriesPage, subscriptionsPage } from '../../views/pages/notifications.js';
import { authorize, can, permitted, signedIn, visibleTemplates } from '../access.js';
import type { AppDeps } from '../deps.js';
import { pageContext } from './pages.js';
import { IdParams } from './params.js';

const html = 'text/html; charset=utf-8';
const field = (max: number) => Type.Optional(Type.String({ maxLength: max }));

async function adminPages(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', signedIn);
  app.addHook('preHandler', permitted('notifications.manage'));
  const notifier = createNotifier({
    db: deps.db,
    client: deps.temporal.client,
    retry: { initialIntervalMs: deps.config.notifyRetryInitialMs },
  });

  app.get('/admin/notifications', async (request, reply) =>
    reply.type(html).send(channelsPage(pageContext(request), await listChannels(deps.db, true)).value),
  );

  app.post(
    '/admin/notifications',
    {
      config: { audit: 'notification_channel.create' },
      schema: {
        body: Type.Object({
          name: field(1000),
          kind: field(20),
          url: field(4096),
          secret: field(2048),
          _csrf: field(200),
        }),
      },
    },
    async (request, reply) => {
      const { name, kind, url, secret } = request.body;
      const channel = await createChannel(deps.db, deps.secret, { name, kind, url, ...(secret ? { secret } : {}) });
      request.audit.targetId = channel.id;
      request.audit.detail = { name: channel.name, kind: channel.kind };
      return reply.redirect('/admin/notifications', 303);
    },
  );

  app.post(
    '/admin/notifications/:id/delete',
    { config: { audit: 'notification_channel.delete' }, schema: { params: IdParams } },
    async (request, reply) => {
      await deleteChannel(deps.db, request.params.id);
      return reply.redirect('/admin/notifications', 303);
    },
  );

  app.post(
    '/admin/notifications/:id/test',
    { config: { audit: 'notification_channel.test' }, schema: { params: IdParams } },
    async (request, reply) => {
      await notifier.sendTest(request.params.id);
      return reply.redirect(`/admin/notifications/${request.params.id}/deliveries`, 303);
    },
  );

  app.get(
    '/admin/notifications/:id/deliveries',
    {
      schema: {
        params: IdParams,
        querystring: Type.Object({ cursor: Type.Optional(Type.Integer({ minimum: 1 })), lang: field(5) }),
      },
    },
    async (request, reply) => {
      const channel = await getChannel(deps.db, request.params.id);
      const page = await listDeliveries(deps.db, channel.id, {
        limit: 200,
        ...(request.query.cursor !== undefined ? { before: request.query.cursor } : {}),
      });
      return reply.type(html).send(deliveriesPage(pageContext(request), channel, page).value);
    },
  );
}

async function accountPages(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', signedIn);

  const render = async (request: FastifyRequest) => {
    const principal = request.principal!;
    const [subscriptions, channels, templates] = await Promise.all([
      listSubscriptions(deps.db, principal.id),
      listChannels(deps.db, false),
      listTemplates(deps.db, {
        visibleTemplates: visibleTemplates(principal, 'templates.view'),
        orderBy: 'name',
        limit: 500,
      }),
    ]);
    return subscriptionsPage(pageContext(request), {
      subscriptions,
      channels,
      templates: templates.items.map(({ id, name }) => ({ id, name })),
      canSubscribeAll: can(principal, 'notifications.manage'),
    }).value;
  };

  app.get('/account/notifications', async (request, reply) => reply.type(html).send(await render(request)));

  app.post(
    '/account/notifications',
    {
      config: { audit: 'subscription.create' },
      schema: {
        body: Type.Object({
          channelId: field(12),
          templateId: field(12),
          // One ticked checkbox arrives as a string; form validation (api/validation.ts) makes it a list of one.
          events: Type.Optional(Type.Array(Type.String({ maxLength: 50 }), { maxItems: 10 })),
          _csrf: field(200),
        }),
      },
    },
    async (request, reply) => {
      const number = (value: string | undefined) => (value && /^\d{1,10}$/.test(value) ? Number(value) : value || null);
      const templateId = number(request.body.templateId);
      // The API's rule: a template the reader may see, or every template with notifications.manage.
      if (templateId === null) authorize(request, 'notifications.manage');
      else if (typeof templateId === 'number') authorize(request, 'templates.view', { templateId });
      const subscription = await createSubscription(deps.db, request.principal!.id, {
        channelId: number(request.body.channelId),
        templateId,
        events: request.body.events ?? [],
      });
      request.audit.targetId = subscription.id;
      return reply.redirect('/account/notifications', 303);
    },
  );

  app.post(
    '/account/notifications/:id/delete',
    { config: { audit: 'subscription.delete' }, schema: { params: IdParams } },
    async (request, reply) => {
      const principal = request.principal!;
      await deleteSubscription(deps.db, request.params.id, principal.id);
      return reply.redirect('/account/notifications', 303);
    },
  );
}

export async function notificationPages(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  await app.register(adminPages, { deps });
  await app.register(accountPages, { deps });
}
