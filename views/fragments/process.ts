// One training process on the processes page: its block (row + details slot), the row
// the live feed re-renders, the expanded details with their self-refreshing facts, and
// the ☰ menu. Each piece has one template; the page includes them, htmx gets them alone.
import { formatDuration, formatEta } from '../../domain/duration.js';
import { isActive, menuFor, STATUS_LABELS, type MenuItem, type ProcessStatus } from '../../domain/status.js';
import { withoutAddress } from '../../domain/redact-address.js';
import type { ProcessView } from '../../services/processes.js';
import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';
import { dateTime, fill, integer, percent, percentText } from './format.js';

export interface ProcessPermissions {
  /** processes.manage: start, stop, disable, enable. */
  manage: boolean;
  /** processes.delete */
  delete: boolean;
  /** processes.view: monitoring, details, logs. */
  view: boolean;
}

export interface RowContext {
  locale: Locale;
  permissions: ProcessPermissions;
  /** Browser-facing Temporal UI base URL and namespace, for the workflow link. */
  temporalUi?: { url: string; namespace: string } | null;
  /** machines.view: the machine's address beside its name (else the name alone). */
  showMachineAddress?: boolean;
}

const showsAddress = (view: ProcessView, ctx: RowContext) =>
  ctx.showMachineAddress === true && view.machineAddress !== view.machineName;
/** The last error as this reader may see it: without the machine's address unless machines.view. */
const errorOf = (view: ProcessView, ctx: RowContext) =>
  ctx.showMachineAddress === true ? view.lastError : withoutAddress(view).lastError;

export const COLUMNS = 7;
export const processUrl = (id: number) => `/training/processes/${id}`;
const ids = (id: number) => ({
  block: `process-${id}`,
  row: `process-${id}-row`,
  details: `process-${id}-details`,
  facts: `process-${id}-facts`,
  logs: `process-${id}-logs`,
});

export function statusBadge(status: ProcessStatus, locale: Locale): Html {
  return html`<span class="badge ${status}" data-status="${status}">${STATUS_LABELS[status][locale]}</span>`;
}

/** The menu items a user sees: the status table's, filtered by permissions. */
export function visibleMenu(status: ProcessStatus, permissions: ProcessPermissions): MenuItem[] {
  return menuFor(status).filter((item) => {
    if (item.id === 'monitoring') return permissions.view;
    if (item.id === 'delete') return permissions.delete;
    return permissions.manage;
  });
}

/**
 * The ☰ menu as the row carries it: closed and empty. Opening it fetches its items (processMenu) once, so a page of
 * rows does not render every row's actions up front.
 */
function menu(view: ProcessView, ctx: RowContext): Html {
  const t = translator(ctx.locale);
  if (visibleMenu(view.status, ctx.permissions).length === 0) return html``;
  return html`<details class="menu" hx-get="${processUrl(view.id)}/menu" hx-trigger="toggle once" hx-target="find .menu-list" hx-swap="innerHTML">
  <summary title="${t('actions')}" aria-label="${t('actions')}">${t('menu')}</summary>
  <div class="menu-list" role="menu"><span class="muted">${t('loadingMenu')}</span></div>
</details>`;
}

/** The ☰ menu's items for the process as it is now: the status table's, filtered by permissions. */
export function processMenu(view: ProcessView, ctx: RowContext): Html {
  const t = translator(ctx.locale);
  const target = `#${ids(view.id).row}`;
  return html`${visibleMenu(view.status, ctx.permissions).map((item) => {
    const label = item.label[ctx.locale];
    if (item.id === 'monitoring')
      return html`<a role="menuitem" data-action="monitoring" href="${processUrl(view.id)}/monitoring">${label}</a>`;
    if (item.id === 'delete') {
      return html`<button type="button" role="menuitem" class="danger" data-action="delete" hx-delete="${processUrl(view.id)}" hx-target="#${ids(view.id).block}" hx-swap="outerHTML" hx-confirm="${fill(t('confirmDelete'), { id: view.id })}">${label}</button>`;
    }
    return html`<button type="button" role="menuitem" data-action="${item.id}" hx-post="${processUrl(view.id)}/${item.id}" hx-target="${target}" hx-swap="outerHTML">${label}</button>`;
  })}`;
}

function progressCell(view: ProcessView, locale: Locale): Html {
  const { step, totalSteps } = view.progress;
  const pct = percent(step, totalSteps);
  if (step === null) return html`<span class="muted">—</span>`;
  if (pct === null) return html`<span class="steps">${integer(step, locale)}</span>`;
  return html`<div class="progress" title="${integer(step, locale)} / ${integer(totalSteps!, locale)}">
    <div class="bar"><span style="width: ${pct.toFixed(1)}%"></span></div><span class="pct">${percentText(pct, locale)}</span>
  </div>`;
}

