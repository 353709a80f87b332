// The page shell every full page shares: header, navigation, language switch, logout.
import { html, type Html } from './html.js';
import { translator, type Locale } from './i18n.js';

export interface PageContext {
  locale: Locale;
  user: { login: string } | null;
  csrfToken: string | null;
  /** Which top-level section is current, for the nav highlight. */
  section?: 'training' | 'machines' | 'admin';
}

export function layout(ctx: PageContext, title: string, body: Html): Html {
  const t = translator(ctx.locale);
  return html`<!doctype html>
<html lang="${ctx.locale}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · ${t('appName')}</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/htmx.min.js" defer></script>
</head>
<body${ctx.csrfToken ? html` hx-headers='${JSON.stringify({ 'X-CSRF-Token': ctx.csrfToken })}'` : ''}>
<header class="topbar">
  <a class="brand" href="/">${t('appName')}</a>
  ${ctx.user
    ? html`<nav class="sections"><a href="/training/templates" class="${ctx.section === 'training' ? 'current' : ''}">${t('training')}</a></nav>
  <div class="who">
    <span class="login">${ctx.user.login}</span>
    <form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}"><button class="link">${t('logout')}</button></form>
  </div>`
    : ''}
</header>
<main>
${body}
</main>
</body>
</html>`;
}
