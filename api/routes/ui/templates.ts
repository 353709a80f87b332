// Training templates: add, edit and delete (templates.manage). The list itself is the
// Training page (api/routes/pages.ts).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TOptional, type TString } from 'typebox';
import { ServiceError } from '../../../services/errors.js';
import {
  createTemplate,
  deleteTemplate,
  ENV_KEY,
  getTemplate,
  TEMPLATE_FIELDS,
  updateTemplate,
  type TemplateView,
} from '../../../services/templates.js';
import { fill } from '../../../views/fragments/format.js';
import { translator } from '../../../views/i18n.js';
import {
  TEMPLATE_FORM_FIELDS,
  templateFormPage,
  templateFormValues,
  type TemplateFormValues,
} from '../../../views/pages/template-form.js';
import { NEW_TEMPLATE_RESTART } from '../../../views/fragments/restart-fields.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { PathIdParams } from '../params.js';
import { intParam, permitted } from '../../access.js';
import { auditAs, isHtmx, sendHtml } from './common.js';

const formFields = Object.fromEntries(
  TEMPLATE_FORM_FIELDS.map((f) => [f, Type.Optional(Type.String({ maxLength: 200_000 }))]),
) as Record<(typeof TEMPLATE_FORM_FIELDS)[number], TOptional<TString>>;
const bodySchema = Type.Object({
  ...formFields,
  // One checkbox arrives as a string; form validation (api/validation.ts) makes it a list of one.
  secretEnvRemove: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 200 })),
  restartOnFailure: Type.Optional(Type.String({ maxLength: 20 })),
  restartBackoffSeconds: Type.Optional(Type.String({ maxLength: 20 })),
  restartOnMachineLost: Type.Optional(Type.String({ maxLength: 10 })),
  restartExcept: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { maxItems: 10 })),
  _csrf: Type.Optional(Type.String()),
});
const idParams = PathIdParams;

/** The form's strings as the service's input; what cannot even be parsed is an error by field. */
function readForm(
  form: TemplateFormValues,
  t: ReturnType<typeof translator>,
): { input: Record<string, unknown>; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const input: Record<string, unknown> = {
    name: (form.name ?? '').trim(),
    description: form.description ?? '',
    command: form.command ?? '',
    workingDir: (form.workingDir ?? '').trim() === '' ? null : (form.workingDir ?? '').trim(),
  };
  if (input.name === '') errors.name = t('required');
  if ((form.command ?? '').trim() === '') errors.command = t('required');
  const optionalInt = (key: 'totalSteps' | 'stopGraceSeconds' | 'stallSeconds', empty: number | null) => {
    const raw = (form[key] ?? '').trim();
    if (raw === '') input[key] = empty;
    else if (!/^\d{1,10}$/.test(raw)) errors[key] = t('notInteger');
    else input[key] = Number(raw);
  };
  optionalInt('totalSteps', null);
  optionalInt('stopGraceSeconds', 30);
  optionalInt('stallSeconds', null);
  // The restart policy: its numbers checked here as numbers, its classes by the service.
  const restart: Record<string, unknown> = {
    onMachineLost: form.restartOnMachineLost !== undefined,
    except: form.restartExcept ?? [],
  };
  for (const [key, field, empty] of [
    ['onFailure', 'restartOnFailure', 0],
    ['backoffSeconds', 'restartBackoffSeconds', 30],
  ] as const) {
    const raw = (form[field] ?? '').trim();
    if (raw === '') restart[key] = empty;
    else if (!/^\d{1,10}$/.test(raw)) errors[field] = t('notInteger');
    else restart[key] = Number(raw);
  }
  input.restart = restart;
  const params = (form.params ?? '').trim();
  if (params === '') input.params = {};
  else {
    try {
      const parsed: unknown = JSON.parse(params);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) errors.params = t('mustBeObject');
      else input.params = parsed;
    } catch (error) {
      errors.params = fill(t('invalidJson'), { detail: (error as Error).message });
    }
  }
  const env: Record<string, string> = {};
  (form.env ?? '').split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || errors.env) return;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!ENV_KEY.test(key)) errors.env = fill(t('envLineError'), { n: i + 1 });
    else env[key] = line.slice(eq + 1);
  });
  input.env = env;
  // Secret variables: new or replaced values, and stored names ticked for removal.
  const secretEnv: Record<string, string | null> = {};
  for (const key of form.secretEnvRemove ?? []) if (ENV_KEY.test(key)) secretEnv[key] = null;
  (form.secretEnv ?? '').split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || errors.secretEnv) return;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!ENV_KEY.test(key)) errors.secretEnv = fill(t('envLineError'), { n: i + 1 });
    else secretEnv[key] = line.slice(eq + 1);
  });
  if (Object.keys(secretEnv).length > 0) input.secretEnv = secretEnv;
  return { input, errors };
}

