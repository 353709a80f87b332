// The permission matrix: every route of the app — pages, htmx fragments and the JSON
// API — for each built-in role, anonymous and a user with no role, allowed or denied as
// the Oso policy says. One table drives every case, and the app's own route list is
// checked against it, so a new route without a row fails here. A template-scoped
// operator acts on its template's processes and not on another's.
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { machines, roles } from '../../db/schema.js';
import { BUILTIN_ROLES, type Permission } from '../../domain/permissions.js';
import { createToken, createUser, grantRole } from '../../services/accounts.js';
import { createMachine } from '../../services/machines.js';
import { createChannel, createSubscription } from '../../services/notification-channels.js';
import { act, createProcess } from '../../services/processes.js';
import { createRole, grant } from '../../services/roles.js';
import { createSweep } from '../../services/sweeps.js';
import { createTemplate } from '../../services/templates.js';
import { invitePath } from '../../services/invites.js';
import { createUserAccount } from '../../services/users.js';
import { makeActor, startApp, TEST_SECRET, type Actor, type TestApp } from '../support/app.js';
import { startStack, uid, waitForStatus, type Stack } from '../support/stack.js';

type Role = 'anonymous' | 'none' | 'viewer' | 'operator' | 'admin';
const ROLES: Role[] = ['anonymous', 'none', 'viewer', 'operator', 'admin'];

/** How a route is reached: the API with a token; pages as a browser; fragments as htmx. */
type Kind = 'api' | 'page' | 'fragment';

interface Fixtures {
  templateId: number;
  localId: number;
  /** A process that has run once (so it has a run, metrics and logs). */
  ranId: number;
  /** A sweep of the template, of one process. */
  sweepId: number;
  freshProcess(): Promise<number>;
  disabledProcess(): Promise<number>;
  freshTemplate(): Promise<number>;
  freshMachine(): Promise<number>;
  freshRole(): Promise<number>;
  freshGrant(): Promise<number>;
  freshToken(actor: Actor): Promise<number>;
  /** A viewer nobody else uses, to change, deactivate or reset. */
  freshUser(): Promise<number>;
  /** A viewer created with an invite not accepted yet: their id and the link's path. */
  freshInvitee(): Promise<{ id: number; path: string }>;
  /** A Slack channel to a closed loopback port. */
  channelId: number;
  freshChannel(): Promise<number>;
  /** A subscription of the actor's own. */
  freshSubscription(actor: Actor | null): Promise<number>;
}

interface Row {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** The route pattern exactly as the app registers it. */
  route: string;
  kind: Kind;
  /** Who may: a permission (the roles holding it), any logged-in user, or anyone. */
  needs: Permission | 'login' | 'public';
  /** Statuses that mean "allowed and done" (default 200). */
  ok?: number[];
  /** A caller without templates.view gets 404 instead of 403: the template is hidden. */
  hides?: boolean;
  /** What "hidden" answers when not 404 (a polling fragment tells htmx to stop with 286). */
  hiddenStatus?: number;
  request(fx: Fixtures, actor: Actor | null): Promise<Omit<InjectOptions, 'method'>> | Omit<InjectOptions, 'method'>;
  /** Server-sent events: read the status, then drop the stream. */
  stream?: boolean;
}

const PEM = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAmatrix\n-----END OPENSSH PRIVATE KEY-----\n';
const form = (fields: Record<string, string>) => ({
  payload: new URLSearchParams(fields).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
});
const json = (payload: object) => ({ payload });

