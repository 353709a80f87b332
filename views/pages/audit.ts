// Administration → Audit log: newest first, filtered by who, action, outcome, target
// and time, paged by cursor.
import { AUDIT_OUTCOMES, type AuditFilter, type AuditView } from '../../services/audit.js';
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';

export function adminTabs(ctx: PageContext, current: 'users' | 'roles' | 'audit' | 'notifications'): Html {
  const t = translator(ctx.locale);
  return html`<nav class="tabs"><a href="/admin/users" class="${current === 'users' ? 'current' : ''}">${t('usrUsers')}</a><a href="/admin/roles" class="${current === 'roles' ? 'current' : ''}">${t('admRoles')}</a><a href="/admin/audit" class="${current === 'audit' ? 'current' : ''}">${t('audLog')}</a><a href="/admin/notifications" class="${current === 'notifications' ? 'current' : ''}">${t('ntfNotifications')}</a></nav>`;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  outcome?: string;
  targetType?: string;
  targetId?: string;
  since?: string;
  until?: string;
}

export function auditPage(
  ctx: PageContext,
  query: AuditQuery,
  page: { items: AuditView[]; nextCursor: number | null },
): Html {
  const t = translator(ctx.locale);
  const older = new URLSearchParams(
    Object.entries(query).filter(([, v]) => typeof v === 'string' && v !== '') as Array<[string, string]>,
  );
  if (page.nextCursor !== null) older.set('cursor', String(page.nextCursor));
  return layout(
    { ...ctx, section: 'admin' },
    t('audLog'),
    html`<h1>${t('admSection')}</h1>
${adminTabs(ctx, 'audit')}
<form method="get" action="/admin/audit" class="card filters" id="audit-filter">
  <label>${t('audWho')}<input name="actor" maxlength="64" value="${query.actor ?? ''}"></label>
  <label>${t('audAction')}<input name="action" maxlength="200" value="${query.action ?? ''}" placeholder="${t('audActionHint')}"></label>
  <label>${t('audOutcome')}<select name="outcome"><option value="">${t('audAny')}</option>${AUDIT_OUTCOMES.map(
    (outcome) =>
      html`<option value="${outcome}"${query.outcome === outcome ? html` selected` : ''}>${outcome}</option>`,
  )}</select></label>
  <label>${t('audTarget')}<input name="targetType" maxlength="50" value="${query.targetType ?? ''}" placeholder="process"></label>
  <label>#<input name="targetId" maxlength="50" value="${query.targetId ?? ''}"></label>
  <label>${t('audSince')}<input name="since" type="date" value="${query.since ?? ''}"></label>
  <label>${t('audUntil')}<input name="until" type="date" value="${query.until ?? ''}"></label>
  <button class="primary">${t('audFilter')}</button>
</form>
${
  page.items.length === 0
    ? html`<p class="empty">${t('audNone')}</p>`
    : html`<table class="grid" id="audit">
  <thead><tr><th>${t('audWhen')}</th><th>${t('audWho')}</th><th>${t('audAction')}</th><th>${t('audTarget')}</th><th>${t('audOutcome')}</th><th>${t('audDetail')}</th></tr></thead>
  <tbody>
  ${page.items.map(
    (event) => html`<tr data-audit-id="${event.id}">
    <td><time datetime="${event.at}">${event.at.slice(0, 19).replace('T', ' ')}</time></td>
    <td>${event.actorLogin ?? html`<span class="muted">—</span>`}</td>
    <td><code>${event.action}</code></td>
    <td>${event.targetType ?? ''}${event.targetId ? ` #${event.targetId}` : ''}</td>
    <td><span class="badge ${event.outcome === 'ok' ? 'completed' : 'failed'}">${event.outcome}</span></td>
    <td class="muted"><code>${event.detail ? JSON.stringify(event.detail) : ''}</code></td>
  </tr>`,
  )}
  </tbody>
</table>`
}
${page.nextCursor !== null ? html`<p><a class="button" href="/admin/audit?${older.toString()}">${t('audOlder')}</a></p>` : ''}`,
  );
}

/** The page's query as a service filter; bad dates are ignored rather than refused. */
export function auditFilterOf(query: AuditQuery & { cursor?: number }): AuditFilter {
  const date = (value: string | undefined, endOfDay: boolean) => {
    if (!value || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return undefined;
    const d = new Date(`${value}T${endOfDay ? '23:59:59.999' : '00:00:00.000'}Z`);
    return Number.isNaN(d.getTime()) ? undefined : d;
  };
  const outcome = AUDIT_OUTCOMES.find((o) => o === query.outcome);
  const since = date(query.since, false);
  const until = date(query.until, true);
  return {
    ...(query.actor ? { actor: query.actor } : {}),
    ...(query.action ? { action: query.action } : {}),
    ...(outcome ? { outcome } : {}),
    ...(query.targetType ? { targetType: query.targetType } : {}),
    ...(query.targetId ? { targetId: query.targetId } : {}),
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
    ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
    limit: 100,
  };
}