export async function templateRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', permitted('templates.manage'));

  function formPage(
    request: FastifyRequest,
    reply: FastifyReply,
    template: TemplateView | null,
    values: TemplateFormValues,
    errors?: Record<string, string>,
  ) {
    const body = templateFormPage(pageContext(request), {
      template,
      values,
      ...(errors ? { errors } : {}),
      canDelete: template !== null,
    });
    return sendHtml(reply, body, errors ? 422 : 200);
  }

  async function save(
    request: FastifyRequest,
    form: TemplateFormValues,
    reply: FastifyReply,
    existing: TemplateView | null,
  ) {
    const { input, errors } = readForm(form, translator(request.locale));
    if (Object.keys(errors).length > 0) return formPage(request, reply, existing, form, errors);
    let saved: TemplateView;
    try {
      saved = existing
        ? await updateTemplate(deps.db, existing.id, input, { secret: deps.secret })
        : await createTemplate(deps.db, input, { secret: deps.secret });
    } catch (error) {
      if (!(error instanceof ServiceError) || (error.code !== 'invalid' && error.code !== 'conflict')) throw error;
      const field = error.field?.split('.')[0];
      return formPage(request, reply, existing, form, {
        [field && (TEMPLATE_FIELDS as readonly string[]).includes(field) ? field : 'form']: error.in(request.locale),
      });
    }
    auditAs(request, {
      action: existing ? 'template.update' : 'template.create',
      targetType: 'template',
      targetId: saved.id,
    });
    // A new template goes straight to where its processes are added.
    return reply.redirect(existing ? '/training/templates' : `/training/templates/${saved.id}/processes`, 303);
  }

  app.get('/training/templates/new', async (request, reply) => {
    return formPage(request, reply, null, { stopGraceSeconds: '30', params: '{}', ...NEW_TEMPLATE_RESTART });
  });

  app.post('/training/templates', { schema: { body: bodySchema } }, async (request, reply) => {
    return save(request, request.body ?? {}, reply, null);
  });

  app.get('/training/templates/:id/edit', { schema: { params: idParams } }, async (request, reply) => {
    const template = await getTemplate(deps.db, intParam(request.params.id, 'template'));
    return formPage(request, reply, template, templateFormValues(template));
  });

  app.post('/training/templates/:id', { schema: { params: idParams, body: bodySchema } }, async (request, reply) => {
    return save(
      request,
      request.body ?? {},
      reply,
      await getTemplate(deps.db, intParam(request.params.id, 'template')),
    );
  });

  app.delete('/training/templates/:id', { schema: { params: idParams } }, async (request, reply) => {
    const id = intParam(request.params.id, 'template');
    auditAs(request, { action: 'template.delete', targetType: 'template', targetId: id });
    await deleteTemplate(deps.db, id);
    if (isHtmx(request)) return reply.header('HX-Redirect', '/training/templates').code(200).send('');
    return reply.redirect('/training/templates', 303);
  });
}
