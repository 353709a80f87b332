// A sweep: its processes with the params that differ from the template's and the final
// and best value of one metric, sortable by any column (links; no script needed), and
// "compare": the ticked processes' curves of that metric on one chart (static/sweep.js).
import type { SweepCurve } from '../../services/sweep-curves.js';
import type { SweepProcess } from '../../services/sweeps.js';
import { html, jsonForScript, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { isActive } from '../../domain/status.js';
import { attemptNote, processUrl, statusBadge } from '../fragments/process.js';

export interface SweepPageState {
  id: number;
  templateId: number;
  name: string;
  metric: string;
  differing: string[];
  processes: SweepProcess[];
  /** `final`, `best`, `name` or a param key; descending when `desc`. */
  sort: string;
  desc: boolean;
  /** Ticked process ids, and their curves of `metric`. */
  compare: number[];
  curves: SweepCurve[];
}

const shown = (value: unknown): string =>
  value === undefined ? '—' : typeof value === 'string' ? value : JSON.stringify(value);

const metricText = (value: number | null): string =>
  value === null ? '—' : Number.isFinite(value) ? String(Number(value.toPrecision(6))) : String(value);

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined || (typeof a === 'number' && Number.isNaN(a))) return 1;
  if (b === null || b === undefined || (typeof b === 'number' && Number.isNaN(b))) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return shown(a).localeCompare(shown(b));
}

/** The rows in the order asked; missing values last either way. */
export function sortedRows(state: Pick<SweepPageState, 'processes' | 'sort' | 'desc'>): SweepProcess[] {
  const key = (p: SweepProcess): unknown =>
    state.sort === 'final'
      ? p.final
      : state.sort === 'best'
        ? p.best
        : state.sort === 'name'
          ? p.name
          : p.params[state.sort];
  const rows = [...state.processes].sort((a, b) => compare(key(a), key(b)));
  if (!state.desc) return rows;
  const present = rows.filter((p) => key(p) !== null && key(p) !== undefined);
  return [...present.reverse(), ...rows.filter((p) => key(p) === null || key(p) === undefined)];
}

export function sweepPage(ctx: PageContext, state: SweepPageState): Html {
  const t = translator(ctx.locale);
  const base = `/training/sweeps/${state.id}`;
  const sortLink = (column: string, label: string) => {
    const desc = state.sort === column ? !state.desc : column === 'final' || column === 'best';
    const query = pageQuery({ ...state, sort: column, desc });
    const mark = state.sort === column ? (state.desc ? ' ↓' : ' ↑') : '';
    return html`<a href="${base}?${query.toString()}">${label}${mark}</a>`;
  };
  return layout(
    { ...ctx, section: 'training' },
    `${t('sweepTitle')} · ${state.name}`,
    html`<h1>${t('training')}</h1>
      <div class="page-head">
        <div>
          <p class="crumbs">
            <a href="/training/templates">${t('trainingTemplates')}</a> <span aria-hidden="true">›</span>
            <a href="/training/templates/${state.templateId}/processes">${t('processes')}</a>
            <span aria-hidden="true">›</span> ${t('sweepTitle')}
          </p>
          <h2>
            ${t('sweepTitle')}: <span class="sweep-name">${state.name}</span> <span class="muted">#${state.id}</span>
          </h2>
        </div>
      </div>
      <form class="inline" method="get" action="${base}">
        <label for="sweep-metric">${t('sweepMetric')}</label>
        <input id="sweep-metric" name="metric" value="${state.metric}" maxlength="200" />
        <button type="submit">${t('sweepShow')}</button>
      </form>
      ${
        state.processes.length === 0
          ? html`<p class="empty">${t('sweepNoProcesses')}</p>`
          : html`<form id="sweep-compare" method="get" action="${base}">
              <input type="hidden" name="metric" value="${state.metric}" />
              <input type="hidden" name="sort" value="${state.sort}" />
              ${state.desc ? html`<input type="hidden" name="desc" value="1" />` : ''}
              <table id="sweep" class="table">
              <thead>
                <tr>
                  <th class="pick" title="${t('sweepCompare')}">${t('sweepPick')}</th>
                  <th>${sortLink('name', t('colProcess'))}</th>
                  ${state.differing.map((key) => html`<th>${sortLink(key, key)}</th>`)}
                  <th>${t('colStatus')}</th>
                  <th class="num">${sortLink('final', `${t('sweepFinal')} ${state.metric}`)}</th>
                  <th class="num">${sortLink('best', `${t('sweepBest')} ${state.metric}`)}</th>
                </tr>
              </thead>
              ${sweepRows(ctx, state)}
            </table>
              <p><button type="submit" id="compare-button">${t('sweepCompare')}</button> <span class="muted">${t('sweepCompareHint')}</span></p>
            </form>
            ${compareSection(ctx, state, base)}`
      }`,
  );
}

/** The query that shows the page as it is now: metric, order and ticked processes. */
function pageQuery(state: Pick<SweepPageState, 'metric' | 'sort' | 'desc' | 'compare'>): URLSearchParams {
  const query = new URLSearchParams({ metric: state.metric, sort: state.sort, ...(state.desc ? { desc: '1' } : {}) });
  for (const id of state.compare) query.append('compare', String(id));
  return query;
}

/**
 * The table's rows. While any process is under way they fetch themselves again every two
 * seconds (htmx), so statuses and values fill in live; the ticked boxes are kept as they are
 * (hx-preserve), and the last answer, with nothing under way, stops asking.
 */
export function sweepRows(ctx: Pick<PageContext, 'locale'>, state: SweepPageState): Html {
  const t = translator(ctx.locale);
  const live = state.processes.some((p) => isActive(p.status));
  const poll = live
    ? html` hx-get="/training/sweeps/${state.id}/rows?${pageQuery(state).toString()}" hx-trigger="every 2s" hx-swap="outerHTML"`
    : '';
  return html`<tbody id="sweep-rows"${poll}>
    ${sortedRows(state).map(
      (p) =>
        html`<tr data-id="${p.id}">
          <td class="pick">
            <input type="checkbox" id="compare-${p.id}" hx-preserve name="compare" value="${p.id}" aria-label="${t('sweepCompare')} #${p.id}"${state.compare.includes(p.id) ? html` checked` : ''} />
          </td>
          <td><a href="${processUrl(p.id)}/monitoring">#${p.id} ${p.name}</a></td>
          ${state.differing.map((key) => html`<td>${shown(p.params[key])}</td>`)}
          <td>${statusBadge(p.status, ctx.locale)}${attemptNote(p, ctx.locale)}</td>
          <td class="num final">${metricText(p.final)}</td>
          <td class="num best">${metricText(p.best)}</td>
        </tr>`,
    )}
  </tbody>`;
}

function compareSection(ctx: PageContext, state: SweepPageState, base: string): Html {
  const t = translator(ctx.locale);
  const data = {
    metric: state.metric,
    curves: state.curves,
    url: `${base}/curves`,
    labels: { step: t('step'), run: t('run'), noPoints: t('sweepNoCurve') },
  };
  return html`<section class="card chart-card" id="compare-section"${state.compare.length === 0 ? html` hidden` : ''}>
      <h3>${t('sweepCompareTitle')}: <span class="compare-metric">${state.metric}</span></h3>
      <div id="compare-chart" class="chart"></div>
      <p class="chart-note muted">${t('downsampledNote')}</p>
    </section>
    <script type="application/json" id="compare-data">${jsonForScript(data)}</script>
    <script src="/static/echarts.min.js" defer></script>
    <script src="/static/sweep.js" defer></script>`;
}