/** The row the live feed re-renders; `version` lets the page drop a stale copy. */
export function processRow(
  view: ProcessView,
  ctx: RowContext,
  version: number,
  options: { deleting?: boolean } = {},
): Html {
  const t = translator(ctx.locale);
  const id = ids(view.id);
  return html`<tr id="${id.row}" class="process-row${options.deleting ? ' deleting' : ''}" data-id="${view.id}" data-version="${version}" data-status="${view.status}">
  <td class="expand">${ctx.permissions.view ? html`<button type="button" class="expander" aria-expanded="false" aria-controls="${id.details}" data-details-url="${processUrl(view.id)}/details" data-label-show="${t('showDetails')}" data-label-hide="${t('hideDetails')}" title="${t('showDetails')}" aria-label="${t('showDetails')}"><span class="chevron" aria-hidden="true"></span></button>` : ''}</td>
  <td class="name">#${view.id} <span class="process-name">${view.name}</span>${view.sweepId === null ? '' : html` <a class="sweep-link muted" href="/training/sweeps/${view.sweepId}">${fill(t('sweepLink'), { id: String(view.sweepId) })}</a>`}</td>
  <td><span class="machine-name">${view.machineName}</span>${showsAddress(view, ctx) ? html` <span class="muted">${view.machineAddress}</span>` : ''}</td>
  <td class="status">${options.deleting ? html`<span class="badge deleting">${t('deleting')}</span>` : statusBadge(view.status, ctx.locale)}${attemptNote(view, ctx.locale)}${view.stalled ? html` <span class="badge stalled" title="${t('stalledTitle')}">${t('stalledBadge')}</span>` : ''}${view.machineUnreachableSince ? html` <span class="badge unreachable" title="${view.machineUnreachableSince}">${t('machineUnreachable')}</span>` : ''}${errorOf(view, ctx) ? html`<div class="row-error" title="${errorOf(view, ctx)}">${firstLine(errorOf(view, ctx)!)}</div>` : ''}</td>
  <td class="progress-cell">${progressCell(view, ctx.locale)}</td>
  <td class="num">${view.runNumber ?? '—'}</td>
  <td class="actions">${options.deleting ? '' : menu(view, ctx)}</td>
</tr>`;
}

/** "· attempt 2/4" while a restart chain is under way (or has ended past its first attempt). */
export function attemptNote(view: ProcessView, locale: Locale): Html | string {
  if (view.maxAttempts <= 1 || (view.attempt <= 1 && !isActive(view.status))) return '';
  const text = fill(translator(locale)('attemptOf'), { n: String(view.attempt), of: String(view.maxAttempts) });
  return html` <span class="attempt" data-attempt="${view.attempt}">· ${text}</span>`;
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}

/** The collapsed details slot; the expander fills it with processDetails. */
export function detailsSlot(processId: number): Html {
  return html`<tr id="${ids(processId).details}" class="details" hidden></tr>`;
}

/** A process on the page: its row and its details slot, in a tbody of its own. */
export function processBlock(
  view: ProcessView,
  ctx: RowContext,
  version: number,
  options: { deleting?: boolean } = {},
): Html {
  return html`<tbody id="${ids(view.id).block}" class="process" data-id="${view.id}">
${processRow(view, ctx, version, options)}
${detailsSlot(view.id)}
</tbody>`;
}

