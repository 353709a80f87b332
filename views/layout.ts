// The page shell every full page shares: header, navigation, language switch, logout.
import { html, type Html } from './html.js';
import { translator, type Locale } from './i18n.js';

export interface PageContext {
  locale: Locale;
  user: { login: string } | null;
  csrfToken: string | null;
  /** Which top-level section is current, for the nav highlight. */
  section?: 'training' | 'machines' | 'admin';
  /** Show the Target machines section (machines.view). */
  canSeeMachines?: boolean;
  /** Show the Administration section: roles and the audit log (users.manage). */
  canAdminister?: boolean;
}

// htmx swaps error responses too: our errors are fragments that say what went wrong
// (and retarget themselves to #flash), never a silent nothing.
const HTMX_CONFIG = JSON.stringify({
  responseHandling: [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '[45]..', swap: true, error: true },
  ],
});

export function layout(ctx: PageContext, title: string, body: Html): Html {
  const t = translator(ctx.locale);
  return html`<!doctype html>
<html lang="${ctx.locale}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · ${t('appName')}</title>
<meta name="htmx-config" content="${HTMX_CONFIG}">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/htmx.min.js" defer></script>
<script src="/static/app.js" defer></script>
</head>
<body${ctx.csrfToken ? html` hx-headers='${JSON.stringify({ 'X-CSRF-Token': ctx.csrfToken })}'` : ''}>
<header class="topbar">
  <a class="brand" href="/">${t('appName')}</a>
  ${
    ctx.user
      ? html`<nav class="sections"><a href="/training/templates" class="${ctx.section === 'training' ? 'current' : ''}">${t('training')}</a>${ctx.canSeeMachines ? html`<a href="/machines" class="${ctx.section === 'machines' ? 'current' : ''}">${t('targetMachines')}</a>` : ''}${ctx.canAdminister ? html`<a href="/admin/roles" class="${ctx.section === 'admin' ? 'current' : ''}">${t('admSection')}</a>` : ''}</nav>
  <div class="who">
    <span class="lang" title="${t('language')}"><a href="?lang=ru" class="${ctx.locale === 'ru' ? 'current' : ''}" hreflang="ru" lang="ru">RU</a><a href="?lang=en" class="${ctx.locale === 'en' ? 'current' : ''}" hreflang="en" lang="en">EN</a></span>
    <a class="login" href="/account/tokens" title="${t('tokApiTokens')}">${ctx.user.login}</a>
    <a href="/account/notifications">${t('ntfNotifications')}</a>
    <form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}"><button class="link">${t('logout')}</button></form>
  </div>`
      : ''
  }
</header>
<main>
<div id="flash" aria-live="polite" data-no-answer="${t('serverNoAnswer')}"></div>
${body}
</main>
</body>
</html>`;
}
