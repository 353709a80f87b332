// The processes of a template: the page, the add form, the row, details, facts and logs
// fragments, the actions, and the live event stream. One handler per URL and verb.
import { and, asc, eq, gt } from 'drizzle-orm';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { machines, processes } from '../../../db/schema.js';
import { decide, isUserAction, type UserAction } from '../../../domain/status.js';
import { ServiceError } from '../../../services/errors.js';
import { act, createProcess, deleteProcess, getProcess, listProcesses, logTail, type ProcessView } from '../../../services/processes.js';
import { addProcessForm, type AddProcessFormState } from '../../../views/fragments/add-process-form.js';
import { fill } from '../../../views/fragments/format.js';
import { logsPanel, processBlock, processDetails, processFacts, processRow } from '../../../views/fragments/process.js';
import { translator } from '../../../views/i18n.js';
import { processesPage } from '../../../views/pages/processes.js';
import { can, canAnywhere, credentialOf, resolvePrincipal } from '../../plugins/auth.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { allowed, auditAs, demand, demandOnTemplate, intParam, isHtmx, loadTemplate, requireUser, rowContext, sendHtml } from './common.js';
import { sseEvent, StatusFeed, statusVersions, type Sent } from '../../plugins/status-feed.js';

export const PAGE_SIZE = 50;

const idParams = { type: 'object', properties: { id: { type: 'string', maxLength: 12 } }, required: ['id'] } as const;
const templateParams = { type: 'object', properties: { templateId: { type: 'string', maxLength: 12 } }, required: ['templateId'] } as const;

