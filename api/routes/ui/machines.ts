// Target machines pages: list with health, add / edit, probe, delete, and the host-key
// "fetch and confirm" step. machines.view to look, machines.manage for the rest.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TOptional, type TString } from 'typebox';
import { ServiceError } from '../../../services/errors.js';
import {
  createMachine,
  deleteMachine,
  getMachine,
  listMachines,
  MACHINE_FIELDS,
  probeMachine,
  updateMachine,
  type MachineView,
} from '../../../services/machines.js';
import { fetchHostKey } from '../../../services/host-key.js';
import { html } from '../../../views/html.js';
import { translator } from '../../../views/i18n.js';
import {
  hostKeyCheck,
  machineForm,
  machineRow,
  machinesPage,
  type MachineFormState,
} from '../../../views/pages/machines.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { PathId, PathIdParams } from '../params.js';
import { can, intParam, permitted } from '../../access.js';
import { auditAs, isHtmx, sendHtml } from './common.js';

type Form = Record<string, string | undefined>;
const FIELDS = MACHINE_FIELDS;
const formFields = Object.fromEntries(
  FIELDS.map((f) => [f, Type.Optional(Type.String({ maxLength: 20_000 }))]),
) as Record<(typeof FIELDS)[number], TOptional<TString>>;
const bodySchema = Type.Object({ ...formFields, _csrf: Type.Optional(Type.String()) });
const idParams = PathIdParams;

/** The form's strings as the service's input; what cannot be read is an error by field. */
function readForm(
  form: Form,
  existing: MachineView | null,
  t: ReturnType<typeof translator>,
): { input: Record<string, unknown>; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const input: Record<string, unknown> = {};
  const str = (key: string) => (form[key] ?? '').trim();
  const int = (key: string) => {
    const raw = str(key);
    if (!/^\d{1,9}$/.test(raw)) errors[key] = t('notInteger');
    else input[key] = Number(raw);
  };
  if (existing?.kind !== 'local') {
    for (const key of ['name', 'address', 'sshUser'] as const) {
      if (str(key) === '') errors[key] = t('required');
      else input[key] = str(key);
    }
    if ((form.privateKey ?? '').trim() !== '') input.privateKey = form.privateKey;
    if (str('privateKeyPath') !== '' && str('privateKeyPath') !== existing?.privateKeyPath)
      input.privateKeyPath = str('privateKeyPath');
    if (str('hostKeyFingerprint') !== '') input.hostKeyFingerprint = str('hostKeyFingerprint');
    else if (existing?.hostKeyFingerprint) input.hostKeyFingerprint = null;
  }
  int('slots');
  int('lostTimeoutSeconds');
  const gpus = str('gpus');
  if (gpus === '') input.gpus = [];
  else if (!/^\d{1,4}(\s*[,\s]\s*\d{1,4})*$/.test(gpus)) errors.gpus = t('notInteger');
  else input.gpus = gpus.split(/[,\s]+/).map(Number);
  if (existing) input.enabled = form.enabled === 'on';
  return { input, errors };
}

