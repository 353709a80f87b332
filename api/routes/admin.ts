// Administration pages (users.manage): roles and grants, and the audit log.
import type { FastifyInstance } from 'fastify';
import { listAudit } from '../../services/audit.js';
import { createRole, deleteRole, grant, listGrants, listRoles, listUsers, revokeGrant, updateRole } from '../../services/roles.js';
import { listTemplates } from '../../services/templates.js';
import { auditFilterOf, auditPage, type AuditQuery } from '../../views/pages/audit.js';
import { rolesPage } from '../../views/pages/roles.js';
import { permitted, signedIn } from '../access.js';
import type { AppDeps } from '../deps.js';
import { pageContext } from './pages.js';

const html = 'text/html; charset=utf-8';
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'integer', minimum: 1, maximum: 2_147_483_647 } } } as const;
const roleBody = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 1000 },
    description: { type: 'string', maxLength: 5000 },
    permissions: { type: 'array', maxItems: 50, items: { type: 'string', maxLength: 100 } },
    _csrf: { type: 'string' },
  },
} as const;

type RoleForm = { name?: string; description?: string; permissions?: string[] };

const roleInput = (body: RoleForm) => ({ name: body.name, description: body.description ?? '', permissions: body.permissions ?? [] });

export async function adminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  const db = deps.db;
  // Logged in (else to the login page) and holding users.manage (else a 403 page).
  app.addHook('preHandler', signedIn);
  app.addHook('preHandler', permitted('users.manage'));

  app.get('/admin/roles', async (request, reply) => {
    const [roles, grants, users, templates] = await Promise.all([
      listRoles(db),
      listGrants(db),
      listUsers(db),
      listTemplates(db, { visibleTemplates: 'all', orderBy: 'name', limit: 500 }),
    ]);
    return reply.type(html).send(rolesPage(pageContext(request), { roles, grants, users, templates: templates.items }).value);
  });

  app.post<{ Body: RoleForm }>('/admin/roles', { config: { audit: 'role.create' }, schema: { body: roleBody } }, async (request, reply) => {
    const role = await createRole(db, roleInput(request.body));
    request.audit.targetId = role.id;
    request.audit.detail = { name: role.name, permissions: role.permissions };
    return reply.redirect('/admin/roles', 303);
  });

  app.post<{ Params: { id: number }; Body: RoleForm }>(
    '/admin/roles/:id',
    { config: { audit: 'role.update' }, schema: { params: idParams, body: roleBody } },
    async (request, reply) => {
        const role = await updateRole(db, request.params.id, roleInput(request.body));
      request.audit.detail = { name: role.name, permissions: role.permissions };
      return reply.redirect('/admin/roles', 303);
    },
  );

  app.post<{ Params: { id: number } }>('/admin/roles/:id/delete', { config: { audit: 'role.delete' }, schema: { params: idParams } }, async (request, reply) => {
    await deleteRole(db, request.params.id);
    return reply.redirect('/admin/roles', 303);
  });

  app.post<{ Body: { login?: string; roleId?: string; templateId?: string } }>(
    '/admin/grants',
    {
      config: { audit: 'grant.create' },
      schema: {
        body: {
          type: 'object',
          properties: { login: { type: 'string', maxLength: 200 }, roleId: { type: 'string', maxLength: 12 }, templateId: { type: 'string', maxLength: 12 }, _csrf: { type: 'string' } },
        },
      },
    },
    async (request, reply) => {
        const number = (value: string | undefined) => (value && /^\d{1,10}$/.test(value) ? Number(value) : value || null);
      const created = await grant(db, { login: request.body.login, roleId: number(request.body.roleId), templateId: number(request.body.templateId) });
      request.audit.targetId = created.id;
      request.audit.detail = { login: created.login, role: created.roleName, templateId: created.templateId };
      return reply.redirect('/admin/roles', 303);
    },
  );

  app.post<{ Params: { id: number } }>('/admin/grants/:id/revoke', { config: { audit: 'grant.revoke' }, schema: { params: idParams } }, async (request, reply) => {
    const revoked = await revokeGrant(db, request.params.id);
    request.audit.detail = { login: revoked.login, role: revoked.roleName, templateId: revoked.templateId };
    return reply.redirect('/admin/roles', 303);
  });

  app.get<{ Querystring: AuditQuery & { cursor?: number } }>(
    '/admin/audit',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            actor: { type: 'string', maxLength: 64 },
            action: { type: 'string', maxLength: 200 },
            outcome: { type: 'string', maxLength: 20 },
            targetType: { type: 'string', maxLength: 50 },
            targetId: { type: 'string', maxLength: 50 },
            since: { type: 'string', maxLength: 10 },
            until: { type: 'string', maxLength: 10 },
            cursor: { type: 'integer', minimum: 1 },
            lang: { type: 'string', maxLength: 5 },
          },
        },
      },
    },
    async (request, reply) => {
        const page = await listAudit(db, auditFilterOf(request.query));
      return reply.type(html).send(auditPage(pageContext(request), request.query, page).value);
    },
  );
}
