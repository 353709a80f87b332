// Notifications pages: Administration → Notifications (channels: add, delete, send a test;
// each channel's delivery log) and Account → My notifications (the reader's subscriptions).
import type { NotificationEvent } from '../../domain/notifications.js';
import { NOTIFICATION_EVENTS } from '../../domain/notifications.js';
import type { ChannelView, DeliveryView, SubscriptionView } from '../../services/notification-channels.js';
import { html, type Html } from '../html.js';
import { translator, type MessageKey } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { adminTabs } from './audit.js';

export const EVENT_LABEL: Record<NotificationEvent | 'test', MessageKey> = {
  completed: 'ntfEvCompleted',
  failed: 'ntfEvFailed',
  stalled: 'ntfEvStalled',
  restarted: 'ntfEvRestarted',
  non_finite_loss: 'ntfEvNonFiniteLoss',
  test: 'ntfEvTest',
};

const csrf = (ctx: PageContext) => html`<input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}">`;
const when = (iso: string) => html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')}</time>`;

export function channelsPage(ctx: PageContext, channels: ChannelView[]): Html {
  const t = translator(ctx.locale);
  return layout(
    { ...ctx, section: 'admin' },
    t('ntfChannels'),
    html`<h1>${t('admSection')}</h1>
${adminTabs(ctx, 'notifications')}
<p class="muted">${t('ntfChannelsHint')}</p>
<form method="post" action="/admin/notifications" class="card stack" id="add-channel">
  ${csrf(ctx)}
  <label>${t('name')}<input name="name" required maxlength="200"></label>
  <label>${t('ntfKind')}<select name="kind"><option value="webhook">webhook</option><option value="slack">Slack</option></select></label>
  <label>${t('ntfUrl')}<input name="url" type="url" required maxlength="2048" placeholder="https://"></label>
  <label>${t('ntfSecret')}<input name="secret" type="password" minlength="16" maxlength="1024" autocomplete="new-password"><small class="muted">${t('ntfSecretHint')}</small></label>
  <button type="submit" class="primary">${t('ntfAddChannel')}</button>
</form>
${
  channels.length === 0
    ? html`<p class="empty">${t('ntfNoChannels')}</p>`
    : html`<table class="grid" id="channels">
  <thead><tr><th>${t('name')}</th><th>${t('ntfKind')}</th><th>${t('ntfUrl')}</th><th>${t('actions')}</th></tr></thead>
  <tbody>
  ${channels.map(
    (channel) => html`<tr data-channel-id="${channel.id}">
    <td>${channel.name}</td>
    <td>${channel.kind}</td>
    <td class="muted"><code>${channel.url ?? ''}</code></td>
    <td class="actions">
      <a class="button small" href="/admin/notifications/${channel.id}/deliveries">${t('ntfDeliveries')}</a>
      <form method="post" action="/admin/notifications/${channel.id}/test" class="inline">${csrf(ctx)}<button class="small">${t('ntfSendTest')}</button></form>
      <form method="post" action="/admin/notifications/${channel.id}/delete" class="inline">${csrf(ctx)}<button class="danger small">${t('delete')}</button></form>
    </td>
  </tr>`,
  )}
  </tbody>
</table>`
}`,
  );
}

