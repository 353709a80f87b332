// Training monitoring: one chart of lr (green), loss (blue) and test_accuracy (red)
// against the step, for a run of the process, optionally overlaid with another run.
import { MENU_ITEMS } from '../../domain/status.js';
import type { ProcessView } from '../../services/processes.js';
import { html, jsonForScript, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import type { ChartData } from '../fragments/chart-data.js';
import { dateTime } from '../fragments/format.js';
import { logsButton, processUrl, statusBadge } from '../fragments/process.js';

export interface RunOption {
  number: number;
  statusLabel: string;
  startedAt: string | null;
}

export interface MonitoringPageState {
  view: ProcessView;
  runs: RunOption[];
  /** The run shown, and the one overlaid; null when the process never ran. */
  run: number | null;
  compare: number | null;
  data: ChartData | null;
}

export function chartWarnings(warnings: readonly string[]): Html {
  return html`<div id="chart-warnings" class="chart-warnings" aria-live="polite">${warnings.map((w) => html`<p class="warning">⚠ ${w}</p>`)}</div>`;
}

export function monitoringPage(ctx: PageContext, state: MonitoringPageState): Html {
  const t = translator(ctx.locale);
  const { view } = state;
  const title = MENU_ITEMS.find((item) => item.id === 'monitoring')!.label[ctx.locale];
  const processesHref = `/training/templates/${view.templateId}/processes`;
  const runLabel = (r: RunOption) =>
    html`${t('run')} ${r.number} · ${r.statusLabel}${r.startedAt ? html` · ${dateTime(r.startedAt, ctx.locale)}` : ''}`;
  return layout(
    { ...ctx, section: 'training' },
    `${title} · #${view.id}`,
    html`<h1>${t('training')}</h1>
<nav class="tabs"><a class="current" href="/training/templates">${t('trainingTemplates')}</a></nav>
<div class="page-head">
  <div>
    <p class="crumbs"><a href="/training/templates">${t('trainingTemplates')}</a> <span aria-hidden="true">›</span> <a href="${processesHref}" id="back-to-processes">${t('processes')}</a> <span aria-hidden="true">›</span> ${title}</p>
    <h2>${title}: <span class="template-name">${view.templateName}</span> <span class="muted">#${view.id} · ${view.machineName}</span> <span id="run-status">${statusBadge(view.status, ctx.locale)}</span></h2>
  </div>
  <a class="button" href="${processesHref}">${t('backToProcesses')}</a>
</div>
${
  state.run === null
    ? html`<p class="empty">${t('noRuns')}</p>`
    : html`<form class="chart-controls" method="get" action="${processUrl(view.id)}/monitoring" id="run-picker">
  <label>${t('run')}
    <select name="run" data-autosubmit>${state.runs.map((r) => html`<option value="${r.number}"${r.number === state.run ? ' selected' : ''}>${runLabel(r)}</option>`)}</select>
  </label>
  <label>${t('compareWith')}
    <select name="compare" data-autosubmit${state.runs.length < 2 ? ' disabled' : ''}>
      <option value="">${t('noCompare')}</option>
      ${state.runs.filter((r) => r.number !== state.run).map((r) => html`<option value="${r.number}"${r.number === state.compare ? ' selected' : ''}>${runLabel(r)}</option>`)}
    </select>
  </label>
  <noscript><button type="submit">${t('refresh')}</button></noscript>
</form>
${chartWarnings(state.data?.warnings ?? [])}
<div class="card chart-card">
  <div id="chart" class="chart" data-url="${processUrl(view.id)}/metrics?run=${state.run}${state.compare !== null ? `&compare=${state.compare}` : ''}"></div>
  <p class="chart-note muted"><span id="chart-state">${state.data?.live ? t('chartLive') : t('chartFinal')}</span> ${t('downsampledNote')}</p>
</div>
<p class="metrics-export" id="metrics-export">
  <a class="button" download href="/api/v1/processes/${view.id}/metrics/export?run=${state.run}&format=csv">${t('downloadCsv')}</a>
  <a class="button" download href="/api/v1/processes/${view.id}/metrics/export?run=${state.run}&format=jsonl">${t('downloadJsonl')}</a>
  <span class="muted">${t('downloadNote')}</span>
</p>
<section class="card run-logs">
  <div id="monitoring-logs" class="logs-slot">${logsButton(view.id, t('showLogs'), 'monitoring-logs', state.run)}</div>
</section>
<script type="application/json" id="chart-data">${state.data ? jsonForScript(state.data) : 'null'}</script>
<script src="/static/echarts.min.js" defer></script>
<script src="/static/monitoring.js" defer></script>`
}`,
  );
}
