// Training → Training templates → add / edit a template: the command, parameters, total
// steps and stop grace period. Each run keeps its own copy, so editing changes future runs.
import { TEMPLATE_FIELDS, type TemplateView } from '../../services/templates.js';
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { fill } from '../fragments/format.js';
import { restartFields, restartFormValues, type RestartFormValues } from '../fragments/restart-fields.js';

/** The service's fields that the form sends as one string each; the restart policy has fields of its own. */
type FormField = Exclude<(typeof TEMPLATE_FIELDS)[number], 'restart'>;
export const TEMPLATE_FORM_FIELDS = TEMPLATE_FIELDS.filter((f): f is FormField => f !== 'restart');
export type TemplateFormValues = Partial<Record<FormField, string>> &
  RestartFormValues & {
    /** Names of stored secret variables to remove (checkboxes). */
    secretEnvRemove?: string[];
  };

export function templateFormValues(template: TemplateView): TemplateFormValues {
  return {
    name: template.name,
    description: template.description,
    command: template.command,
    workingDir: template.workingDir ?? '',
    env: Object.entries(template.env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n'),
    params: JSON.stringify(template.params, null, 2),
    totalSteps: template.totalSteps === null ? '' : String(template.totalSteps),
    stopGraceSeconds: String(template.stopGraceSeconds),
    ...restartFormValues(template.restart, template.stallSeconds),
  };
}

export interface TemplateFormState {
  template: TemplateView | null;
  values: TemplateFormValues;
  errors?: Record<string, string>;
  canDelete?: boolean;
}

/**
 * Write-only: the textarea always starts empty (a value once stored is never sent back), stored names
 * can be removed.
 */
function secretEnvField(ctx: PageContext, template: TemplateView | null, errors: Record<string, string>): Html {
  const t = translator(ctx.locale);
  const stored = template?.secretEnvKeys ?? [];
  return html`<div class="field"><label for="template-secretEnv">${t('secretEnv')}</label><textarea id="template-secretEnv" name="secretEnv" rows="2" spellcheck="false" autocomplete="off" placeholder="WANDB_API_KEY=…"${errors.secretEnv ? html` aria-invalid="true" aria-describedby="template-secretEnv-error"` : ''}></textarea>${errors.secretEnv ? html`<p class="field-error" id="template-secretEnv-error">${errors.secretEnv}</p>` : ''}<p class="hint">${t('secretEnvHint')}</p>
  ${
    stored.length > 0
      ? html`<fieldset class="secret-env-stored"><legend>${t('secretEnvStored')}</legend>${stored.map(
          (key) =>
            html`<label class="check"><code>${key}</code> <span class="muted">••••</span> <input type="checkbox" name="secretEnvRemove" value="${key}"> ${t('secretEnvRemove')}</label>`,
        )}</fieldset>`
      : ''
  }</div>`;
}

export function templateFormPage(ctx: PageContext, state: TemplateFormState): Html {
  const t = translator(ctx.locale);
  const { template, values } = state;
  const errors = state.errors ?? {};
  const action = template ? `/training/templates/${template.id}` : '/training/templates';
  const title = template ? t('editTemplate') : t('addTemplate');
  const err = (key: string) =>
    errors[key] ? html`<p class="field-error" id="template-${key}-error">${errors[key]}</p>` : '';
  const inv = (key: string) => (errors[key] ? html` aria-invalid="true" aria-describedby="template-${key}-error"` : '');
  const hint = (text: string) => html`<p class="hint">${text}</p>`;
  const field = (key: FormField, label: string, control: Html, help?: string) =>
    html`<div class="field"><label for="template-${key}">${label}</label>${control}${err(key)}${help ? hint(help) : ''}</div>`;
  const text = (key: FormField, extra: Html = html``) =>
    html`<input id="template-${key}" name="${key}" value="${values[key] ?? ''}"${inv(key)}${extra}>`;
  const area = (key: FormField, rows: number, extra: Html = html``) =>
    html`<textarea id="template-${key}" name="${key}" rows="${rows}" spellcheck="false"${inv(key)}${extra}>${values[key] ?? ''}</textarea>`;
  return layout(
    { ...ctx, section: 'training' },
    title,
    html`<h1>${t('training')}</h1>
<nav class="tabs"><a class="current" href="/training/templates">${t('trainingTemplates')}</a></nav>
<p class="crumbs"><a href="/training/templates">${t('trainingTemplates')}</a> <span aria-hidden="true">›</span> ${title}</p>
<form class="card form template-form" method="post" action="${action}" novalidate>
  <h2>${template ? html`${title}: ${template.name}` : title}</h2>
  <input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}">
  ${errors.form ? html`<p class="error" role="alert">${errors.form}</p>` : ''}
  ${field('name', t('name'), text('name', html` required maxlength="200"`))}
  ${field('description', t('description'), area('description', 2))}
  ${field('command', t('command'), area('command', 3, html` required`), t('commandHint'))}
  <div class="fieldset-row">
    ${field('totalSteps', t('totalSteps'), text('totalSteps', html` inputmode="numeric"`), t('totalStepsHint'))}
    ${field('stopGraceSeconds', t('stopGrace'), text('stopGraceSeconds', html` inputmode="numeric"`), t('stopGraceHint'))}
  </div>
  ${restartFields(ctx.locale, values, errors)}
  ${field('params', t('paramsField'), area('params', 6), t('paramsFieldHint'))}
  ${field('env', t('env'), area('env', 3, html` placeholder="CUDA_CACHE_DISABLE=1"`), t('envHint'))}
  ${secretEnvField(ctx, template, errors)}
  ${field('workingDir', t('workingDir'), text('workingDir', html` spellcheck="false"`), t('workingDirHint'))}
  <div class="form-actions">
    <button type="submit" class="primary">${t('save')}</button>
    <a class="button" href="/training/templates">${t('cancel')}</a>
    ${
      template && state.canDelete
        ? html`<span class="spacer"></span><button type="button" class="danger" hx-delete="/training/templates/${template.id}" hx-confirm="${fill(t('confirmDeleteTemplate'), { name: template.name })}">${t('delete')}</button>`
        : ''
    }
  </div>
  ${template && state.canDelete ? hint(t('templateInUseHint')) : ''}
</form>`,
  );
}
