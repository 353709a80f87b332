// "Add training process": choose the target machine (and optionally override
// hyperparameters). Returned alone to htmx, or inside a full page without it.
import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';
import { fill, fillHtml } from './format.js';

export interface MachineOption {
  id: number;
  name: string;
  /** Null for a user without machines.view: they see the name only. */
  address: string | null;
  enabled: boolean;
}

export interface AddProcessFormState {
  templateId: number;
  templateParams: Record<string, unknown>;
  machines: MachineOption[];
  csrfToken: string | null;
  /** May the user add machines? Then the hint links to the machines page. */
  canAddMachines: boolean;
  values?: {
    machineIds?: string[];
    params?: string;
    grid?: string;
    perMachine?: string;
    name?: string;
    start?: boolean;
  };
  errors?: { machineId?: string; params?: string; grid?: string; perMachine?: string; name?: string; form?: string };
}

export function machineLabel(machine: { name: string; address: string | null }): string {
  return machine.address === null || machine.name === machine.address
    ? machine.name
    : `${machine.address} — ${machine.name}`;
}

export function addProcessForm(locale: Locale, state: AddProcessFormState): Html {
  const t = translator(locale);
  const action = `/training/templates/${state.templateId}/processes`;
  const errors = state.errors ?? {};
  const values = state.values ?? {};
  const enabled = state.machines.filter((m) => m.enabled);
  const selected = values.machineIds ?? (enabled.length === 1 ? [String(enabled[0]!.id)] : []);
  const hint = state.canAddMachines
    ? fillHtml(t('machineHintManage'), { link: html`<a href="/machines">${t('targetMachines')}</a>` })
    : html`${t('machineHintAsk')}`;
  const invalid = (field: keyof NonNullable<AddProcessFormState['errors']>) =>
    errors[field] ? html` aria-invalid="true" aria-describedby="add-process-${field}-error"` : '';
  return html`<form id="add-process-form" class="card form" method="post" action="${action}" hx-post="${action}" hx-target="#processes" hx-swap="beforeend" novalidate>
  <h2>${t('addTrainingProcess')}</h2>
  <input type="hidden" name="_csrf" value="${state.csrfToken ?? ''}">
  ${errors.form ? html`<p class="error" role="alert">${errors.form}</p>` : ''}
  <div class="field">
    <label for="add-process-machine">${state.machines.some((m) => m.address !== null) ? t('targetMachineAddress') : t('machineField')}</label>
    ${
      state.machines.length === 0
        ? html`<p class="empty small">${t('noMachines')}</p>`
        : html`<select id="add-process-machine" name="machineId" multiple size="${Math.min(Math.max(state.machines.length, 2), 6)}" required${invalid('machineId')}>
      ${state.machines.map(
        (m) =>
          html`<option value="${m.id}"${selected.includes(String(m.id)) ? ' selected' : ''}${m.enabled ? '' : ' disabled'}>${machineLabel(m)}${m.enabled ? '' : ` ${t('machineDisabledSuffix')}`}</option>`,
      )}
    </select>`
    }
    ${errors.machineId ? html`<p class="field-error" id="add-process-machineId-error">${errors.machineId}</p>` : ''}
    <p class="hint">${t('machinesManyHint')} ${hint}</p>
  </div>
  <div class="field">
    <label for="add-process-per-machine">${t('perMachine')}</label>
    <input id="add-process-per-machine" name="perMachine" type="number" min="1" max="500" value="${values.perMachine ?? '1'}"${invalid('perMachine')}>
    ${errors.perMachine ? html`<p class="field-error" id="add-process-perMachine-error">${errors.perMachine}</p>` : ''}
  </div>
  <div class="field">
    <label for="add-process-name">${t('processNameField')}</label>
    <input id="add-process-name" name="name" type="text" maxlength="200" value="${values.name ?? ''}"${invalid('name')}>
    ${errors.name ? html`<p class="field-error" id="add-process-name-error">${errors.name}</p>` : ''}
    <p class="hint">${t('processNameHint')}</p>
  </div>
  <div class="field">
    <label for="add-process-params">${t('paramsOverride')}</label>
    <textarea id="add-process-params" name="params" rows="3" spellcheck="false" placeholder='{"learning_rate": 0.02}'${invalid('params')}>${values.params ?? ''}</textarea>
    ${errors.params ? html`<p class="field-error" id="add-process-params-error">${errors.params}</p>` : ''}
    <p class="hint">${fill(t('paramsHint'), { params: JSON.stringify(state.templateParams) })}</p>
  </div>
  <div class="field">
    <label for="add-process-grid">${t('sweepGrid')}</label>
    <textarea id="add-process-grid" name="grid" rows="3" spellcheck="false" placeholder="learning_rate = 0.01, 0.001"${invalid('grid')}>${values.grid ?? ''}</textarea>
    ${errors.grid ? html`<p class="field-error" id="add-process-grid-error">${errors.grid}</p>` : ''}
    <p class="hint">${t('sweepGridHint')}</p>
  </div>
  <div class="field">
    <label><input id="add-process-start" name="start" type="checkbox" value="on"${values.start ? ' checked' : ''}> ${t('startNow')}</label>
  </div>
  <div class="form-actions">
    <button type="submit" class="primary"${state.machines.length === 0 ? ' disabled' : ''}>${t('save')}</button>
    <a class="button" href="${action}" data-dismiss="#add-process">${t('cancel')}</a>
  </div>
</form>`;
}
