// Account → API tokens: create (the token is shown once, on the answer to the form),
// list with last use and expiry, revoke. Only the caller's own tokens.
import type { TokenView } from '../../services/tokens.js';
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';

export function tokensPage(
  ctx: PageContext,
  tokens: TokenView[],
  created: { token: string; name: string } | null = null,
): Html {
  const t = translator(ctx.locale);
  const when = (iso: string | null) =>
    iso
      ? html`<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')}</time>`
      : html`<span class="muted">${t('tokNever')}</span>`;
  const state = { active: t('tokActive'), expired: t('tokExpired'), revoked: t('tokRevoked') };
  return layout(
    ctx,
    t('tokApiTokens'),
    html`<h1>${t('tokApiTokens')}</h1>
<p class="muted">${t('tokHint')}</p>
${
  created
    ? html`<section class="card" id="new-token" role="status">
  <p><strong>${created.name}</strong>: ${t('tokShownOnce')}</p>
  <input readonly class="token" value="${created.token}" aria-label="${t('tokApiTokens')}" onfocus="this.select()">
</section>`
    : ''
}
<form method="post" action="/account/tokens" class="card stack" id="create-token">
  <input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}">
  <label>${t('name')}<input name="name" required maxlength="100"></label>
  <label>${t('tokExpiresDays')}<input name="expiresDays" type="number" min="1" max="3650" step="1"></label>
  <button type="submit" class="primary">${t('tokCreate')}</button>
</form>
${
  tokens.length === 0
    ? html`<p class="empty">${t('tokNone')}</p>`
    : html`<table class="grid" id="tokens">
  <thead><tr><th>${t('name')}</th><th>${t('tokCreatedAt')}</th><th>${t('tokLastUsed')}</th><th>${t('tokExpires')}</th><th>${t('tokState')}</th><th></th></tr></thead>
  <tbody>
  ${tokens.map(
    (token) => html`<tr data-token-id="${token.id}">
    <td>${token.name}</td>
    <td>${when(token.createdAt)}</td>
    <td>${when(token.lastUsedAt)}</td>
    <td>${when(token.expiresAt)}</td>
    <td><span class="badge ${token.state === 'active' ? 'running' : 'disabled'}">${state[token.state]}</span></td>
    <td>${
      token.state === 'active'
        ? html`<form method="post" action="/account/tokens/${token.id}/revoke" class="inline"><input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}"><button class="danger small">${t('revoke')}</button></form>`
        : ''
    }</td>
  </tr>`,
  )}
  </tbody>
</table>`
}`,
  );
}
