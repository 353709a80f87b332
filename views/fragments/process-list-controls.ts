// Above the processes table: how many processes there are per status (each a filter
// link), and the form that searches, filters, sorts and sizes the list. Plain GET
// links and a GET form, so every view of the list has an address to share or reload.
import { STATUSES, STATUS_LABELS, type ProcessStatus } from '../../domain/status.js';
import type { SortKey, SortOrder } from '../../services/process-list.js';
import { PAGE_SIZES, SORT_KEYS } from '../../services/process-list.js';
import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';
import { integer } from './format.js';

export interface ListOptions {
  sort: SortKey;
  order: SortOrder;
  status?: ProcessStatus;
  q?: string;
  size: number;
}

/** The page's own order: newest first, 50 a page. */
export const DEFAULT_LIST: ListOptions = { sort: 'created', order: 'desc', size: 50 };

/** The list's address with these options (defaults left out) and, for a later page, its cursor. */
export function listUrl(base: string, options: ListOptions, after?: number | string | null): string {
  const query = new URLSearchParams();
  if (options.q) query.set('q', options.q);
  if (options.status) query.set('status', options.status);
  if (options.sort !== DEFAULT_LIST.sort) query.set('sort', options.sort);
  if (options.order !== DEFAULT_LIST.order) query.set('order', options.order);
  if (options.size !== DEFAULT_LIST.size) query.set('size', String(options.size));
  if (after !== undefined && after !== null) query.set('after', String(after));
  const text = query.toString();
  return text ? `${base}?${text}` : base;
}

const SORT_LABEL: Record<SortKey, 'sortCreated' | 'colStatus' | 'colMachine' | 'progress' | 'sortStarted'> = {
  created: 'sortCreated',
  status: 'colStatus',
  machine: 'colMachine',
  progress: 'progress',
  started: 'sortStarted',
};

export function statusCounts(
  base: string,
  options: ListOptions,
  counts: Partial<Record<ProcessStatus, number>>,
  locale: Locale,
): Html {
  const t = translator(locale);
  const total = Object.values(counts).reduce((a, n) => a + (n ?? 0), 0);
  const chip = (status: ProcessStatus | undefined, label: string, n: number) => {
    const current = options.status === status;
    return html`<a class="count${current ? ' current' : ''}" href="${listUrl(base, { ...options, ...(status ? { status } : { status: undefined }) })}"${current ? html` aria-current="true"` : ''} data-count="${status ?? 'all'}">${label} <b>${integer(n, locale)}</b></a>`;
  };
  return html`<nav class="status-counts" aria-label="${t('statusCounts')}">
  ${chip(undefined, t('countAll'), total)}
  ${STATUSES.filter((s) => (counts[s] ?? 0) > 0).map((s) => chip(s, STATUS_LABELS[s][locale], counts[s]!))}
</nav>`;
}

export function listControls(base: string, options: ListOptions, locale: Locale): Html {
  const t = translator(locale);
  const selected = (on: boolean) => (on ? html` selected` : '');
  return html`<form class="list-controls" method="get" action="${base}" role="search" aria-label="${t('listControls')}">
  <label>${t('searchName')} <input type="search" name="q" value="${options.q ?? ''}" maxlength="200" placeholder="${t('searchPlaceholder')}"></label>
  <label>${t('colStatus')} <select name="status"><option value="">${t('allStatuses')}</option>${STATUSES.map((s) => html`<option value="${s}"${selected(options.status === s)}>${STATUS_LABELS[s][locale]}</option>`)}</select></label>
  <label>${t('sortBy')} <select name="sort">${SORT_KEYS.map((k) => html`<option value="${k}"${selected(options.sort === k)}>${t(SORT_LABEL[k])}</option>`)}</select></label>
  <select name="order" aria-label="${t('sortBy')}"><option value="desc"${selected(options.order === 'desc')}>${t('orderDesc')}</option><option value="asc"${selected(options.order === 'asc')}>${t('orderAsc')}</option></select>
  <label>${t('pageSize')} <select name="size">${PAGE_SIZES.map((n) => html`<option value="${n}"${selected(options.size === n)}>${n}</option>`)}</select></label>
  <button type="submit">${t('showList')}</button>
  <a class="button" href="${base}">${t('resetList')}</a>
</form>`;
}