/** The facts of the expanded details; they re-poll themselves while the process is active. */
export function processFacts(view: ProcessView, ctx: RowContext, now = Date.now()): Html {
  const t = translator(ctx.locale);
  const id = ids(view.id);
  const { step, totalSteps } = view.progress;
  const pct = percent(step, totalSteps);
  const started = view.startedAt ? Date.parse(view.startedAt) : null;
  const ended = view.finishedAt ? Date.parse(view.finishedAt) : null;
  const elapsed = started === null ? null : ((ended !== null && ended >= started ? ended : now) - started) / 1000;
  const active = isActive(view.status);
  const progressText =
    step === null
      ? '—'
      : totalSteps === null
        ? integer(step, ctx.locale)
        : `${integer(step, ctx.locale)} / ${integer(totalSteps, ctx.locale)}${pct === null ? '' : ` (${percentText(pct, ctx.locale)})`}`;
  const ui = ctx.temporalUi;
  return html`<div id="${id.facts}" class="facts" hx-get="${processUrl(view.id)}/facts" hx-trigger="${active ? "refresh, every 2s [document.visibilityState === 'visible']" : 'refresh'}" hx-swap="outerHTML">
  <dl>
    <div class="fact eta"><dt>${t('timeLeft')}</dt><dd data-fact="eta">${active ? formatEta(view.etaSeconds, ctx.locale) : '—'}</dd></div>
    <div class="fact"><dt>${t('progress')}</dt><dd data-fact="progress">${progressText}</dd></div>
    <div class="fact"><dt>${t('startedAt')}</dt><dd data-fact="started">${view.startedAt ? dateTime(view.startedAt, ctx.locale) : t('notStartedYet')}</dd></div>
    ${view.finishedAt && !active ? html`<div class="fact"><dt>${t('finishedAt')}</dt><dd data-fact="finished">${dateTime(view.finishedAt, ctx.locale)}</dd></div>` : ''}
    <div class="fact"><dt>${t('elapsed')}</dt><dd data-fact="elapsed">${elapsed === null ? '—' : formatDuration(elapsed, ctx.locale)}</dd></div>
    <div class="fact"><dt>${t('colMachine')}</dt><dd data-fact="machine">${view.machineName}${showsAddress(view, ctx) ? html` <span class="muted">(${view.machineAddress})</span>` : ''}</dd></div>
    <div class="fact"><dt>${t('run')}</dt><dd data-fact="run">${view.runNumber ?? '—'}</dd></div>
    <div class="fact"><dt>${t('colStatus')}</dt><dd>${statusBadge(view.status, ctx.locale)}</dd></div>
  </dl>
  ${Object.keys(view.ownParams).length > 0 ? html`<p class="params" data-fact="params"><span class="muted">${t('paramsOverride')}:</span> <code>${JSON.stringify(view.ownParams)}</code></p>` : ''}
  ${view.machineUnreachableSince ? html`<p class="warning" data-fact="unreachable">${fill(t('machineUnreachableSince'), { time: view.machineUnreachableSince })}</p>` : ''}
  ${errorOf(view, ctx) ? html`<div class="last-error" data-fact="error"><strong>${t('lastError')}:</strong> <pre>${errorOf(view, ctx)}</pre></div>` : ''}
  <p class="links">
    ${ctx.permissions.view ? html`<a href="${processUrl(view.id)}/monitoring">${menuLabel('monitoring', ctx.locale)}</a>` : ''}
    ${ui ? html`<a href="${ui.url.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(ui.namespace)}/workflows/${encodeURIComponent(view.workflowId)}" target="_blank" rel="noopener" data-link="temporal">${t('temporalWorkflow')} ↗</a>` : ''}
  </p>
</div>`;
}

function menuLabel(id: 'monitoring', locale: Locale): string {
  return menuFor('created').find((item) => item.id === id)!.label[locale];
}

/** The expanded details: facts, and the logs one click away. */
export function processDetails(view: ProcessView, ctx: RowContext): Html {
  const t = translator(ctx.locale);
  const id = ids(view.id);
  return html`<tr id="${id.details}" class="details">
  <td colspan="${COLUMNS}">
    ${processFacts(view, ctx)}
    <div id="${id.logs}" class="logs-slot">${logsButton(view.id, t('showLogs'), id.logs)}</div>
  </td>
</tr>`;
}

export function logsButton(processId: number, label: string, slotId: string, run?: number): Html {
  const query = `?slot=${encodeURIComponent(slotId)}${run === undefined ? '' : `&run=${run}`}`;
  return html`<button type="button" class="small" data-logs hx-get="${processUrl(processId)}/logs${query}" hx-target="#${slotId}" hx-swap="innerHTML">${label}</button>`;
}

export interface LogTail {
  run: number;
  stdout: string;
  stderr: string;
  events: Array<{ at: string; level: string; message: string; run: number | null }>;
}

/** The stdout/stderr tail of a run and the process log; null when nothing has run yet. */
export function logsPanel(processId: number, tail: LogTail | null, ctx: { locale: Locale; slotId: string }): Html {
  const t = translator(ctx.locale);
  if (!tail) return html`<p class="muted">${t('notStartedYet')}</p>`;
  const pre = (text: string) =>
    text.trim() === '' ? html`<pre class="log empty">${t('emptyOutput')}</pre>` : html`<pre class="log">${text}</pre>`;
  return html`<div class="logs" data-run="${tail.run}">
  <div class="logs-head"><strong>${t('run')} ${tail.run}</strong>
    <button type="button" class="small" hx-get="${processUrl(processId)}/logs?run=${tail.run}&slot=${encodeURIComponent(ctx.slotId)}" hx-target="#${ctx.slotId}" hx-swap="innerHTML">${t('refresh')}</button>
  </div>
  <div class="log-columns">
    <section><h3>${t('stdout')}</h3>${pre(tail.stdout)}</section>
    <section><h3>${t('stderr')}</h3>${pre(tail.stderr)}</section>
  </div>
  ${
    tail.events.length > 0
      ? html`<section><h3>${t('processLog')}</h3><ul class="events">${tail.events.map(
          (e) => html`<li class="${e.level}">${dateTime(e.at, ctx.locale)} — ${e.message}</li>`,
        )}</ul></section>`
      : ''
  }
</div>`;
}
