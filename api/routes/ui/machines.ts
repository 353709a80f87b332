// Target machines pages: list with health, add / edit, probe, delete, and the host-key
// "fetch and confirm" step. machines.view to look, machines.manage for the rest.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServiceError } from '../../../services/errors.js';
import { createMachine, deleteMachine, fetchHostKey, getMachine, listMachines, probeMachine, updateMachine, type MachineView } from '../../../services/machines.js';
import { html } from '../../../views/html.js';
import { translator } from '../../../views/i18n.js';
import { hostKeyCheck, machineForm, machineRow, machinesPage, type MachineFormState } from '../../../views/pages/machines.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { authorize, can, intParam, permitted } from '../../access.js';
import { auditAs, isHtmx, sendHtml } from './common.js';

type Form = Record<string, string | undefined>;
const FIELDS = ['name', 'address', 'sshUser', 'privateKey', 'privateKeyPath', 'hostKeyFingerprint', 'slots', 'gpus', 'lostTimeoutSeconds', 'enabled'] as const;
const bodySchema = {
  type: 'object',
  properties: { ...Object.fromEntries(FIELDS.map((f) => [f, { type: 'string', maxLength: 20_000 }])), _csrf: { type: 'string' } },
} as const;
const idParams = { type: 'object', properties: { id: { type: 'string', maxLength: 12 } }, required: ['id'] } as const;

/** The form's strings as the service's input; what cannot be read is an error by field. */
function readForm(form: Form, existing: MachineView | null, t: ReturnType<typeof translator>): { input: Record<string, unknown>; errors: Record<string, string> } {
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
    if (str('privateKeyPath') !== '' && str('privateKeyPath') !== existing?.privateKeyPath) input.privateKeyPath = str('privateKeyPath');
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

export async function machineRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  app.addHook('preHandler', permitted('machines.view'));
  const services = { db: deps.db, secret: deps.secret, keysDir: deps.config.keysDir };
  const rowCtx = (request: FastifyRequest) => ({ locale: request.locale, canManage: can(request.principal, 'machines.manage') });

  async function page(request: FastifyRequest, form?: MachineFormState) {
    return machinesPage(pageContext(request), {
      machines: await listMachines(deps.db),
      canManage: can(request.principal, 'machines.manage'),
      ...(form ? { form: machineForm(request.locale, form) } : {}),
    });
  }

  /** Answers a form that did not save: the form again, errors beside the fields, input kept. */
  async function again(request: FastifyRequest, reply: FastifyReply, machine: MachineView | null, form: Form, errors: Record<string, string>) {
    const values = Object.fromEntries(FIELDS.map((f) => [f, f === 'privateKey' ? '' : (form[f] ?? '')]));
    const state: MachineFormState = { machine, csrfToken: request.principal?.csrfToken ?? null, values, errors };
    if (!isHtmx(request)) return sendHtml(reply, await page(request, state), 422);
    reply.header('HX-Retarget', '#machine-form').header('HX-Reswap', 'innerHTML');
    return sendHtml(reply, machineForm(request.locale, state), 422);
  }

  async function save(request: FastifyRequest<{ Body: Form }>, reply: FastifyReply, existing: MachineView | null) {
    const t = translator(request.locale);
    const form = request.body ?? {};
    const { input, errors } = readForm(form, existing, t);
    if (Object.keys(errors).length > 0) return again(request, reply, existing, form, errors);
    let saved: MachineView;
    try {
      saved = existing ? await updateMachine(services, existing.id, input) : await createMachine(services, input);
    } catch (error) {
      if (!(error instanceof ServiceError) || (error.code !== 'invalid' && error.code !== 'conflict')) throw error;
      const field = error.field?.split('.')[0];
      return again(request, reply, existing, form, { [field && (FIELDS as readonly string[]).includes(field) ? field : 'form']: error.message });
    }
    auditAs(request, { action: existing ? 'machine.update' : 'machine.create', targetType: 'machine', targetId: saved.id });
    if (!isHtmx(request)) return reply.redirect('/machines', 303);
    reply.header('HX-Trigger-After-Swap', 'machine-saved');
    return sendHtml(reply, machineRow(saved, rowCtx(request)));
  }

  app.get('/machines', async (request, reply) => {
    return sendHtml(reply, await page(request));
  });

  app.get('/machines/new', async (request, reply) => {
    authorize(request, 'machines.manage');
    const state: MachineFormState = { machine: null, csrfToken: request.principal?.csrfToken ?? null };
    if (isHtmx(request)) return sendHtml(reply, machineForm(request.locale, state));
    return sendHtml(reply, await page(request, state));
  });

  app.post<{ Body: Form }>('/machines', { schema: { body: bodySchema } }, async (request, reply) => {
    authorize(request, 'machines.manage');
    return save(request, reply, null);
  });

  app.get<{ Params: { id: string } }>('/machines/:id/edit', { schema: { params: idParams } }, async (request, reply) => {
    authorize(request, 'machines.manage');
    const machine = await getMachine(deps.db, intParam(request.params.id, 'machine'));
    const state: MachineFormState = { machine, csrfToken: request.principal?.csrfToken ?? null };
    if (isHtmx(request)) return sendHtml(reply, machineForm(request.locale, state));
    return sendHtml(reply, await page(request, state));
  });

  app.post<{ Params: { id: string }; Body: Form }>('/machines/:id', { schema: { params: idParams, body: bodySchema } }, async (request, reply) => {
    authorize(request, 'machines.manage');
    return save(request, reply, await getMachine(deps.db, intParam(request.params.id, 'machine')));
  });

  app.post<{ Params: { id: string } }>('/machines/:id/probe', { schema: { params: idParams } }, async (request, reply) => {
    authorize(request, 'machines.manage');
    const id = intParam(request.params.id, 'machine');
    auditAs(request, { action: 'machine.probe', targetType: 'machine', targetId: id });
    await probeMachine({ db: deps.db, client: deps.temporal.client }, id);
    if (!isHtmx(request)) return reply.redirect('/machines', 303);
    return sendHtml(reply, machineRow(await getMachine(deps.db, id), rowCtx(request)));
  });

  app.delete<{ Params: { id: string } }>('/machines/:id', { schema: { params: idParams } }, async (request, reply) => {
    authorize(request, 'machines.manage');
    const id = intParam(request.params.id, 'machine');
    auditAs(request, { action: 'machine.delete', targetType: 'machine', targetId: id });
    await deleteMachine(deps.db, id);
    if (!isHtmx(request)) return reply.redirect('/machines', 303);
    return sendHtml(reply, html``);
  });

  app.post<{ Body: { address?: string } }>(
    '/machines/host-key',
    { schema: { body: { type: 'object', properties: { address: { type: 'string', maxLength: 300 }, _csrf: { type: 'string' } } } } },
    async (request, reply) => {
        authorize(request, 'machines.manage');
      auditAs(request, { action: 'machine.host_key_fetch', detail: { address: request.body?.address ?? '' } });
      try {
        const found = await fetchHostKey(request.body?.address ?? '', { timeoutMs: 8000 });
        return sendHtml(reply, hostKeyCheck(request.locale, found));
      } catch (error) {
        // Said where the user looks: under the fingerprint field.
        if (!(error instanceof ServiceError) || error.code !== 'invalid') throw error;
        return sendHtml(reply, html`<p class="field-error" role="alert">${error.message}</p>`, 422);
      }
    },
  );
}
