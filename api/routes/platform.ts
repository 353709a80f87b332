// Accounts and automation, wired as one plugin: the audit hook (over every route of the
// app), the JSON API v1, the tokens page, the administration pages and /metrics.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { auditPlugin } from '../plugins/audit.js';
import type { AppDeps } from '../deps.js';
import { accountRoutes } from './account.js';
import { adminRoutes } from './admin.js';
import { prometheusPlugin } from '../plugins/prometheus.js';
import { v1Routes } from './v1/index.js';

export const platformRoutes = fp<{ deps: AppDeps }>(async (app: FastifyInstance, { deps }) => {
  await app.register(auditPlugin, { deps });
  await app.register(prometheusPlugin, { deps });
  await app.register(v1Routes, { deps, prefix: '/api/v1' });
  await app.register(accountRoutes, { deps });
  await app.register(adminRoutes, { deps });
});