const TABLE: Row[] = [
  // JSON API v1: templates
  {
    method: 'GET',
    route: '/api/v1/templates',
    kind: 'api',
    needs: 'templates.view',
    request: () => ({ url: '/api/v1/templates' }),
  },
  {
    method: 'POST',
    route: '/api/v1/templates',
    kind: 'api',
    needs: 'templates.manage',
    ok: [201],
    request: () => ({ url: '/api/v1/templates', ...json({ name: `m ${uid()}`, command: 'true' }) }),
  },
  {
    method: 'GET',
    route: '/api/v1/templates/:id',
    kind: 'api',
    needs: 'templates.view',
    request: (fx) => ({ url: `/api/v1/templates/${fx.templateId}` }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/templates/:id',
    kind: 'api',
    needs: 'templates.manage',
    request: (fx) => ({ url: `/api/v1/templates/${fx.templateId}`, ...json({ description: `d ${uid()}` }) }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/templates/:id',
    kind: 'api',
    needs: 'templates.manage',
    ok: [204],
    request: async (fx) => ({ url: `/api/v1/templates/${await fx.freshTemplate()}` }),
  },
  {
    method: 'GET',
    route: '/api/v1/templates/:id/processes',
    kind: 'api',
    needs: 'processes.view',
    request: (fx) => ({ url: `/api/v1/templates/${fx.templateId}/processes` }),
  },
  {
    method: 'POST',
    route: '/api/v1/templates/:id/sweeps',
    kind: 'api',
    needs: 'processes.create',
    ok: [201],
    request: (fx) => ({
      url: `/api/v1/templates/${fx.templateId}/sweeps`,
      ...json({ machineIds: [fx.localId], grid: { lr: [0.3] } }),
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/sweeps/:id',
    kind: 'api',
    needs: 'processes.view',
    request: (fx) => ({ url: `/api/v1/sweeps/${fx.sweepId}?metric=loss` }),
  },
  // JSON API v1: machines
  {
    method: 'GET',
    route: '/api/v1/machines',
    kind: 'api',
    needs: 'machines.view',
    request: () => ({ url: '/api/v1/machines' }),
  },
  {
    method: 'POST',
    route: '/api/v1/machines',
    kind: 'api',
    needs: 'machines.manage',
    ok: [201],
    request: () => ({
      url: '/api/v1/machines',
      ...json({ name: `m-${uid()}`, address: '10.1.2.3', sshUser: 'u', privateKey: PEM }),
    }),
  },
  // Allowed reaches the server: a closed port answers 400 naming the address.
  {
    method: 'POST',
    route: '/api/v1/machines/host-key',
    kind: 'api',
    needs: 'machines.manage',
    ok: [400],
    request: () => ({ url: '/api/v1/machines/host-key', ...json({ address: '127.0.0.1:1' }) }),
  },
  {
    method: 'GET',
    route: '/api/v1/machines/:id',
    kind: 'api',
    needs: 'machines.view',
    request: (fx) => ({ url: `/api/v1/machines/${fx.localId}` }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/machines/:id',
    kind: 'api',
    needs: 'machines.manage',
    request: (fx) => ({ url: `/api/v1/machines/${fx.localId}`, ...json({ lostTimeoutSeconds: 600 }) }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/machines/:id',
    kind: 'api',
    needs: 'machines.manage',
    ok: [204],
    request: async (fx) => ({ url: `/api/v1/machines/${await fx.freshMachine()}` }),
  },
  {
    method: 'POST',
    route: '/api/v1/machines/:id/probe',
    kind: 'api',
    needs: 'machines.manage',
    request: (fx) => ({ url: `/api/v1/machines/${fx.localId}/probe` }),
  },
  // JSON API v1: users
  {
    method: 'GET',
    route: '/api/v1/users',
    kind: 'api',
    needs: 'users.manage',
    request: () => ({ url: '/api/v1/users' }),
  },
  {
    method: 'POST',
    route: '/api/v1/users',
    kind: 'api',
    needs: 'users.manage',
    ok: [201],
    request: () => ({ url: '/api/v1/users', ...json({ login: `mx-${uid()}`, roles: [{ role: 'viewer' }] }) }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/users/:id',
    kind: 'api',
    needs: 'users.manage',
    request: async (fx) => ({ url: `/api/v1/users/${await fx.freshUser()}`, ...json({ name: 'x', active: false }) }),
  },
  {
    method: 'POST',
    route: '/api/v1/users/:id/password',
    kind: 'api',
    needs: 'users.manage',
    request: async (fx) => ({ url: `/api/v1/users/${await fx.freshUser()}/password` }),
  },
  {
    method: 'POST',
    route: '/api/v1/users/:id/invite',
    kind: 'api',
    needs: 'users.manage',
    request: async (fx) => ({ url: `/api/v1/users/${(await fx.freshInvitee()).id}/invite` }),
  },
  // JSON API v1: processes
  {
    method: 'GET',
    route: '/api/v1/processes',
    kind: 'api',
    needs: 'processes.view',
    request: () => ({ url: '/api/v1/processes?limit=5' }),
  },
  {
    method: 'POST',
    route: '/api/v1/processes',
    kind: 'api',
    needs: 'processes.create',
    ok: [201],
    request: (fx) => ({ url: '/api/v1/processes', ...json({ templateId: fx.templateId, machineId: fx.localId }) }),
  },
  {
    method: 'GET',
    route: '/api/v1/processes/:id',
    kind: 'api',
    needs: 'processes.view',
    request: (fx) => ({ url: `/api/v1/processes/${fx.ranId}` }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/processes/:id',
    kind: 'api',
    needs: 'processes.manage',
    request: (fx) => ({ url: `/api/v1/processes/${fx.ranId}`, ...json({ name: 'renamed by the matrix' }) }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/processes/:id',
    kind: 'api',
    needs: 'processes.delete',
    ok: [202],
    request: async (fx) => ({ url: `/api/v1/processes/${await fx.freshProcess()}` }),
  },
  {
    method: 'POST',
    route: '/api/v1/processes/:id/start',
    kind: 'api',
    needs: 'processes.manage',
    ok: [202],
    request: async (fx) => ({ url: `/api/v1/processes/${await fx.freshProcess()}/start` }),
  },
  // A fresh process cannot stop: allowed means the status table answers (409), not the policy.
  {
    method: 'POST',
    route: '/api/v1/processes/:id/stop',
    kind: 'api',
    needs: 'processes.manage',
    ok: [409],
    request: async (fx) => ({ url: `/api/v1/processes/${await fx.freshProcess()}/stop` }),
  },
  {
    method: 'POST',
    route: '/api/v1/processes/:id/disable',
    kind: 'api',
    needs: 'processes.manage',
    ok: [202],
    request: async (fx) => ({ url: `/api/v1/processes/${await fx.freshProcess()}/disable` }),
  },
  {
    method: 'POST',
    route: '/api/v1/processes/:id/enable',
    kind: 'api',
    needs: 'processes.manage',
    ok: [202],
    request: async (fx) => ({ url: `/api/v1/processes/${await fx.disabledProcess()}/enable` }),
  },
  {
    method: 'GET',
    route: '/api/v1/processes/:id/metrics',
    kind: 'api',
    needs: 'processes.view',
    request: (fx) => ({ url: `/api/v1/processes/${fx.ranId}/metrics?maxPoints=100` }),
  },
  {
    method: 'GET',
    route: '/api/v1/processes/:id/metrics/export',
    kind: 'api',
    needs: 'processes.view',
    request: (fx) => ({ url: `/api/v1/processes/${fx.ranId}/metrics/export?format=jsonl` }),
  },
  {
    method: 'GET',
    route: '/api/v1/processes/:id/runs',
    kind: 'api',
    needs: 'processes.view',
    request: (fx) => ({ url: `/api/v1/processes/${fx.ranId}/runs` }),
  },
  {
    method: 'GET',
    route: '/api/v1/processes/:id/logs',
    kind: 'api',
    needs: 'processes.view',
    request: (fx) => ({ url: `/api/v1/processes/${fx.ranId}/logs` }),
  },
  {
    method: 'GET',
    route: '/api/v1/openapi.json',
    kind: 'api',
    needs: 'public',
    request: () => ({ url: '/api/v1/openapi.json' }),
  },
  // Prometheus
  { method: 'GET', route: '/metrics', kind: 'api', needs: 'processes.view', request: () => ({ url: '/metrics' }) },
  // Operator pages and fragments
  {
    method: 'GET',
    route: '/training/templates',
    kind: 'page',
    needs: 'templates.view',
    request: () => ({ url: '/training/templates' }),
  },
  {
    method: 'GET',
    route: '/training/templates/:templateId/processes',
    kind: 'page',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/templates/${fx.templateId}/processes` }),
  },
  {
    method: 'GET',
    route: '/training/templates/:templateId/processes/new',
    kind: 'fragment',
    needs: 'processes.create',
    hides: true,
    request: (fx) => ({ url: `/training/templates/${fx.templateId}/processes/new` }),
  },
  {
    method: 'POST',
    route: '/training/templates/:templateId/processes',
    kind: 'fragment',
    needs: 'processes.create',
    hides: true,
    request: (fx) => ({
      url: `/training/templates/${fx.templateId}/processes`,
      ...form({ machineId: String(fx.localId), params: '' }),
    }),
  },
  {
    method: 'GET',
    route: '/training/templates/:templateId/processes/events',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    stream: true,
    request: (fx) => ({ url: `/training/templates/${fx.templateId}/processes/events` }),
  },
  {
    method: 'GET',
    route: '/training/processes/:id/row',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/processes/${fx.ranId}/row` }),
  },
  {
    method: 'GET',
    route: '/training/processes/:id/menu',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/processes/${fx.ranId}/menu` }),
  },
  {
    method: 'GET',
    route: '/training/processes/:id/details',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/processes/${fx.ranId}/details` }),
  },
  {
    method: 'GET',
    route: '/training/processes/:id/facts',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    hiddenStatus: 286,
    request: (fx) => ({ url: `/training/processes/${fx.ranId}/facts` }),
  },
  {
    method: 'GET',
    route: '/training/processes/:id/logs',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/processes/${fx.ranId}/logs` }),
  },
  {
    method: 'GET',
    route: '/training/processes/:id/monitoring',
    kind: 'page',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/processes/${fx.ranId}/monitoring` }),
  },
  {
    method: 'GET',
    route: '/training/sweeps/:id',
    kind: 'page',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/sweeps/${fx.sweepId}?metric=loss` }),
  },
  {
    method: 'GET',
    route: '/training/sweeps/:id/curves',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/sweeps/${fx.sweepId}/curves?metric=loss` }),
  },
  {
    method: 'GET',
    route: '/training/sweeps/:id/rows',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/sweeps/${fx.sweepId}/rows?metric=loss` }),
  },
  {
    method: 'GET',
    route: '/training/processes/:id/metrics',
    kind: 'fragment',
    needs: 'processes.view',
    hides: true,
    request: (fx) => ({ url: `/training/processes/${fx.ranId}/metrics` }),
  },
  {
    method: 'POST',
    route: '/training/processes/:id/name',
    kind: 'page',
    needs: 'processes.manage',
    hides: true,
    ok: [303],
    request: (fx) => ({
      url: `/training/processes/${fx.ranId}/name`,
      ...form({ name: 'renamed on the page' }),
    }),
  },
  {
    method: 'POST',
    route: '/training/processes/:id/:action',
    kind: 'fragment',
    needs: 'processes.manage',
    hides: true,
    request: async (fx) => ({ url: `/training/processes/${await fx.freshProcess()}/disable` }),
  },
  {
    method: 'DELETE',
    route: '/training/processes/:id',
    kind: 'fragment',
    needs: 'processes.delete',
    hides: true,
    request: async (fx) => ({ url: `/training/processes/${await fx.freshProcess()}` }),
  },
  {
    method: 'GET',
    route: '/training/templates/new',
    kind: 'page',
    needs: 'templates.manage',
    request: () => ({ url: '/training/templates/new' }),
  },
  {
    method: 'POST',
    route: '/training/templates',
    kind: 'page',
    needs: 'templates.manage',
    ok: [303],
    request: () => ({
      url: '/training/templates',
      ...form({ name: `page ${uid()}`, command: 'true', stopGraceSeconds: '30' }),
    }),
  },
  {
    method: 'GET',
    route: '/training/templates/:id/edit',
    kind: 'page',
    needs: 'templates.manage',
    request: (fx) => ({ url: `/training/templates/${fx.templateId}/edit` }),
  },
  {
    method: 'POST',
    route: '/training/templates/:id',
    kind: 'page',
    needs: 'templates.manage',
    ok: [303],
    request: async (fx) => ({
      url: `/training/templates/${await fx.freshTemplate()}`,
      ...form({ name: `page ${uid()}`, command: 'true' }),
    }),
  },
  {
    method: 'DELETE',
    route: '/training/templates/:id',
    kind: 'page',
    needs: 'templates.manage',
    ok: [303],
    request: async (fx) => ({ url: `/training/templates/${await fx.freshTemplate()}` }),
  },
  // Target machines pages
  { method: 'GET', route: '/machines', kind: 'page', needs: 'machines.view', request: () => ({ url: '/machines' }) },
  {
    method: 'GET',
    route: '/machines/new',
    kind: 'page',
    needs: 'machines.manage',
    request: () => ({ url: '/machines/new' }),
  },
  {
    method: 'POST',
    route: '/machines',
    kind: 'page',
    needs: 'machines.manage',
    ok: [303],
    request: () => ({
      url: '/machines',
      ...form({
        name: `page-${uid()}`,
        address: '10.3.3.3',
        sshUser: 'u',
        privateKey: PEM,
        slots: '1',
        lostTimeoutSeconds: '600',
        gpus: '',
      }),
    }),
  },
  {
    method: 'GET',
    route: '/machines/:id/edit',
    kind: 'page',
    needs: 'machines.manage',
    request: (fx) => ({ url: `/machines/${fx.localId}/edit` }),
  },
  {
    method: 'POST',
    route: '/machines/:id',
    kind: 'page',
    needs: 'machines.manage',
    ok: [303],
    request: async (fx) => ({
      url: `/machines/${await fx.freshMachine()}`,
      ...form({
        name: `page-${uid()}`,
        address: '10.3.3.4',
        sshUser: 'u',
        slots: '2',
        lostTimeoutSeconds: '600',
        gpus: '',
        enabled: 'on',
      }),
    }),
  },
  {
    method: 'DELETE',
    route: '/machines/:id',
    kind: 'page',
    needs: 'machines.manage',
    ok: [303],
    request: async (fx) => ({ url: `/machines/${await fx.freshMachine()}` }),
  },
  {
    method: 'POST',
    route: '/machines/:id/probe',
    kind: 'fragment',
    needs: 'machines.manage',
    request: (fx) => ({ url: `/machines/${fx.localId}/probe` }),
  },
  // Allowed reaches the server: a closed port answers the form's 422 under the field.
  {
    method: 'POST',
    route: '/machines/host-key',
    kind: 'fragment',
    needs: 'machines.manage',
    ok: [422],
    request: () => ({ url: '/machines/host-key', ...form({ address: '127.0.0.1:1' }) }),
  },
  // Account and administration pages
  {
    method: 'GET',
    route: '/account/tokens',
    kind: 'page',
    needs: 'login',
    request: () => ({ url: '/account/tokens' }),
  },
  {
    method: 'POST',
    route: '/account/tokens',
    kind: 'page',
    needs: 'login',
    request: () => ({ url: '/account/tokens', ...form({ name: `t ${uid()}`, expiresDays: '' }) }),
  },
  {
    method: 'POST',
    route: '/account/tokens/:id/revoke',
    kind: 'page',
    needs: 'login',
    ok: [303],
    request: async (fx, actor) => ({
      url: `/account/tokens/${actor ? await fx.freshToken(actor) : 1}/revoke`,
      ...form({}),
    }),
  },
  {
    method: 'GET',
    route: '/admin/roles',
    kind: 'page',
    needs: 'users.manage',
    request: () => ({ url: '/admin/roles' }),
  },
  {
    method: 'POST',
    route: '/admin/roles',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: () => ({
      url: '/admin/roles',
      ...form({ name: `r-${uid()}`, description: '', permissions: 'processes.view' }),
    }),
  },
  {
    method: 'POST',
    route: '/admin/roles/:id',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: async (fx) => ({
      url: `/admin/roles/${await fx.freshRole()}`,
      ...form({ name: `r-${uid()}`, description: 'x' }),
    }),
  },
  {
    method: 'POST',
    route: '/admin/roles/:id/delete',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: async (fx) => ({ url: `/admin/roles/${await fx.freshRole()}/delete`, ...form({}) }),
  },
  {
    method: 'POST',
    route: '/admin/grants',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: async (fx) => ({
      url: '/admin/grants',
      ...form({ login: 'admin', roleId: String(await fx.freshRole()), templateId: String(fx.templateId) }),
    }),
  },
  {
    method: 'POST',
    route: '/admin/grants/:id/revoke',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: async (fx) => ({ url: `/admin/grants/${await fx.freshGrant()}/revoke`, ...form({}) }),
  },
  {
    method: 'GET',
    route: '/admin/users',
    kind: 'page',
    needs: 'users.manage',
    request: () => ({ url: '/admin/users' }),
  },
  {
    method: 'POST',
    route: '/admin/users',
    kind: 'page',
    needs: 'users.manage',
    request: () => ({ url: '/admin/users', ...form({ login: `mx-${uid()}`, name: 'x', roleId: '', templateId: '' }) }),
  },
  {
    method: 'POST',
    route: '/admin/users/:id/active',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: async (fx) => ({ url: `/admin/users/${await fx.freshUser()}/active`, ...form({ active: 'false' }) }),
  },
  {
    method: 'POST',
    route: '/admin/users/:id/password',
    kind: 'page',
    needs: 'users.manage',
    request: async (fx) => ({ url: `/admin/users/${await fx.freshUser()}/password`, ...form({}) }),
  },
  {
    method: 'POST',
    route: '/admin/users/:id/invite',
    kind: 'page',
    needs: 'users.manage',
    request: async (fx) => ({ url: `/admin/users/${(await fx.freshInvitee()).id}/invite`, ...form({}) }),
  },
  {
    method: 'POST',
    route: '/admin/users/:id/grants',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: async (fx) => ({
      url: `/admin/users/${await fx.freshUser()}/grants`,
      ...form({ roleId: String(await fx.freshRole()), templateId: String(fx.templateId) }),
    }),
  },
  {
    method: 'POST',
    route: '/admin/users/grants/:id/revoke',
    kind: 'page',
    needs: 'users.manage',
    ok: [303],
    request: async (fx) => ({ url: `/admin/users/grants/${await fx.freshGrant()}/revoke`, ...form({}) }),
  },
  {
    method: 'GET',
    route: '/admin/audit',
    kind: 'page',
    needs: 'users.manage',
    request: () => ({ url: '/admin/audit?action=process.' }),
  },
  // Notifications: channels (notifications.manage), each user's own subscriptions
  {
    method: 'GET',
    route: '/api/v1/notification-channels',
    kind: 'api',
    needs: 'templates.view',
    request: () => ({ url: '/api/v1/notification-channels' }),
  },
  {
    method: 'POST',
    route: '/api/v1/notification-channels',
    kind: 'api',
    needs: 'notifications.manage',
    ok: [201],
    request: () => ({
      url: '/api/v1/notification-channels',
      ...json({ name: `mx ${uid()}`, kind: 'slack', url: 'http://127.0.0.1:9/mx' }),
    }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/notification-channels/:id',
    kind: 'api',
    needs: 'notifications.manage',
    ok: [204],
    request: async (fx) => ({ url: `/api/v1/notification-channels/${await fx.freshChannel()}` }),
  },
  {
    method: 'GET',
    route: '/api/v1/notification-channels/:id/deliveries',
    kind: 'api',
    needs: 'notifications.manage',
    request: (fx) => ({ url: `/api/v1/notification-channels/${fx.channelId}/deliveries` }),
  },
  {
    method: 'POST',
    route: '/api/v1/notification-channels/:id/test',
    kind: 'api',
    needs: 'notifications.manage',
    ok: [202],
    request: async (fx) => ({ url: `/api/v1/notification-channels/${await fx.freshChannel()}/test` }),
  },
  {
    method: 'GET',
    route: '/api/v1/subscriptions',
    kind: 'api',
    needs: 'login',
    request: () => ({ url: '/api/v1/subscriptions' }),
  },
  {
    method: 'POST',
    route: '/api/v1/subscriptions',
    kind: 'api',
    needs: 'templates.view',
    ok: [201],
    request: (fx) => ({
      url: '/api/v1/subscriptions',
      ...json({ channelId: fx.channelId, templateId: fx.templateId, events: ['failed'] }),
    }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/subscriptions/:id',
    kind: 'api',
    needs: 'login',
    ok: [204],
    request: async (fx, actor) => ({ url: `/api/v1/subscriptions/${await fx.freshSubscription(actor)}` }),
  },
  {
    method: 'GET',
    route: '/admin/notifications',
    kind: 'page',
    needs: 'notifications.manage',
    request: () => ({ url: '/admin/notifications' }),
  },
  {
    method: 'POST',
    route: '/admin/notifications',
    kind: 'page',
    needs: 'notifications.manage',
    ok: [303],
    request: () => ({
      url: '/admin/notifications',
      ...form({ name: `mx ${uid()}`, kind: 'slack', url: 'http://127.0.0.1:9/mx', secret: '' }),
    }),
  },
  {
    method: 'POST',
    route: '/admin/notifications/:id/delete',
    kind: 'page',
    needs: 'notifications.manage',
    ok: [303],
    request: async (fx) => ({ url: `/admin/notifications/${await fx.freshChannel()}/delete`, ...form({}) }),
  },
  {
    method: 'POST',
    route: '/admin/notifications/:id/test',
    kind: 'page',
    needs: 'notifications.manage',
    ok: [303],
    request: async (fx) => ({ url: `/admin/notifications/${await fx.freshChannel()}/test`, ...form({}) }),
  },
  {
    method: 'GET',
    route: '/admin/notifications/:id/deliveries',
    kind: 'page',
    needs: 'notifications.manage',
    request: (fx) => ({ url: `/admin/notifications/${fx.channelId}/deliveries` }),
  },
  {
    method: 'GET',
    route: '/account/notifications',
    kind: 'page',
    needs: 'login',
    request: () => ({ url: '/account/notifications' }),
  },
  {
    method: 'POST',
    route: '/account/notifications',
    kind: 'page',
    needs: 'templates.view',
    ok: [303],
    request: (fx) => ({
      url: '/account/notifications',
      ...form({ channelId: String(fx.channelId), templateId: String(fx.templateId), events: 'completed' }),
    }),
  },
  {
    method: 'POST',
    route: '/account/notifications/:id/delete',
    kind: 'page',
    needs: 'login',
    ok: [303],
    request: async (fx, actor) => ({
      url: `/account/notifications/${await fx.freshSubscription(actor)}/delete`,
      ...form({}),
    }),
  },
  // Public: the way in, and redirects that check nothing themselves
  { method: 'GET', route: '/', kind: 'page', needs: 'public', ok: [303], request: () => ({ url: '/' }) },
  {
    method: 'GET',
    route: '/training',
    kind: 'page',
    needs: 'public',
    ok: [303],
    request: () => ({ url: '/training' }),
  },
  { method: 'GET', route: '/admin', kind: 'page', needs: 'public', ok: [303], request: () => ({ url: '/admin' }) },
  { method: 'GET', route: '/login', kind: 'page', needs: 'public', ok: [200, 303], request: () => ({ url: '/login' }) },
  {
    method: 'GET',
    route: '/invite/:token',
    kind: 'page',
    needs: 'public',
    request: async (fx) => ({ url: (await fx.freshInvitee()).path }),
  },
  // Single sign-on: public by nature, and 404 here where it is not configured (oidc.test.ts signs in with it).
  {
    method: 'GET',
    route: '/auth/oidc/login',
    kind: 'page',
    needs: 'public',
    ok: [404],
    request: () => ({ url: '/auth/oidc/login' }),
  },
  {
    method: 'GET',
    route: '/auth/oidc/callback',
    kind: 'page',
    needs: 'public',
    ok: [404],
    request: () => ({ url: '/auth/oidc/callback?code=x&state=y' }),
  },
  { method: 'GET', route: '/healthz', kind: 'api', needs: 'public', request: () => ({ url: '/healthz' }) },
  { method: 'GET', route: '/static/:name', kind: 'page', needs: 'public', request: () => ({ url: '/static/app.css' }) },
];

/** Routes without a matrix row, each with the reason. */
const NOT_IN_MATRIX: Record<string, string> = {
  'POST /login': 'public by nature; logging in (success, failure, fixation, rate limit) is covered by sessions.test.ts',
  'POST /logout': 'ends whatever session is sent, for anyone; covered by sessions.test.ts',
  // Accepting starts a session in place of the caller's, which would end the matrix actors' own.
  'POST /invite/:param': 'public by nature (the token is the credential); accepting is covered by invites.test.ts',
};

function holds(role: Role, permission: Permission): boolean {
  return role !== 'anonymous' && role !== 'none' && BUILTIN_ROLES[role].includes(permission);
}

function mayUse(role: Role, row: Row): boolean {
  if (row.needs === 'public') return true;
  if (row.needs === 'login') return role !== 'anonymous';
  return holds(role, row.needs);
}

/** The app's routes as "METHOD /pattern", from Fastify's own route tree (HEAD left out). */
function appRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)(?:[├└]── )?(\S.*?)(?: \(([^)]+)\))?$/.exec(line.replace(/\s+$/, ''));
    if (!match || !match[2]) continue;
    const depth = Math.floor(match[1]!.length / 4);
    const parent = depth === 0 ? '' : (stack[depth - 1] ?? '');
    const segment = match[2];
    const full =
      parent === ''
        ? segment
        : parent.endsWith('/') || segment.startsWith('/')
          ? parent + segment
          : `${parent}/${segment}`;
    stack[depth] = full;
    stack.length = depth + 1;
    for (const method of (match[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter(Boolean)) {
      if (method !== 'HEAD') out.push(`${method} ${full}`);
    }
  }
  return out;
}

let stack: Stack;
let t: TestApp;
let fx: Fixtures;
const actors = {} as Record<Exclude<Role, 'anonymous'>, Actor>;

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  const db = stack.database.db;
  const template = await createTemplate(db, { name: `matrix ${uid()}`, command: 'true', params: { lr: 0.1 } });
  const [local] = await db.select().from(machines).where(eq(machines.name, 'local'));
  const deps = stack.deps;
  const freshProcess = async () => (await createProcess(deps, { templateId: template.id, machineId: local!.id })).id;
  const ranId = await freshProcess();
  await act(deps, ranId, 'start');
  await waitForStatus(stack, ranId, 'completed');
  const sweep = await createSweep(deps, template.id, { machineIds: [local!.id], grid: { lr: [0.2] } });
  const freshChannel = async () =>
    (await createChannel(db, TEST_SECRET, { name: `mx ${uid()}`, kind: 'slack', url: 'http://127.0.0.1:9/mx' })).id;
  const channelId = await freshChannel();
  fx = {
    templateId: template.id,
    localId: local!.id,
    ranId,
    sweepId: sweep.id,
    freshProcess,
    async disabledProcess() {
      const id = await freshProcess();
      await act(deps, id, 'disable');
      return id;
    },
    freshTemplate: async () => (await createTemplate(db, { name: `doomed ${uid()}`, command: 'true' })).id,
    freshMachine: async () =>
      (
        await createMachine(
          { db, secret: TEST_SECRET, keysDir: null },
          { name: `doomed-${uid()}`, address: '10.9.9.9', sshUser: 'u', privateKey: PEM },
        )
      ).id,
    freshRole: async () => (await createRole(db, { name: `role-${uid()}`, permissions: ['processes.view'] })).id,
    async freshGrant() {
      const role = await createRole(db, { name: `role-${uid()}`, permissions: [] });
      return (await grant(db, { login: 'admin', roleId: role.id, templateId: template.id })).id;
    },
    freshToken: async (actor) => (await createToken(db, actor.login, { name: 'doomed' })).id,
    freshUser: async () =>
      (await createUser(db, { login: `doomed-${uid()}`, password: `pw-${uid()}-${uid()}`, role: 'viewer' })).id,
    async freshInvitee() {
      const { user, invite } = await createUserAccount(db, {
        login: `invited-${uid()}`,
        roles: [{ role: 'viewer' }],
        invite: true,
      });
      return { id: user.id, path: invitePath(invite!.token) };
    },
    channelId,
    freshChannel,
    // Anonymous never reaches the id: any number will do.
    freshSubscription: async (actor) =>
      actor
        ? (await createSubscription(db, actor.id, { channelId, templateId: template.id, events: ['failed'] })).id
        : 1,
  };
  actors.none = await makeActor(stack, [], 'none');
  for (const role of ['viewer', 'operator', 'admin'] as const) actors[role] = await makeActor(stack, [{ role }], role);
}, 180_000);

afterAll(async () => {
  await t?.close();
  await stack?.close();
});

async function send(row: Row, role: Role): Promise<LightMyRequestResponse> {
  const actor = role === 'anonymous' ? null : actors[role];
  const options = await row.request(fx, actor);
  const headers: Record<string, string> = { ...(options.headers as Record<string, string> | undefined) };
  let cookies: Record<string, string> = {};
  if (actor && row.kind === 'api') headers.authorization = `Bearer ${actor.token}`;
  if (actor && row.kind !== 'api') {
    cookies = { ty_session: actor.cookie };
    headers['x-csrf-token'] = actor.csrf;
  }
  if (row.kind === 'fragment') headers['hx-request'] = 'true';
  return t.app.inject({
    ...options,
    method: row.method,
    headers,
    cookies,
    ...(row.stream ? { payloadAsStream: true } : {}),
  });
}

describe('the permission matrix', () => {
  it('has a row for every route of the app, and no row for a route that is gone', () => {
    // Two routes may name the same position differently (:templateId | :id); compare shapes.
    const shape = (route: string) => route.replace(/:[A-Za-z0-9_]+(?:\|:[A-Za-z0-9_]+)*/g, ':param');
    const routes = [...new Set(appRoutes(t.app.printRoutes({ commonPrefix: false })).map(shape))];
    expect(routes.length).toBeGreaterThan(40);
    const inTable = new Set(TABLE.map((row) => shape(`${row.method} ${row.route}`)));
    const missing = routes.filter((route) => !inTable.has(route) && !(route in NOT_IN_MATRIX));
    expect(TABLE.length, 'one row per route').toBe(inTable.size);
    expect(missing, 'routes without a matrix row').toEqual([]);
    const stale = [...inTable].filter((route) => !routes.includes(route));
    expect(stale, 'matrix rows without a route').toEqual([]);
  });

  const cases = TABLE.flatMap((row) => ROLES.map((role) => ({ row, role, allowed: mayUse(role, row) })));
  it.each(
    cases.map((c) => [`${c.row.method} ${c.row.route} as ${c.role} → ${c.allowed ? 'allowed' : 'denied'}`, c] as const),
  )('%s', async (_name, { row, role, allowed }) => {
    const response = await send(row, role);
    if (row.stream) response.stream().destroy();
    const said = `${response.statusCode} ${row.stream ? '' : response.body.slice(0, 300)}`;
    if (allowed) {
      expect(row.ok ?? [200], said).toContain(response.statusCode);
      if (response.statusCode === 303 && row.needs !== 'public')
        expect(response.headers.location).not.toMatch(/^\/login/);
      return;
    }
    if (role === 'anonymous') {
      if (row.kind === 'api' || row.route.startsWith('/api/')) expect(response.statusCode, said).toBe(401);
      else if (row.kind === 'fragment') {
        expect(response.statusCode, said).toBe(401);
        expect(response.headers['hx-redirect']).toMatch(/^\/login/);
      } else {
        expect(response.statusCode, said).toBe(303);
        expect(response.headers.location).toMatch(/^\/login\?next=/);
      }
      return;
    }
    const hidden = row.hides === true && !holds(role, 'templates.view');
    expect(response.statusCode, said).toBe(hidden ? (row.hiddenStatus ?? 404) : 403);
    if (row.route.startsWith('/api/')) expect(response.json().error.code).toBe(hidden ? 'not_found' : 'forbidden');
  });
});

describe('a template-scoped operator', () => {
  let scoped: Actor;
  let mine: number;
  let theirs: number;
  let otherTemplate: number;

  beforeAll(async () => {
    const db = stack.database.db;
    otherTemplate = (await createTemplate(db, { name: `not mine ${uid()}`, command: 'true' })).id;
    scoped = await makeActor(stack, [{ role: 'operator', templateId: fx.templateId }], 'scoped');
    mine = await fx.freshProcess();
    theirs = (await createProcess(stack.deps, { templateId: otherTemplate, machineId: fx.localId })).id;
  });

  const api = (method: 'GET' | 'POST', url: string, actor: Actor, payload?: object) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${actor.token}` }, ...(payload ? { payload } : {}) });

  it("acts on its template's processes", async () => {
    expect((await api('POST', `/api/v1/processes/${mine}/disable`, scoped)).statusCode).toBe(202);
    expect((await api('POST', `/api/v1/processes/${mine}/enable`, scoped)).statusCode).toBe(202);
    const created = await api('POST', '/api/v1/processes', scoped, {
      templateId: fx.templateId,
      machineId: fx.localId,
    });
    expect(created.statusCode).toBe(201);
    const page = await t.app.inject({
      method: 'POST',
      url: `/training/processes/${mine}/disable`,
      cookies: { ty_session: scoped.cookie },
      headers: { 'x-csrf-token': scoped.csrf, 'hx-request': 'true' },
    });
    expect(page.statusCode).toBe(200);
  });

  it("does not see or act on another template's processes", async () => {
    for (const url of [
      `/api/v1/processes/${theirs}`,
      `/api/v1/processes/${theirs}/runs`,
      `/api/v1/templates/${otherTemplate}`,
      `/api/v1/templates/${otherTemplate}/processes`,
    ]) {
      expect((await api('GET', url, scoped)).statusCode, url).toBe(404);
    }
    const start = await api('POST', `/api/v1/processes/${theirs}/start`, scoped);
    expect(start.statusCode).toBe(404);
    const create = await api('POST', '/api/v1/processes', scoped, { templateId: otherTemplate, machineId: fx.localId });
    expect(create.statusCode).toBe(400);
    expect(create.json().error.field).toBe('templateId');
    const page = await t.app.inject({
      method: 'POST',
      url: `/training/processes/${theirs}/disable`,
      cookies: { ty_session: scoped.cookie },
      headers: { 'x-csrf-token': scoped.csrf, 'hx-request': 'true' },
    });
    expect(page.statusCode).toBe(404);
  });

  it('lists only its template and its processes, filtered in the query', async () => {
    const templates = (await api('GET', '/api/v1/templates?limit=500', scoped)).json();
    expect(templates.items.map((x: { id: number }) => x.id)).toEqual([fx.templateId]);
    const listed = (await api('GET', '/api/v1/processes?limit=500', scoped)).json();
    expect(listed.items.length).toBeGreaterThan(0);
    expect(listed.items.every((p: { templateId: number }) => p.templateId === fx.templateId)).toBe(true);
    const page = await t.app.inject({
      method: 'GET',
      url: '/training/templates',
      cookies: { ty_session: scoped.cookie },
    });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`data-template-id="${fx.templateId}"`);
    expect(page.body).not.toContain(`data-template-id="${otherTemplate}"`);
  });

  it('sees another template where a viewer grant reaches, but still may not act there (403)', async () => {
    await grantRole(stack.database.db, scoped.login, 'viewer');
    const start = await api('POST', `/api/v1/processes/${theirs}/start`, scoped);
    expect(start.statusCode).toBe(403);
    expect((await api('GET', `/api/v1/processes/${theirs}`, scoped)).statusCode).toBe(200);
  });

  it('gets nothing from a scoped grant of machine or user permissions', async () => {
    const [adminRole] = await stack.database.db.select().from(roles).where(eq(roles.name, 'admin'));
    const holder = await makeActor(stack, [{ role: adminRole!.name, templateId: fx.templateId }], 'scoped-admin');
    expect((await api('GET', '/api/v1/machines', holder)).statusCode).toBe(403);
    expect((await api('POST', '/api/v1/templates', holder, { name: `x ${uid()}`, command: 'true' })).statusCode).toBe(
      403,
    );
    const audit = await t.app.inject({ method: 'GET', url: '/admin/audit', cookies: { ty_session: holder.cookie } });
    expect(audit.statusCode).toBe(403);
    expect((await api('POST', `/api/v1/processes/${await fx.freshProcess()}/disable`, holder)).statusCode).toBe(202);
  });
});