export function deliveriesPage(
  ctx: PageContext,
  channel: ChannelView,
  page: { items: DeliveryView[]; nextCursor: number | null },
): Html {
  const t = translator(ctx.locale);
  const label = (event: string) => (event in EVENT_LABEL ? t(EVENT_LABEL[event as NotificationEvent]) : event);
  return layout(
    { ...ctx, section: 'admin' },
    `${t('ntfDeliveries')}: ${channel.name}`,
    html`<h1>${t('ntfDeliveries')}: ${channel.name}</h1>
${adminTabs(ctx, 'notifications')}
<p><a href="/admin/notifications">← ${t('ntfChannels')}</a></p>
${
  page.items.length === 0
    ? html`<p class="empty">${t('ntfNoDeliveries')}</p>`
    : html`<table class="grid" id="deliveries">
  <thead><tr><th>${t('audWhen')}</th><th>${t('ntfEvent')}</th><th>${t('colProcess')}</th><th>${t('ntfAttempt')}</th><th>${t('ntfAnswer')}</th><th>${t('ntfEventKey')}</th></tr></thead>
  <tbody>
  ${page.items.map(
    (d) => html`<tr data-delivery-id="${d.id}" class="${d.ok ? 'ok' : 'failed'}">
    <td>${when(d.at)}</td>
    <td>${label(d.event)}</td>
    <td>${d.processId === null ? '' : html`<a href="/training/processes/${d.processId}/monitoring">#${d.processId}</a>`}</td>
    <td>${d.attempt}</td>
    <td><span class="badge ${d.ok ? 'completed' : 'failed'}">${d.ok ? t('ntfDelivered') : t('ntfNotDelivered')}</span> ${d.httpStatus ?? ''} <span class="muted">${d.error ?? ''}</span></td>
    <td class="muted"><code>${d.eventKey}</code></td>
  </tr>`,
  )}
  </tbody>
</table>`
}
${page.nextCursor !== null ? html`<p><a class="button" href="/admin/notifications/${channel.id}/deliveries?cursor=${page.nextCursor}">${t('ntfOlder')}</a></p>` : ''}`,
  );
}

export function subscriptionsPage(
  ctx: PageContext,
  data: {
    subscriptions: SubscriptionView[];
    channels: ChannelView[];
    templates: Array<{ id: number; name: string }>;
    /** May subscribe to every template (notifications.manage). */
    canSubscribeAll: boolean;
  },
): Html {
  const t = translator(ctx.locale);
  return layout(
    ctx,
    t('ntfSubscriptions'),
    html`<h1>${t('ntfSubscriptions')}</h1>
<p class="muted">${t('ntfSubscriptionsHint')}</p>
${
  data.channels.length === 0
    ? html`<p class="empty">${t('ntfNoChannels')}</p>`
    : html`<form method="post" action="/account/notifications" class="card stack" id="subscribe">
  ${csrf(ctx)}
  <label>${t('ntfChannel')}<select name="channelId" required>${data.channels.map(
    (c) => html`<option value="${c.id}">${c.name} (${c.kind})</option>`,
  )}</select></label>
  <label>${t('admTemplate')}<select name="templateId">${data.canSubscribeAll ? html`<option value="">${t('ntfAllTemplates')}</option>` : ''}${data.templates.map(
    (template) => html`<option value="${template.id}">${template.name}</option>`,
  )}</select></label>
  <fieldset><legend>${t('ntfEvents')}</legend>${NOTIFICATION_EVENTS.map(
    (event) =>
      html`<label class="check"><input type="checkbox" name="events" value="${event}"${event === 'failed' ? html` checked` : ''}> ${t(EVENT_LABEL[event])}</label>`,
  )}</fieldset>
  <button type="submit" class="primary">${t('ntfSubscribe')}</button>
</form>`
}
${
  data.subscriptions.length === 0
    ? html`<p class="empty">${t('ntfNoSubscriptions')}</p>`
    : html`<table class="grid" id="subscriptions">
  <thead><tr><th>${t('ntfChannel')}</th><th>${t('admTemplate')}</th><th>${t('ntfEvents')}</th><th></th></tr></thead>
  <tbody>
  ${data.subscriptions.map(
    (s) => html`<tr data-subscription-id="${s.id}">
    <td>${s.channelName}</td>
    <td>${s.templateName ?? t('ntfAllTemplates')}</td>
    <td>${s.events.map((event) => t(EVENT_LABEL[event])).join(', ')}</td>
    <td><form method="post" action="/account/notifications/${s.id}/delete" class="inline">${csrf(ctx)}<button class="danger small">${t('ntfUnsubscribe')}</button></form></td>
  </tr>`,
  )}
  </tbody>
</table>`
}`,
  );
}