export async function processRoutes(app: FastifyInstance, { deps, feed }: { deps: AppDeps; feed: StatusFeed }) {
  const services = { db: deps.db, client: deps.temporal.client };

  /** A template the user may see the processes of. */
  async function templateFor(request: FastifyRequest, rawId: string) {
    const template = await loadTemplate(deps.db, intParam(rawId, 'template'));
    demandOnTemplate(request, template.id, { kind: 'Template', id: template.id }, ['processes.view']);
    return template;
  }

  /** A process, its view and the user's row context. */
  async function processFor(request: FastifyRequest, rawId: string) {
    const view = await getProcess(deps, intParam(rawId, 'process'));
    demandOnTemplate(request, view.templateId, { kind: 'Process', id: view.id }, ['processes.view']);
    return { view, ctx: rowContext(request, deps, view.templateId) };
  }

  /** Every machine to choose from; addresses only for those who may see machines. */
  async function machineOptions(request: FastifyRequest) {
    const rows = await deps.db
      .select({ id: machines.id, name: machines.name, address: machines.address, enabled: machines.enabled })
      .from(machines)
      .orderBy(asc(machines.name));
    const withAddress = can(request.principal, 'machines.view');
    return rows.map((row) => ({ ...row, address: withAddress ? row.address : null }));
  }

  async function formState(request: FastifyRequest, template: { id: number; params: Record<string, unknown> }, extra: Partial<AddProcessFormState> = {}): Promise<AddProcessFormState> {
    return {
      templateId: template.id,
      templateParams: template.params,
      machines: await machineOptions(request),
      csrfToken: request.principal?.csrfToken ?? null,
      canAddMachines: canAnywhere(request.principal, 'machines.manage'),
      ...extra,
    };
  }

  async function page(request: FastifyRequest, template: Awaited<ReturnType<typeof loadTemplate>>, after: number, form?: AddProcessFormState) {
    // Versions first, then the rows: a change in between makes the feed resend, never miss.
    const window = await deps.db
      .select({ id: processes.id, version: processes.statusVersion })
      .from(processes)
      .where(and(eq(processes.templateId, template.id), gt(processes.id, after)))
      .orderBy(asc(processes.id))
      .limit(PAGE_SIZE + 1);
    const versions = new Map(window.map((row) => [row.id, row.version]));
    const list = await listProcesses(deps, { templateId: template.id, visibleTemplates: [template.id], limit: PAGE_SIZE, cursor: after });
    return processesPage(pageContext(request), {
      template,
      rows: list.items.map((view) => ({ view, version: versions.get(view.id) ?? 0 })),
      rowContext: rowContext(request, deps, template.id),
      canCreate: allowed(request, 'processes.create', template.id),
      after,
      nextCursor: list.nextCursor,
      ...(form ? { form: addProcessForm(request.locale, form) } : {}),
    });
  }

  app.get<{ Params: { templateId: string }; Querystring: { after?: string } }>(
    '/training/templates/:templateId/processes',
    { schema: { params: templateParams, querystring: { type: 'object', properties: { after: { type: 'string', maxLength: 12 }, lang: { type: 'string' } } } } },
    async (request, reply) => {
      if (!requireUser(request, reply)) return reply;
      const template = await templateFor(request, request.params.templateId);
      const after = request.query.after ? intParam(request.query.after, 'after', 'invalid') : 0;
      return sendHtml(reply, await page(request, template, after));
    },
  );

  app.get<{ Params: { templateId: string } }>('/training/templates/:templateId/processes/new', { schema: { params: templateParams } }, async (request, reply) => {
    if (!requireUser(request, reply)) return reply;
    const template = await templateFor(request, request.params.templateId);
    demand(request, ['processes.create'], template.id);
    const state = await formState(request, template);
    if (isHtmx(request)) return sendHtml(reply, addProcessForm(request.locale, state));
    return sendHtml(reply, await page(request, template, 0, state));
  });

  app.post<{ Params: { templateId: string }; Body: { machineId?: string; params?: string } }>(
    '/training/templates/:templateId/processes',
    {
      schema: {
        params: templateParams,
        body: {
          type: 'object',
          properties: { machineId: { type: 'string', maxLength: 20 }, params: { type: 'string', maxLength: 65536 }, _csrf: { type: 'string' } },
        },
      },
    },
    async (request, reply) => {
      if (!requireUser(request, reply)) return reply;
      const t = translator(request.locale);
      const template = await templateFor(request, request.params.templateId);
      demand(request, ['processes.create'], template.id);
      const values = { machineId: request.body?.machineId ?? '', params: request.body?.params ?? '' };
      const errors: NonNullable<AddProcessFormState['errors']> = {};
      const machineId = /^\d{1,9}$/.test(values.machineId) ? Number(values.machineId) : null;
      if (machineId === null) errors.machineId = t('required');
      let params: Record<string, unknown> | undefined;
      if (values.params.trim() !== '') {
        try {
          const parsed: unknown = JSON.parse(values.params);
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) errors.params = t('mustBeObject');
          else params = parsed as Record<string, unknown>;
        } catch (error) {
          errors.params = fill(t('invalidJson'), { detail: (error as Error).message });
        }
      }
      let created: ProcessView | null = null;
      if (Object.keys(errors).length === 0) {
        try {
          created = await createProcess(services, { templateId: template.id, machineId: machineId!, ...(params ? { params } : {}) });
        } catch (error) {
          if (!(error instanceof ServiceError) || error.code !== 'invalid') throw error;
          if (error.field === 'machineId' || error.field === 'params') errors[error.field] = error.message;
          else errors.form = error.message;
        }
      }
      if (!created) {
        const state = await formState(request, template, { values, errors });
        if (!isHtmx(request)) return sendHtml(reply, await page(request, template, 0, state), 422);
        // The form comes back in place of itself, with the errors beside the fields.
        reply.header('HX-Retarget', '#add-process').header('HX-Reswap', 'innerHTML');
        return sendHtml(reply, addProcessForm(request.locale, state), 422);
      }
      auditAs(request, { action: 'process.create', targetType: 'process', targetId: created.id, detail: { templateId: template.id, machineId: created.machineId } });
      if (!isHtmx(request)) return reply.redirect(`/training/templates/${template.id}/processes`, 303);
      const version = (await statusVersions(deps.db, [created.id])).get(created.id) ?? 0;
      reply.header('HX-Trigger-After-Swap', 'process-created');
      return sendHtml(reply, processBlock(created, rowContext(request, deps, template.id), version));
    },
  );

  app.get<{ Params: { templateId: string }; Querystring: { after?: string; upTo?: string; known?: string } }>(
    '/training/templates/:templateId/processes/events',
    {
      schema: {
        params: templateParams,
        querystring: {
          type: 'object',
          properties: { after: { type: 'string', maxLength: 12 }, upTo: { type: 'string', maxLength: 12 }, known: { type: 'string', maxLength: 8000 } },
        },
      },
    },
    async (request, reply) => {
      if (!requireUser(request, reply)) return reply;
      const template = await templateFor(request, request.params.templateId);
      const after = request.query.after ? intParam(request.query.after, 'after', 'invalid') : 0;
      const upTo = request.query.upTo ? intParam(request.query.upTo, 'upTo', 'invalid') : null;
      const sent = new Map<number, Sent>();
      for (const pair of (request.query.known ?? '').split(',')) {
        const match = /^(\d{1,9}):(-?\d{1,15})$/.exec(pair);
        if (match) sent.set(Number(match[1]), { version: Number(match[2]), step: null, at: 0 });
      }
      const principal = request.principal!;
      const open = streamsOf.get(principal.credentialKey) ?? 0;
      if (open >= feed.limits.perSession) {
        return reply
          .code(429)
          .header('retry-after', '10')
          .type('text/plain; charset=utf-8')
          .send(`At most ${feed.limits.perSession} live streams per session; close a tab and try again.`);
      }
      const credential = credentialOf(request);
      let ctx = rowContext(request, deps, template.id);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store, no-transform',
        // nginx and friends must not buffer a stream.
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      res.write('retry: 2000\n\n');
      // A client that stops reading must not make us hold its rows in memory.
      let drainTimer: NodeJS.Timeout | null = null;
      const dropSlowClient = () => res.destroy();
      const stream = {
        templateId: template.id,
        after,
        upTo,
        sent,
        render: (view: ProcessView, version: number, kind: 'row' | 'block') =>
          (kind === 'row' ? processRow(view, ctx, version) : processBlock(view, ctx, version)).value,
        write: (chunk: string) => {
          if (res.writableEnded || res.destroyed) return;
          const flushed = res.write(chunk);
          if (res.writableLength > feed.limits.maxBufferedBytes) return dropSlowClient();
          if (!flushed && !drainTimer) {
            drainTimer = setTimeout(dropSlowClient, feed.limits.drainTimeoutMs);
            res.once('drain', () => {
              if (drainTimer) clearTimeout(drainTimer);
              drainTimer = null;
            });
          }
        },
        // The session (or token) and the grants that opened the stream, as they are now.
        stillAllowed: async () => {
          const now = await resolvePrincipal(deps, app.authz, credential);
          if (!now || now.credentialKey !== principal.credentialKey) return false;
          if (!can(now, 'templates.view', template.id) || !can(now, 'processes.view', template.id)) return false;
          request.principal = now;
          ctx = rowContext(request, deps, template.id);
          return true;
        },
        end: () => {
          if (res.writableEnded || res.destroyed) return;
          res.write(sseEvent('bye', ''));
          res.end();
        },
      };
      const unsubscribe = feed.subscribe(stream);
      openStreams.add(res);
      streamsOf.set(principal.credentialKey, open + 1);
      // The page went away (closed, navigated, network gone): stop feeding it.
      res.once('close', () => {
        unsubscribe();
        openStreams.delete(res);
        if (drainTimer) clearTimeout(drainTimer);
        const left = (streamsOf.get(principal.credentialKey) ?? 1) - 1;
        if (left > 0) streamsOf.set(principal.credentialKey, left);
        else streamsOf.delete(principal.credentialKey);
      });
      res.on('error', () => undefined);
    },
  );

  /** Open streams per session or token, for the per-session cap. */
  const streamsOf = new Map<string, number>();

  // Streams end when the server does, so closing never waits on an open page.
  const openStreams = new Set<import('node:http').ServerResponse>();
  app.addHook('preClose', async () => {
    feed.close();
    for (const res of openStreams) {
      res.write(sseEvent('bye', ''));
      res.end();
    }
    openStreams.clear();
  });

  app.get<{ Params: { id: string } }>('/training/processes/:id/row', { schema: { params: idParams } }, async (request, reply) => {
    if (!requireUser(request, reply)) return reply;
    const { view, ctx } = await processFor(request, request.params.id);
    const version = (await statusVersions(deps.db, [view.id])).get(view.id) ?? 0;
    return sendHtml(reply, processRow(view, ctx, version));
  });

  app.get<{ Params: { id: string } }>('/training/processes/:id/details', { schema: { params: idParams } }, async (request, reply) => {
    if (!requireUser(request, reply)) return reply;
    const { view, ctx } = await processFor(request, request.params.id);
    return sendHtml(reply, processDetails(view, ctx));
  });

  app.get<{ Params: { id: string } }>('/training/processes/:id/facts', { schema: { params: idParams } }, async (request, reply) => {
    if (!requireUser(request, reply)) return reply;
    try {
      const { view, ctx } = await processFor(request, request.params.id);
      return sendHtml(reply, processFacts(view, ctx));
    } catch (error) {
      // Deleted while its details were open: 286 tells htmx to stop polling; the feed removes the row.
      if (isHtmx(request) && error instanceof ServiceError && error.code === 'not_found') return reply.code(286).type('text/html; charset=utf-8').send('');
      throw error;
    }
  });

  app.get<{ Params: { id: string }; Querystring: { run?: string; slot?: string } }>(
    '/training/processes/:id/logs',
    {
      schema: {
        params: idParams,
        querystring: { type: 'object', properties: { run: { type: 'string', maxLength: 12 }, slot: { type: 'string', pattern: '^[A-Za-z0-9-]{1,40}$' } } },
      },
    },
    async (request, reply) => {
      if (!requireUser(request, reply)) return reply;
      const { view } = await processFor(request, request.params.id);
      const run = request.query.run ? intParam(request.query.run, 'run') : undefined;
      let tail = null;
      try {
        tail = await logTail(deps, view.id, run);
      } catch (error) {
        // No run yet (or not that one): the panel says so instead of failing.
        if (!(error instanceof ServiceError && error.code === 'not_found' && view.runNumber === null)) throw error;
      }
      return sendHtml(reply, logsPanel(view.id, tail, { locale: request.locale, slotId: request.query.slot ?? `process-${view.id}-logs` }));
    },
  );

  app.post<{ Params: { id: string; action: string } }>(
    '/training/processes/:id/:action',
    { schema: { params: { type: 'object', properties: { id: { type: 'string', maxLength: 12 }, action: { type: 'string', enum: ['start', 'stop', 'disable', 'enable'] } }, required: ['id', 'action'] } } },
    async (request, reply) => {
      if (!requireUser(request, reply)) return reply;
      const action = request.params.action;
      if (!isUserAction(action) || action === 'delete') throw new ServiceError('not_found', `No action ${action}.`);
      const { view } = await processFor(request, request.params.id);
      auditAs(request, { action: `process.${action}`, targetType: 'process', targetId: view.id });
      demand(request, ['processes.manage'], view.templateId);
      refuseEarly(request, view, action);
      await act(services, view.id, action);
      return rowAfter(request, reply, view.id);
    },
  );

  app.delete<{ Params: { id: string } }>('/training/processes/:id', { schema: { params: idParams } }, async (request, reply) => {
    if (!requireUser(request, reply)) return reply;
    const { view, ctx } = await processFor(request, request.params.id);
    auditAs(request, { action: 'process.delete', targetType: 'process', targetId: view.id });
    demand(request, ['processes.delete'], view.templateId);
    await deleteProcess(services, view.id);
    if (!isHtmx(request)) return reply.redirect(`/training/templates/${view.templateId}/processes`, 303);
    // The row stays, marked, until its workflow has cleaned up; the feed then removes it.
    return sendHtml(reply, processBlock(view, ctx, -1, { deleting: true }));
  });

  /** The status table's refusal in the user's language, before asking the workflow. */
  function refuseEarly(request: FastifyRequest, view: ProcessView, action: UserAction): void {
    const decision = decide(view.status, action);
    if (!decision.ok) throw new ServiceError('not_allowed', decision.reason[request.locale]);
  }

  async function rowAfter(request: FastifyRequest, reply: import('fastify').FastifyReply, id: number) {
    // The version is read before the row, so the page can tell this copy from a newer one.
    const version = (await statusVersions(deps.db, [id])).get(id) ?? 0;
    const view = await getProcess(deps, id);
    if (!isHtmx(request)) return reply.redirect(`/training/templates/${view.templateId}/processes`, 303);
    return sendHtml(reply, processRow(view, rowContext(request, deps, view.templateId), version));
  }
}
