// The processes of a template: the page, the add form, the row, details, facts and logs
// fragments, the actions, and the live event stream. One handler per URL and verb.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { decide, type UserAction } from '../../../domain/status.js';
import { ServiceError } from '../../../services/errors.js';
import { listMachineChoices } from '../../../services/machines.js';
import {
  act,
  createProcess,
  deleteProcess,
  getProcess,
  logTail,
  type ProcessView,
} from '../../../services/processes.js';
import { listProcesses, SORT_KEYS, type SortKey, type SortOrder } from '../../../services/process-list.js';
import { STATUSES, type ProcessStatus } from '../../../domain/status.js';
import { DEFAULT_LIST, type ListOptions } from '../../../views/fragments/process-list-controls.js';
import { createProcesses, createSweep, renameProcess, validProcessName } from '../../../services/sweeps.js';
import { html } from '../../../views/html.js';
import type { TemplateView } from '../../../services/templates.js';
import { addProcessForm, type AddProcessFormState } from '../../../views/fragments/add-process-form.js';
import { fill } from '../../../views/fragments/format.js';
import {
  logsPanel,
  processBlock,
  processDetails,
  processFacts,
  processMenu,
  processRow,
  processUrl,
} from '../../../views/fragments/process.js';
import { translator, type Locale } from '../../../views/i18n.js';
import { processesPage } from '../../../views/pages/processes.js';
import { can, canAnywhere, intParam, loadProcess, loadTemplate, PAGE_VISIBILITY } from '../../access.js';
import { credentialOf, resolvePrincipal } from '../../plugins/auth.js';
import { statusVersions, type Sent } from '../../plugins/status-feed.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { PathId, PathIdParams } from '../params.js';
import { auditAs, isHtmx, rowContext, sendHtml } from './common.js';

export const PAGE_SIZE = 50;

const idParams = PathIdParams;
const templateParams = Type.Object({ templateId: PathId });

