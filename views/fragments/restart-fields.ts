// The template form's restart policy and stall timeout (domain/restart.ts): how many
// times a failed run is followed by a new one, the wait, whether a lost machine counts,
// the classes never restarted, and the silence that marks a run stalled.
import { FAILURE_CLASSES, type RestartPolicy } from '../../domain/restart.js';
import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';

export interface RestartFormValues {
  restartOnFailure?: string;
  restartBackoffSeconds?: string;
  /** A ticked checkbox sends "on". */
  restartOnMachineLost?: string;
  restartExcept?: string[];
  stallSeconds?: string;
}

export function restartFormValues(policy: RestartPolicy, stallSeconds: number | null): RestartFormValues {
  return {
    restartOnFailure: String(policy.onFailure),
    restartBackoffSeconds: String(policy.backoffSeconds),
    ...(policy.onMachineLost ? { restartOnMachineLost: 'on' } : {}),
    restartExcept: [...policy.except],
    stallSeconds: stallSeconds === null ? '' : String(stallSeconds),
  };
}

export const NEW_TEMPLATE_RESTART: RestartFormValues = {
  restartOnFailure: '0',
  restartBackoffSeconds: '30',
  restartExcept: [],
  stallSeconds: '',
};

export function restartFields(locale: Locale, values: RestartFormValues, errors: Record<string, string>): Html {
  const t = translator(locale);
  const error = (key: string) =>
    errors[key] ? html`<p class="field-error" id="template-${key}-error" role="alert">${errors[key]}</p>` : '';
  const number = (key: 'restartOnFailure' | 'restartBackoffSeconds' | 'stallSeconds', label: string, hint?: string) =>
    html`<div class="field"><label for="template-${key}">${label}</label><input id="template-${key}" name="${key}" inputmode="numeric" value="${values[key] ?? ''}"${errors[key] ? html` aria-invalid="true" aria-describedby="template-${key}-error"` : ''}>${error(key)}${hint ? html`<p class="hint">${hint}</p>` : ''}</div>`;
  const except = new Set(values.restartExcept ?? []);
  return html`<fieldset class="restart-policy"><legend>${t('restartPolicy')}</legend>
  ${error('restart')}
  <div class="fieldset-row">
    ${number('restartOnFailure', t('restartOnFailure'), t('restartOnFailureHint'))}
    ${number('restartBackoffSeconds', t('restartBackoff'))}
  </div>
  <label class="check"><input type="checkbox" name="restartOnMachineLost"${values.restartOnMachineLost ? html` checked` : ''}> ${t('restartOnMachineLost')}</label>
  <fieldset class="restart-except"><legend>${t('restartExcept')}</legend>${FAILURE_CLASSES.map(
    (name) =>
      html`<label class="check"><input type="checkbox" name="restartExcept" value="${name}"${except.has(name) ? html` checked` : ''}> ${t(`failureClass_${name}`)}</label>`,
  )}</fieldset>
  ${number('stallSeconds', t('stallSeconds'), t('stallSecondsHint'))}
</fieldset>`;
}
