// /api/v1/templates: training templates. Reading needs templates.view (a user sees
// only the templates they may view, filtered in SQL; env values masked unless they also
// hold templates.manage); writing needs templates.manage. Secret env is write-only.
import type { FastifyInstance } from 'fastify';
import { listProcesses } from '../../../services/processes.js';
import { shownTo } from './processes.js';
import { createTemplate, deleteTemplate, getTemplate, listTemplates, maskedTemplate, updateTemplate, type TemplateView } from '../../../services/templates.js';
import { authorize, authorizeOn, can, visibleTemplates, type Principal } from '../../plugins/auth.js';
import type { AppDeps } from '../../deps.js';
import { errors, IdParams, list, Page, Process, Status, Template, TemplateCreate, TemplatePatch } from './schemas.js';

type Id = { Params: { id: number } };

export async function templateRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  const db = deps.db;
  const secrets = { secret: deps.secret };
  /** env values are for those who may change them; everyone else sees the names. */
  const shown = (principal: Principal, view: TemplateView) => (can(principal, 'templates.manage') ? view : maskedTemplate(view));

  app.get<{ Querystring: { limit?: number; cursor?: number } }>(
    '/templates',
    {
      config: { permission: 'templates.view' },
      schema: {
        summary: 'Templates the caller may view',
        tags: ['templates'],
        querystring: { type: 'object', properties: Page },
        response: { 200: list(Template), ...errors() },
      },
    },
    async (request) => {
      const principal = authorize(request.principal, 'templates.view', { anywhere: true });
      const page = await listTemplates(db, { visibleTemplates: visibleTemplates(principal, 'templates.view'), limit: request.query.limit ?? 50, ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}) });
      return { ...page, items: page.items.map((view) => shown(principal, view)) };
    },
  );

  app.post(
    '/templates',
    {
      config: { permission: 'templates.manage', audit: 'template.create' },
      schema: { summary: 'Create a template', tags: ['templates'], body: TemplateCreate, response: { 201: Template, ...errors(409) } },
    },
    async (request, reply) => {
      authorize(request.principal, 'templates.manage');
      const template = await createTemplate(db, request.pristineBody as Record<string, unknown>, secrets);
      request.audit.targetId = template.id;
      request.audit.detail = { name: template.name };
      return reply.code(201).send(template);
    },
  );

  app.get<Id>(
    '/templates/:id',
    {
      config: { permission: 'templates.view' },
      schema: { summary: 'One template', tags: ['templates'], params: IdParams, response: { 200: Template, ...errors(404) } },
    },
    async (request) => {
      const principal = authorizeOn(request.principal, 'templates.view', request.params.id, { kind: 'Template', id: request.params.id }, 'templates.view');
      return shown(principal, await getTemplate(db, request.params.id));
    },
  );

  app.patch<Id>(
    '/templates/:id',
    {
      config: { permission: 'templates.manage', audit: 'template.update' },
      schema: {
        summary: 'Change a template',
        description:
          'Only the fields given change; null clears workingDir or totalSteps. secretEnv: a key given replaces its value, null removes it, a key left out is kept. Runs already started keep the template they started with.',
        tags: ['templates'],
        params: IdParams,
        body: TemplatePatch,
        response: { 200: Template, ...errors(404, 409) },
      },
    },
    async (request) => {
      authorize(request.principal, 'templates.manage');
      request.audit.detail = { fields: Object.keys((request.pristineBody as object) ?? {}) };
      return updateTemplate(db, request.params.id, (request.pristineBody ?? {}) as Record<string, unknown>, secrets);
    },
  );

  app.delete<Id>(
    '/templates/:id',
    {
      config: { permission: 'templates.manage', audit: 'template.delete' },
      schema: {
        summary: 'Delete a template',
        description: 'Refused (409) while processes use it.',
        tags: ['templates'],
        params: IdParams,
        response: { 204: { type: 'null' }, ...errors(404, 409) },
      },
    },
    async (request, reply) => {
      authorize(request.principal, 'templates.manage');
      await deleteTemplate(db, request.params.id);
      return reply.code(204).send();
    },
  );

  app.get<Id & { Querystring: { status?: (typeof Status.enum)[number]; limit?: number; cursor?: number } }>(
    '/templates/:id/processes',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: 'Processes of a template',
        tags: ['templates', 'processes'],
        params: IdParams,
        querystring: { type: 'object', properties: { status: Status, ...Page } },
        response: { 200: list(Process), ...errors(404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const principal = authorizeOn(request.principal, 'processes.view', id, { kind: 'Template', id });
      await getTemplate(db, id);
      const { status, limit, cursor } = request.query;
      const page = await listProcesses(deps, {
        templateId: id,
        visibleTemplates: visibleTemplates(principal),
        ...(status ? { status } : {}),
        ...(limit !== undefined ? { limit } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
      return { ...page, items: page.items.map((view) => shownTo(principal, view)) };
    },
  );
}
