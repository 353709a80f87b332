// Target machines: the list with each machine's health from its last probe, and the
// add / edit form with the host-key "fetch and confirm" step.
import type { MachineView } from '../../services/machines.js';
import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { dateTime, fill } from '../fragments/format.js';

export interface MachineFormState {
  machine: MachineView | null;
  csrfToken: string | null;
  values?: Record<string, string>;
  errors?: Record<string, string>;
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(bytes >= 100 * 1024 ** 3 ? 0 : 1)} GiB`;
}

export function healthCell(machine: MachineView, locale: Locale): Html {
  const t = translator(locale);
  const probe = machine.probe;
  if (!probe) return html`<span class="health unknown">${t('healthUnknown')}</span>`;
  const when = probe.probedAt ?? machine.probedAt;
  const title = when ? html` title="${t('probedAt')}: ${when}"` : '';
  if (!probe.reachable)
    return html`<span class="health down"${title}>${t('healthDown')}</span>${probe.error ? html`<div class="muted small-text">${probe.error}</div>` : ''}`;
  if (probe.hostKeyMatches === false) return html`<span class="health down"${title}>${t('hostKeyMismatch')}</span>`;
  const extras = [
    probe.freeDiskBytes !== undefined ? fill(t('freeDisk'), { size: gib(probe.freeDiskBytes) }) : null,
    probe.gpus && probe.gpus.length > 0 ? fill(t('gpuCount'), { n: probe.gpus.length }) : null,
  ].filter((x): x is string => x !== null);
  return html`<span class="health ok"${title}>${t('healthOk')}</span>${extras.length ? html`<div class="muted small-text">${extras.join(' · ')}</div>` : ''}${when ? html`<div class="muted small-text">${dateTime(when, locale)}</div>` : ''}`;
}

export function machineRow(machine: MachineView, ctx: { locale: Locale; canManage: boolean }): Html {
  const t = translator(ctx.locale);
  const local = machine.kind === 'local';
  return html`<tr id="machine-${machine.id}" data-id="${machine.id}"${machine.enabled ? '' : html` class="disabled"`}>
  <td class="name">${machine.name}${machine.enabled ? '' : html` <span class="badge disabled">${t('disabledMachine')}</span>`}</td>
  <td>${local ? html`<span class="muted">${t('localMachine')}</span>` : html`<code>${machine.address}</code>`}</td>
  <td>${machine.sshUser ?? '—'}</td>
  <td class="num">${machine.slots}${machine.gpus.length ? html` <span class="muted">(GPU ${machine.gpus.join(', ')})</span>` : ''}</td>
  <td>${healthCell(machine, ctx.locale)}</td>
  <td class="actions">${
    ctx.canManage
      ? html`<div class="row-actions">
    ${
      machine.enabled
        ? html`<button type="button" class="small" hx-post="/machines/${machine.id}/probe" hx-target="#machine-${machine.id}" hx-swap="outerHTML">${t('probe')}</button>`
        : // A disabled button shows no tooltip in every browser, so the reason is also written beside it.
          html`<span class="probe-off" title="${t('probeDisabledWhy')}"><button type="button" class="small" disabled aria-describedby="machine-${machine.id}-probe-why">${t('probe')}</button> <span class="muted small-text" id="machine-${machine.id}-probe-why">${t('probeDisabledWhy')}</span></span>`
    }
    <a class="button small" href="/machines/${machine.id}/edit" hx-get="/machines/${machine.id}/edit" hx-target="#machine-form" hx-swap="innerHTML">${t('edit')}</a>
    ${local ? '' : html`<button type="button" class="small danger" hx-delete="/machines/${machine.id}" hx-target="#machine-${machine.id}" hx-swap="outerHTML" hx-confirm="${fill(t('confirmDeleteMachine'), { name: machine.name })}">${t('delete')}</button>`}
  </div>`
      : ''
  }</td>
</tr>`;
}

/** What the "fetch" step found, with the button that confirms it into the field. */
export function hostKeyCheck(locale: Locale, found: { address: string; fingerprint: string; keyType: string }): Html {
  const t = translator(locale);
  return html`<div class="fingerprint-confirm">
  <p>${fill(t('fingerprintPresented'), { address: found.address, type: found.keyType })}: <code data-fingerprint>${found.fingerprint}</code></p>
  <p class="hint">${t('fingerprintCompare')}</p>
  <button type="button" class="small primary" data-fingerprint-value="${found.fingerprint}" data-fingerprint-target="#machine-fingerprint" data-confirmed="${t('fingerprintConfirmed')}">${t('confirmFingerprint')}</button>
