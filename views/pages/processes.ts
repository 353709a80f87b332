// Training → Training templates → Processes: the processes of one template, live.
import type { ProcessView } from '../../services/processes.js';
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { COLUMNS, processBlock, type RowContext } from '../fragments/process.js';
import { listControls, listUrl, statusCounts, type ListOptions } from '../fragments/process-list-controls.js';
import type { ProcessStatus } from '../../domain/status.js';

export interface ProcessesPageState {
  template: { id: number; name: string; description: string };
  rows: Array<{ view: ProcessView; version: number }>;
  rowContext: RowContext;
  canCreate: boolean;
  /** The cursor this page starts after (null on the first page). */
  after: number | string | null;
  nextCursor: number | string | null;
  options: ListOptions;
  counts: Partial<Record<ProcessStatus, number>>;
  /** The add form, already rendered, when the page is opened at …/processes/new without htmx. */
  form?: Html;
}

export function processesPage(ctx: PageContext, state: ProcessesPageState): Html {
  const t = translator(ctx.locale);
  const { template } = state;
  const base = `/training/templates/${template.id}/processes`;
  const { options } = state;
  const ids = state.rows.map((row) => row.view.id);
  const filtered = options.status !== undefined || options.q !== undefined;
  // Where new processes show up: on top of the newest-first first page, at the end of
  // the oldest-first last page, nowhere else (a sorted or filtered page keeps its rows).
  const newRows =
    options.sort !== 'created' || filtered
      ? 'none'
      : options.order === 'desc'
        ? state.after === null
          ? 'top'
          : 'none'
        : state.nextCursor === null
          ? 'bottom'
          : 'none';
  // The live feed watches this page's id window (its rows, and new ones where they show up).
  const low = ids.length > 0 ? Math.min(...ids) - 1 : typeof state.after === 'number' ? state.after : 0;
  const high = ids.length > 0 ? Math.max(...ids) : low;
  const events = `${base}/events?after=${low}${newRows === 'none' ? `&upTo=${high}` : ''}`;
  const empty = filtered && ids.length === 0 ? t('noMatches') : t('noProcesses');
  return layout(
    { ...ctx, section: 'training' },
    `${t('processes')} · ${template.name}`,
    html`<h1>${t('training')}</h1>
<nav class="tabs"><a class="current" href="/training/templates">${t('trainingTemplates')}</a></nav>
<div class="page-head">
  <div>
    <p class="crumbs"><a href="/training/templates">${t('trainingTemplates')}</a> <span aria-hidden="true">›</span> ${t('processes')}</p>
    <h2 class="template-name">${template.name}</h2>
    ${template.description ? html`<p class="muted">${template.description}</p>` : ''}
  </div>
  ${
    state.canCreate
      ? html`<a class="button primary" id="add-process-button" href="${base}/new" hx-get="${base}/new" hx-target="#add-process" hx-swap="innerHTML">${t('addTrainingProcess')}</a>`
      : ''
  }
</div>
<div id="add-process" hx-on:process-created="this.innerHTML = ''">${state.form ?? ''}</div>
${statusCounts(base, options, state.counts, ctx.locale)}
${listControls(base, options, ctx.locale)}
<table class="grid processes" id="processes" data-events="${events}" data-new-rows="${newRows}">
  <thead><tr>
    <th class="expand"><span class="visually-hidden">${t('showDetails')}</span></th>
    <th>${t('colProcess')}</th><th>${t('colMachine')}</th><th>${t('colStatus')}</th><th>${t('progress')}</th><th class="num">${t('run')}</th><th class="actions">${t('menu')}</th>
  </tr></thead>
  <tbody class="empty-row"><tr><td colspan="${COLUMNS}" class="empty-cell">${empty}</td></tr></tbody>
  ${state.rows.map(({ view, version }) => processBlock(view, state.rowContext, version))}
</table>
<p class="live-state muted" id="live-state" hidden>${t('liveOff')}</p>
${
  state.after !== null || state.nextCursor !== null
    ? html`<nav class="pager">
  ${state.after !== null ? html`<a class="button" href="${listUrl(base, options)}">${t('firstPage')}</a>` : ''}
  ${state.nextCursor !== null ? html`<a class="button" href="${listUrl(base, options, state.nextCursor)}">${t('nextPage')}</a>` : ''}
</nav>`
    : ''
}
<script src="/static/processes.js" defer></script>`,
  );
}
