// Training → Training templates → Processes: the processes of one template, live.
import type { ProcessView } from '../../services/processes.js';
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { COLUMNS, processBlock, type RowContext } from '../fragments/process.js';

export interface ProcessesPageState {
  template: { id: number; name: string; description: string };
  rows: Array<{ view: ProcessView; version: number }>;
  rowContext: RowContext;
  canCreate: boolean;
  /** The cursor this page starts after (0 on the first page). */
  after: number;
  nextCursor: number | null;
  /** The add form, already rendered, when the page is opened at …/processes/new without htmx. */
  form?: Html;
}

export function processesPage(ctx: PageContext, state: ProcessesPageState): Html {
  const t = translator(ctx.locale);
  const { template } = state;
  const base = `/training/templates/${template.id}/processes`;
  const lastId = state.rows.at(-1)?.view.id;
  // The live feed watches this page's id window; on the last page new rows join it.
  const upTo = state.nextCursor === null ? '' : `&upTo=${lastId ?? state.after}`;
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
<table class="grid processes" id="processes" data-events="${base}/events?after=${state.after}${upTo}">
  <thead><tr>
    <th class="expand"><span class="visually-hidden">${t('showDetails')}</span></th>
    <th>${t('colProcess')}</th><th>${t('colMachine')}</th><th>${t('colStatus')}</th><th>${t('progress')}</th><th class="num">${t('run')}</th><th class="actions">${t('menu')}</th>
  </tr></thead>
  <tbody class="empty-row"><tr><td colspan="${COLUMNS}" class="empty-cell">${t('noProcesses')}</td></tr></tbody>
  ${state.rows.map(({ view, version }) => processBlock(view, state.rowContext, version))}
</table>
<p class="live-state muted" id="live-state" hidden>${t('liveOff')}</p>
${
  state.after > 0 || state.nextCursor !== null
    ? html`<nav class="pager">
  ${state.after > 0 ? html`<a class="button" href="${base}">${t('firstPage')}</a>` : ''}
  ${state.nextCursor !== null ? html`<a class="button" href="${base}?after=${state.nextCursor}">${t('nextPage')}</a>` : ''}
</nav>`
    : ''
}
<script src="/static/processes.js" defer></script>`,
  );
}