</div>`;
}

export function machineForm(locale: Locale, state: MachineFormState): Html {
  const t = translator(locale);
  const m = state.machine;
  const local = m?.kind === 'local';
  const v = (key: string, fallback: string) => state.values?.[key] ?? fallback;
  const errors = state.errors ?? {};
  const action = m ? `/machines/${m.id}` : '/machines';
  const err = (key: string) =>
    errors[key] ? html`<p class="field-error" id="machine-${key}-error">${errors[key]}</p>` : '';
  const inv = (key: string) => (errors[key] ? html` aria-invalid="true" aria-describedby="machine-${key}-error"` : '');
  const input = (
    key: string,
    label: string,
    fallback: string,
    extra: { type?: string; hint?: string; required?: boolean; placeholder?: string } = {},
  ) =>
    html`<div class="field">
    <label for="machine-${key}">${label}</label>
    <input id="machine-${key}" name="${key}" type="${extra.type ?? 'text'}" value="${v(key, fallback)}"${extra.required ? ' required' : ''}${extra.placeholder ? html` placeholder="${extra.placeholder}"` : ''} autocomplete="off" spellcheck="false"${inv(key)}>
    ${err(key)}${extra.hint ? html`<p class="hint">${extra.hint}</p>` : ''}
  </div>`;
  return html`<form id="machine-form-inner" class="card form" method="post" action="${action}" hx-post="${action}" hx-target="${m ? `#machine-${m.id}` : '#machine-rows'}" hx-swap="${m ? 'outerHTML' : 'beforeend'}" novalidate>
  <h2>${m ? html`${t('editMachine')}: ${m.name}` : t('addMachine')}</h2>
  <input type="hidden" name="_csrf" value="${state.csrfToken ?? ''}">
  ${errors.form ? html`<p class="error" role="alert">${errors.form}</p>` : ''}
  ${
    local
      ? ''
      : html`<div class="fieldset-row">
    ${input('name', t('name'), m?.name ?? '', { required: true, placeholder: 'gpu-box-1' })}
    ${input('address', t('addressField'), m?.address ?? '', { required: true, placeholder: '10.0.0.12:22' })}
    ${input('sshUser', t('sshUser'), m?.sshUser ?? '', { required: true, placeholder: 'trainer' })}
  </div>
  <div class="field">
    <label for="machine-privateKey">${t('privateKey')}</label>
    <textarea id="machine-privateKey" name="privateKey" rows="4" spellcheck="false" placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"${inv('privateKey')}>${v('privateKey', '')}</textarea>
    ${err('privateKey')}
    <p class="hint">${m?.hasPrivateKey ? t('privateKeyKeep') : t('privateKeyHint')}</p>
  </div>
  ${input('privateKeyPath', t('privateKeyPath'), m?.privateKeyPath ?? '', { hint: t('privateKeyPathHint') })}
  <div class="field">
    <label for="machine-fingerprint">${t('hostKeyFingerprint')}</label>
    <div class="input-with-button">
      <input id="machine-fingerprint" name="hostKeyFingerprint" value="${v('hostKeyFingerprint', m?.hostKeyFingerprint ?? '')}" placeholder="SHA256:…" autocomplete="off" spellcheck="false"${inv('hostKeyFingerprint')}>
      <button type="button" class="small" hx-post="/machines/host-key${m ? `?machine=${m.id}` : ''}" hx-include="#machine-address" hx-target="#host-key-check" hx-swap="innerHTML">${t('fetchFingerprint')}</button>
    </div>
    ${err('hostKeyFingerprint')}
    <div id="host-key-check"></div>
    <p class="hint">${t('fingerprintHint')}</p>
  </div>`
  }
  <div class="fieldset-row">
    ${input('slots', t('slots'), String(m?.slots ?? 1), { type: 'number', hint: t('slotsHint'), required: true })}
    ${input('gpus', t('gpus'), (m?.gpus ?? []).join(', '), { hint: t('gpusHint'), placeholder: '0, 1' })}
    ${input('lostTimeoutSeconds', t('lostTimeout'), String(m?.lostTimeoutSeconds ?? 600), { type: 'number', hint: t('lostTimeoutHint') })}
  </div>
  ${
    m
      ? html`<div class="field"><label class="check"><input type="checkbox" name="enabled" value="on"${(state.values ? state.values.enabled === 'on' : m.enabled) ? ' checked' : ''}> ${t('enabledField')}</label></div>`
      : ''
  }
  <div class="form-actions">
    <button type="submit" class="primary">${t('save')}</button>
    <a class="button" href="/machines" data-dismiss="#machine-form">${t('cancel')}</a>
  </div>
</form>`;
}

export interface MachinesPageState {
  machines: MachineView[];
  canManage: boolean;
  form?: Html;
}

export function machinesPage(ctx: PageContext, state: MachinesPageState): Html {
  const t = translator(ctx.locale);
  return layout(
    { ...ctx, section: 'machines' },
    t('targetMachines'),
    html`<div class="page-head">
  <div><h1>${t('targetMachines')}</h1><p class="muted">${t('machinesIntro')}</p></div>
  ${state.canManage ? html`<a class="button primary" href="/machines/new" hx-get="/machines/new" hx-target="#machine-form" hx-swap="innerHTML">${t('addMachine')}</a>` : ''}
</div>
<div id="machine-form" hx-on:machine-saved="this.innerHTML = ''">${state.form ?? ''}</div>
<table class="grid" id="machines">
  <thead><tr><th>${t('name')}</th><th>${t('targetMachineAddress')}</th><th>${t('sshUser')}</th><th class="num">${t('slots')}</th><th>${t('health')}</th><th class="actions"></th></tr></thead>
  <tbody id="machine-rows">
  ${state.machines.map((m) => machineRow(m, { locale: ctx.locale, canManage: state.canManage }))}
  </tbody>
</table>`,
  );
}