export async function processRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const services = { db: deps.db, client: deps.temporal.client };
  /**
   * The template of `:templateId` as `request.template`: 404 unless the reader sees it, 403 without the permissions.
   */
  const theTemplate = (...permissions: Array<'processes.view' | 'processes.create'>) =>
    loadTemplate(deps.db, permissions, { ...PAGE_VISIBILITY, param: 'templateId' });
  /** The process of `:id` as `request.process`. */
  const theProcess = (
    permission: 'processes.view' | 'processes.manage' | 'processes.delete',
    audit?: (request: FastifyRequest) => string,
  ) => loadProcess(deps.db, permission, { ...PAGE_VISIBILITY, ...(audit ? { audit } : {}) });
  const ctxOf = (request: FastifyRequest) => rowContext(request, deps, request.process.templateId);

  /** Every machine to choose from; addresses only for those who may see machines. */
  async function machineOptions(request: FastifyRequest) {
    const withAddress = can(request.principal, 'machines.view');
    return (await listMachineChoices(deps.db)).map((row) => ({ ...row, address: withAddress ? row.address : null }));
  }

  async function formState(
    request: FastifyRequest,
    template: { id: number; params: Record<string, unknown> },
    extra: Partial<AddProcessFormState> = {},
  ): Promise<AddProcessFormState> {
    return {
      templateId: template.id,
      templateParams: template.params,
      machines: await machineOptions(request),
      csrfToken: request.principal?.csrfToken ?? null,
      canAddMachines: canAnywhere(request.principal, 'machines.manage'),
      ...extra,
    };
  }

  async function page(
    request: FastifyRequest,
    template: TemplateView,
    options: ListOptions = DEFAULT_LIST,
    after: number | string | null = null,
    form?: AddProcessFormState,
  ) {
    // One query: the rows, each with the status version read with it (what the feed compares against), and the
    // counts per status.
    const list = await listProcesses(deps.db, {
      templateId: template.id,
      visibleTemplates: [template.id],
      limit: options.size,
      sort: options.sort,
      order: options.order,
      withCounts: true,
      ...(options.status ? { status: options.status } : {}),
      ...(options.q ? { search: options.q } : {}),
      ...(after !== null ? { cursor: after } : {}),
    });
    return processesPage(pageContext(request), {
      template,
      rows: list.items.map((view) => ({ view, version: list.versions.get(view.id) ?? 0 })),
      rowContext: rowContext(request, deps, template.id),
      canCreate: can(request.principal, 'processes.create', template.id),
      after,
      nextCursor: list.nextCursor,
      options,
      counts: list.counts ?? {},
      ...(form ? { form: addProcessForm(request.locale, form) } : {}),
    });
  }

  app.get(
    '/training/templates/:templateId/processes',
    {
      schema: {
        params: templateParams,
        querystring: Type.Object({
          after: Type.Optional(Type.String({ maxLength: 2000 })),
          sort: Type.Optional(Type.Unsafe<SortKey>({ type: 'string', enum: [...SORT_KEYS] })),
          order: Type.Optional(Type.Unsafe<SortOrder>({ type: 'string', enum: ['asc', 'desc'] })),
          // The form's "all statuses" sends an empty value.
          status: Type.Optional(Type.Unsafe<ProcessStatus | ''>({ type: 'string', enum: ['', ...STATUSES] })),
          q: Type.Optional(Type.String({ maxLength: 200 })),
          size: Type.Optional(Type.String({ pattern: '^(25|50|100|200)$' })),
          lang: Type.Optional(Type.String()),
        }),
      },
      preHandler: theTemplate('processes.view'),
    },
    async (request, reply) => {
      const { after, sort, order, status, q, size } = request.query;
      const options: ListOptions = {
        sort: sort ?? DEFAULT_LIST.sort,
        order: order ?? DEFAULT_LIST.order,
        size: size ? Number(size) : DEFAULT_LIST.size,
        ...(status ? { status } : {}),
        ...(q?.trim() ? { q: q.trim() } : {}),
      };
      return sendHtml(reply, await page(request, request.template, options, after ? after : null));
    },
  );

  app.get(
    '/training/templates/:templateId/processes/new',
    { schema: { params: templateParams }, preHandler: theTemplate('processes.view', 'processes.create') },
    async (request, reply) => {
      const state = await formState(request, request.template);
      if (isHtmx(request)) return sendHtml(reply, addProcessForm(request.locale, state));
      return sendHtml(reply, await page(request, request.template, DEFAULT_LIST, null, state));
    },
  );

  app.post(
    '/training/templates/:templateId/processes',
    {
      schema: {
        params: templateParams,
        body: Type.Object({
          // One machine, or several from the multiple select (the form sends the name once per choice).
          machineId: Type.Optional(
            Type.Union([Type.String({ maxLength: 20 }), Type.Array(Type.String({ maxLength: 20 }), { maxItems: 100 })]),
          ),
          params: Type.Optional(Type.String({ maxLength: 65536 })),
          grid: Type.Optional(Type.String({ maxLength: 65536 })),
          perMachine: Type.Optional(Type.String({ maxLength: 20 })),
          name: Type.Optional(Type.String({ maxLength: 1000 })),
          start: Type.Optional(Type.String({ maxLength: 20 })),
          _csrf: Type.Optional(Type.String()),
        }),
      },
      preHandler: theTemplate('processes.view', 'processes.create'),
    },
    async (request, reply) => {
      const template = request.template;
      const body = request.body ?? {};
      const machineIds = body.machineId === undefined ? [] : [body.machineId].flat().filter((id) => id !== '');
      const values = {
        machineIds,
        params: body.params ?? '',
        grid: body.grid ?? '',
        perMachine: body.perMachine ?? '1',
        name: body.name ?? '',
        start: body.start !== undefined,
      };
      const { input, errors } = readForm(values, template.id, request.locale);
      let created: ProcessView[] | null = null;
      let sweepId: number | null = null;
      if (input) {
        const params = input.params ? { params: input.params } : {};
        try {
          if (input.grid) {
            // A sweep: one process per combination; the fixed params are one-value lines the grid's own override.
            const fixed = Object.entries(input.params ?? {}).map(([key, value]): [string, unknown[]] => [key, [value]]);
            const sweep = await createSweep(services, input.templateId, {
              machineIds: input.machineIds,
              grid: { ...Object.fromEntries(fixed), ...input.grid },
              start: input.start,
              ...(input.name === null ? {} : { name: input.name }),
            });
            sweepId = sweep.id;
            created = sweep.processes;
          } else {
            // One machine, one process, nothing else asked: the single create, as it always was.
            created =
              input.machineIds.length === 1 && input.perMachine === 1 && input.name === null && !input.start
                ? [
                    await createProcess(services, {
                      templateId: input.templateId,
                      machineId: input.machineIds[0]!,
                      ...params,
                    }),
                  ]
                : await createProcesses(services, {
                    templateId: input.templateId,
                    machineIds: input.machineIds,
                    perMachine: input.perMachine,
                    start: input.start,
                    ...params,
                    ...(input.name === null ? {} : { name: input.name }),
                  });
          }
        } catch (error) {
          if (!(error instanceof ServiceError) || error.code !== 'invalid') throw error;
          const field = error.field === 'machineIds' ? 'machineId' : error.field;
          if (
            field === 'machineId' ||
            field === 'params' ||
            field === 'grid' ||
            field === 'perMachine' ||
            field === 'name'
          )
            errors[field] = error.in(request.locale);
          else errors.form = error.in(request.locale);
        }
      }
      if (!created) {
        const state = await formState(request, template, { values, errors });
        if (!isHtmx(request)) return sendHtml(reply, await page(request, template, DEFAULT_LIST, null, state), 422);
        // The form comes back in place of itself, with the errors beside the fields.
        reply.header('HX-Retarget', '#add-process').header('HX-Reswap', 'innerHTML');
        return sendHtml(reply, addProcessForm(request.locale, state), 422);
      }
      if (sweepId !== null)
        auditAs(request, {
          action: 'sweep.create',
          targetType: 'sweep',
          targetId: sweepId,
          detail: { templateId: template.id, processIds: created.map((view) => view.id) },
        });
      else
        for (const view of created)
          auditAs(request, {
            action: 'process.create',
            targetType: 'process',
            targetId: view.id,
            detail: { templateId: template.id, machineId: view.machineId },
          });
      if (sweepId !== null) {
        // The sweep's own page, where its processes are side by side and fill in as they run.
        const to = `/training/sweeps/${sweepId}`;
        if (isHtmx(request)) return reply.header('HX-Redirect', to).code(200).send('');
        return reply.redirect(to, 303);
      }
      if (!isHtmx(request)) return reply.redirect(`/training/templates/${template.id}/processes`, 303);
      const versions = await statusVersions(
        deps.db,
        created.map((view) => view.id),
      );
      reply.header('HX-Trigger-After-Swap', 'process-created');
      const ctx = rowContext(request, deps, template.id);
      return sendHtml(reply, html`${created.map((view) => processBlock(view, ctx, versions.get(view.id) ?? 0))}`);
    },
  );

  app.get(
    '/training/templates/:templateId/processes/events',
    {
      schema: {
        params: templateParams,
        querystring: Type.Object({
          after: Type.Optional(Type.String({ maxLength: 12 })),
          upTo: Type.Optional(Type.String({ maxLength: 12 })),
          known: Type.Optional(Type.String({ maxLength: 8000 })),
        }),
      },
      preHandler: theTemplate('processes.view'),
    },
    async (request, reply) => {
      const template = request.template;
      const after = request.query.after ? intParam(request.query.after, 'after', 'invalid') : 0;
      const upTo = request.query.upTo ? intParam(request.query.upTo, 'upTo', 'invalid') : null;
      const sent = new Map<number, Sent>();
      for (const pair of (request.query.known ?? '').split(',')) {
        const match = /^(\d{1,9}):(-?\d{1,15})$/.exec(pair);
        if (match) sent.set(Number(match[1]), { version: Number(match[2]), step: null, at: 0 });
      }
      const principal = request.principal!;
      const credential = credentialOf(request);
      let ctx = rowContext(request, deps, template.id);
      return app.openStatusStream(reply, principal.credentialKey, {
        templateId: template.id,
        after,
        upTo,
        sent,
        render: (view, version, kind) =>
          (kind === 'row' ? processRow(view, ctx, version) : processBlock(view, ctx, version)).value,
        // The session (or token) and the grants that opened the stream, as they are now.
        stillAllowed: async () => {
          const now = await resolvePrincipal(deps, app.authz, credential);
          if (!now || now.credentialKey !== principal.credentialKey) return false;
          if (!can(now, 'templates.view', template.id) || !can(now, 'processes.view', template.id)) return false;
          request.principal = now;
          ctx = rowContext(request, deps, template.id);
          return true;
        },
      });
    },
  );

  app.get(
    '/training/processes/:id/row',
    { schema: { params: idParams }, preHandler: theProcess('processes.view') },
    async (request, reply) => {
      const view = request.process;
      const version = (await statusVersions(deps.db, [view.id])).get(view.id) ?? 0;
      return sendHtml(reply, processRow(view, ctxOf(request), version));
    },
  );

  app.get(
    '/training/processes/:id/menu',
    { schema: { params: idParams }, preHandler: theProcess('processes.view') },
    async (request, reply) => sendHtml(reply, processMenu(request.process, ctxOf(request))),
  );

  app.get(
    '/training/processes/:id/details',
    { schema: { params: idParams }, preHandler: theProcess('processes.view') },
    async (request, reply) => sendHtml(reply, processDetails(request.process, ctxOf(request))),
  );

  app.get('/training/processes/:id/facts', { schema: { params: idParams } }, async (request, reply) => {
    try {
      await theProcess('processes.view')(request);
    } catch (error) {
      // Deleted while its details were open: 286 tells htmx to stop polling; the feed removes the row.
      if (isHtmx(request) && error instanceof ServiceError && error.code === 'not_found')
        return reply.code(286).type('text/html; charset=utf-8').send('');
      throw error;
    }
    return sendHtml(reply, processFacts(request.process, ctxOf(request)));
  });

  app.get(
    '/training/processes/:id/logs',
    {
      schema: {
        params: idParams,
        querystring: Type.Object({
          run: Type.Optional(Type.String({ maxLength: 12 })),
          slot: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9-]{1,40}$' })),
        }),
      },
      preHandler: theProcess('processes.view'),
    },
    async (request, reply) => {
      const view = request.process;
      const run = request.query.run ? intParam(request.query.run, 'run') : undefined;
      let tail = null;
      try {
        tail = await logTail(deps, view.id, run);
      } catch (error) {
        // No run yet (or not that one): the panel says so instead of failing.
        if (!(error instanceof ServiceError && error.code === 'not_found' && view.runNumber === null)) throw error;
      }
      return sendHtml(
        reply,
        logsPanel(view.id, tail, { locale: request.locale, slotId: request.query.slot ?? `process-${view.id}-logs` }),
      );
    },
  );

  app.post(
    '/training/processes/:id/:action',
    {
      schema: {
        params: Type.Object({
          id: PathId,
          action: Type.Unsafe<Exclude<UserAction, 'delete'>>({
            type: 'string',
            enum: ['start', 'stop', 'disable', 'enable'],
          }),
        }),
      },
      preHandler: theProcess(
        'processes.manage',
        (request) => `process.${(request.params as { action: string }).action}`,
      ),
    },
    async (request, reply) => {
      const action = request.params.action;
      refuseEarly(request, request.process, action);
      await act(services, request.process.id, action);
      return rowAfter(request, reply, request.process.id);
    },
  );

  app.post(
    '/training/processes/:id/name',
    {
      schema: {
        params: idParams,
        body: Type.Object({
          name: Type.Optional(Type.String({ maxLength: 1000 })),
          _csrf: Type.Optional(Type.String()),
        }),
      },
      preHandler: theProcess('processes.manage', () => 'process.rename'),
    },
    async (request, reply) => {
      const renamed = await renameProcess(services, request.process.id, request.body?.name ?? '');
      request.audit.detail = { name: renamed.name };
      return reply.redirect(`${processUrl(renamed.id)}/monitoring`, 303);
    },
  );

  app.delete(
    '/training/processes/:id',
    { schema: { params: idParams }, preHandler: theProcess('processes.delete', () => 'process.delete') },
    async (request, reply) => {
      const view = request.process;
      await deleteProcess(services, view.id);
      if (!isHtmx(request)) return reply.redirect(`/training/templates/${view.templateId}/processes`, 303);
      // The row stays, marked, until its workflow has cleaned up; the feed then removes it.
      return sendHtml(reply, processBlock(view, ctxOf(request), -1, { deleting: true }));
    },
  );

  /** The status table's refusal in the user's language, before asking the workflow. */
  function refuseEarly(request: FastifyRequest, view: ProcessView, action: UserAction): void {
    const decision = decide(view.status, action);
    if (!decision.ok) throw new ServiceError('not_allowed', decision.reason);
  }

  async function rowAfter(request: FastifyRequest, reply: FastifyReply, id: number) {
    // The version is read before the row, so the page can tell this copy from a newer one.
    const version = (await statusVersions(deps.db, [id])).get(id) ?? 0;
    const view = await getProcess(deps, id);
    if (!isHtmx(request)) return reply.redirect(`/training/templates/${view.templateId}/processes`, 303);
    return sendHtml(reply, processRow(view, rowContext(request, deps, view.templateId), version));
  }
}

