// Training → Training templates: the table of templates, each with its Processes action.
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';

export interface TemplateRow {
  id: number;
  name: string;
  description: string;
  totalSteps: number | null;
}

export function templatesPage(ctx: PageContext, rows: TemplateRow[], options: { canManage?: boolean } = {}): Html {
  const t = translator(ctx.locale);
  return layout(
    { ...ctx, section: 'training' },
    t('trainingTemplates'),
    html`<h1>${t('training')}</h1>
<nav class="tabs"><a class="current" href="/training/templates">${t('trainingTemplates')}</a></nav>
${options.canManage ? html`<div class="page-head"><span></span><a class="button primary" href="/training/templates/new">${t('addTemplate')}</a></div>` : ''}
${
  rows.length === 0
    ? html`<p class="empty">${t('noTemplates')}</p>`
    : html`<table class="grid" id="templates">
  <thead><tr><th>${t('name')}</th><th>${t('description')}</th><th class="num">${t('totalSteps')}</th><th>${t('actions')}</th></tr></thead>
  <tbody>
  ${rows.map(
    (row) => html`<tr data-template-id="${row.id}">
    <td class="name">${row.name}</td>
    <td class="muted">${row.description}</td>
    <td class="num">${row.totalSteps ?? '—'}</td>
    <td class="row-actions-cell"><a class="button" href="/training/templates/${row.id}/processes">${t('processes')}</a>${options.canManage ? html` <a class="button subtle" href="/training/templates/${row.id}/edit">${t('edit')}</a>` : ''}</td>
  </tr>`,
  )}
  </tbody>
</table>`
}`,
  );
}
