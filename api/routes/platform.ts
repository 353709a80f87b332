// Accounts and automation: the JSON API v1, the tokens and notifications pages and the administration pages.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { AppDeps } from '../deps.js';
import { accountRoutes } from './account.js';
import { adminRoutes } from './admin.js';
import { adminUserRoutes } from './admin-users.js';
import { notificationPages } from './notification-pages.js';
import { v1Routes } from './v1/index.js';

export const platformRoutes = fp<{ deps: AppDeps }>(async (app: FastifyInstance, { deps }) => {
  await app.register(v1Routes, { deps, prefix: '/api/v1' });
  await app.register(accountRoutes, { deps });
  await app.register(adminRoutes, { deps });
  await app.register(adminUserRoutes, { deps });
  await app.register(notificationPages, { deps });
});