/** The add form's strings as the service's input; what cannot even be parsed is an error by field. */
interface FormInput {
  templateId: number;
  machineIds: number[];
  params?: Record<string, unknown>;
  /** A sweep's values per param, when the grid field was filled in. */
  grid?: Record<string, unknown[]>;
  perMachine: number;
  name: string | null;
  start: boolean;
}

/** A value of a grid line: JSON when it reads as JSON (numbers, true, "quoted"), else the text itself. */
function gridValue(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/**
 * The grid field: one `name = value, value, …` per line, or a JSON object of lists. Null
 * when empty; an error message (in the form's language) when a line cannot be read.
 */
function readGrid(text: string, t: ReturnType<typeof translator>): Record<string, unknown[]> | string | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  if (trimmed.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return t('mustBeObject');
      return Object.fromEntries(
        Object.entries(parsed as Record<string, unknown>).map(([key, value]) => [key, [value].flat()]),
      );
    } catch (error) {
      return fill(t('invalidJson'), { detail: (error as Error).message });
    }
  }
  // Entries, then an object of own properties: a line named __proto__ is a param like any other.
  const lines: Array<[string, unknown[]]> = [];
  for (const [i, line] of trimmed.split(/\r?\n/).entries()) {
    if (line.trim() === '') continue;
    const match = /^\s*([^=\s][^=]*?)\s*=\s*(.*\S)\s*$/.exec(line);
    if (!match) return fill(t('sweepGridLine'), { line: String(i + 1) });
    lines.push([match[1]!, match[2]!.split(',').map((value) => gridValue(value.trim()))]);
  }
  return Object.fromEntries(lines);
}