export async function machineRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', permitted('machines.view'));
  const manage = permitted('machines.manage');
  const services = { db: deps.db, secret: deps.secret, keysDir: deps.config.keysDir };
  const rowCtx = (request: FastifyRequest) => ({
    locale: request.locale,
    canManage: can(request.principal, 'machines.manage'),
  });

  async function page(request: FastifyRequest, form?: MachineFormState) {
    return machinesPage(pageContext(request), {
      machines: await listMachines(deps.db),
      canManage: can(request.principal, 'machines.manage'),
      ...(form ? { form: machineForm(request.locale, form) } : {}),
    });
  }

  /** Answers a form that did not save: the form again, errors beside the fields, input kept. */
  async function again(
    request: FastifyRequest,
    reply: FastifyReply,
    machine: MachineView | null,
    form: Form,
    errors: Record<string, string>,
  ) {
    const values = Object.fromEntries(FIELDS.map((f) => [f, f === 'privateKey' ? '' : (form[f] ?? '')]));
    const state: MachineFormState = { machine, csrfToken: request.principal?.csrfToken ?? null, values, errors };
    if (!isHtmx(request)) return sendHtml(reply, await page(request, state), 422);
    reply.header('HX-Retarget', '#machine-form').header('HX-Reswap', 'innerHTML');
    return sendHtml(reply, machineForm(request.locale, state), 422);
  }

  async function save(request: FastifyRequest, form: Form, reply: FastifyReply, existing: MachineView | null) {
    const t = translator(request.locale);
    const { input, errors } = readForm(form, existing, t);
    if (Object.keys(errors).length > 0) return again(request, reply, existing, form, errors);
    let saved: MachineView;
    try {
      saved = existing ? await updateMachine(services, existing.id, input) : await createMachine(services, input);
    } catch (error) {
      if (!(error instanceof ServiceError) || (error.code !== 'invalid' && error.code !== 'conflict')) throw error;
      const field = error.field?.split('.')[0];
      return again(request, reply, existing, form, {
        [field && (FIELDS as readonly string[]).includes(field) ? field : 'form']: error.in(request.locale),
      });
    }
    auditAs(request, {
      action: existing ? 'machine.update' : 'machine.create',
      targetType: 'machine',
      targetId: saved.id,
    });
    if (!isHtmx(request)) return reply.redirect('/machines', 303);
    reply.header('HX-Trigger-After-Swap', 'machine-saved');
    return sendHtml(reply, machineRow(saved, rowCtx(request)));
  }

  app.get('/machines', async (request, reply) => {
    return sendHtml(reply, await page(request));
  });

  app.get('/machines/new', { preHandler: manage }, async (request, reply) => {
    const state: MachineFormState = { machine: null, csrfToken: request.principal?.csrfToken ?? null };
    if (isHtmx(request)) return sendHtml(reply, machineForm(request.locale, state));
    return sendHtml(reply, await page(request, state));
  });

  app.post('/machines', { schema: { body: bodySchema }, preHandler: manage }, async (request, reply) => {
    return save(request, request.body ?? {}, reply, null);
  });

  app.get('/machines/:id/edit', { schema: { params: idParams }, preHandler: manage }, async (request, reply) => {
    const machine = await getMachine(deps.db, intParam(request.params.id, 'machine'));
    const state: MachineFormState = { machine, csrfToken: request.principal?.csrfToken ?? null };
    if (isHtmx(request)) return sendHtml(reply, machineForm(request.locale, state));
    return sendHtml(reply, await page(request, state));
  });

  app.post(
    '/machines/:id',
    { schema: { params: idParams, body: bodySchema }, preHandler: manage },
    async (request, reply) => {
      return save(
        request,
        request.body ?? {},
        reply,
        await getMachine(deps.db, intParam(request.params.id, 'machine')),
      );
    },
  );

  app.post('/machines/:id/probe', { schema: { params: idParams }, preHandler: manage }, async (request, reply) => {
    const id = intParam(request.params.id, 'machine');
    auditAs(request, { action: 'machine.probe', targetType: 'machine', targetId: id });
    await probeMachine({ db: deps.db, client: deps.temporal.client }, id);
    if (!isHtmx(request)) return reply.redirect('/machines', 303);
    return sendHtml(reply, machineRow(await getMachine(deps.db, id), rowCtx(request)));
  });

  app.delete('/machines/:id', { schema: { params: idParams }, preHandler: manage }, async (request, reply) => {
    const id = intParam(request.params.id, 'machine');
    auditAs(request, { action: 'machine.delete', targetType: 'machine', targetId: id });
    await deleteMachine(deps.db, id);
    if (!isHtmx(request)) return reply.redirect('/machines', 303);
    return sendHtml(reply, html``);
  });

  // The form of an existing machine asks with ?machine=<id>, so a worker serving that
  // machine reads the key; a new machine's form asks any worker.
  app.post(
    '/machines/host-key',
    {
      schema: {
        querystring: Type.Object({ machine: Type.Optional(PathId) }),
        body: Type.Object({
          address: Type.Optional(Type.String({ maxLength: 300 })),
          _csrf: Type.Optional(Type.String()),
        }),
      },
      preHandler: manage,
    },
    async (request, reply) => {
      auditAs(request, { action: 'machine.host_key_fetch', detail: { address: request.body?.address ?? '' } });
      const machineId = request.query.machine ? intParam(request.query.machine, 'machine') : null;
      try {
        const found = await fetchHostKey({ db: deps.db, client: deps.temporal.client }, request.body?.address ?? '', {
          machineId,
          timeoutMs: 8000,
        });
        return sendHtml(reply, hostKeyCheck(request.locale, found));
      } catch (error) {
        // Said where the user looks: under the fingerprint field (a bad address, or no worker to read it).
        if (!(error instanceof ServiceError) || (error.code !== 'invalid' && error.code !== 'unavailable')) throw error;
        return sendHtml(
          reply,
          html`<p class="field-error" role="alert">${error.in(request.locale)}</p>`,
          error.code === 'invalid' ? 422 : 503,
        );
      }
    },
  );
}