function readForm(
  values: { machineIds: string[]; params: string; grid: string; perMachine: string; name: string; start: boolean },
  templateId: number,
  locale: Locale,
): { input: FormInput | null; errors: NonNullable<AddProcessFormState['errors']> } {
  const t = translator(locale);
  const errors: NonNullable<AddProcessFormState['errors']> = {};
  const machineIds = values.machineIds.map((id) => (/^\d{1,9}$/.test(id) ? Number(id) : null));
  if (machineIds.length === 0 || machineIds.includes(null)) errors.machineId = t('required');
  const perMachine = /^\d{1,3}$/.test(values.perMachine.trim()) ? Number(values.perMachine.trim()) : 0;
  if (perMachine < 1 || perMachine > 500) errors.perMachine = t('required');
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
  const grid = readGrid(values.grid, t);
  if (typeof grid === 'string') errors.grid = grid;
  else if (grid && perMachine > 1) errors.perMachine = t('sweepGridPerMachine');
  let name: string | null = null;
  try {
    name = validProcessName(values.name);
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    errors.name = error.in(locale);
  }
  if (Object.keys(errors).length > 0) return { input: null, errors };
  return {
    input: {
      templateId,
      machineIds: machineIds as number[],
      ...(params ? { params } : {}),
      ...(grid && typeof grid !== 'string' ? { grid } : {}),
      perMachine,
      name,
      start: values.start,
    },
    errors,
  };
}
