import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';
import { layout } from '../layout.js';

export function loginPage(locale: Locale, options: { error?: string; login?: string; next?: string } = {}): Html {
  const t = translator(locale);
  return layout(
    { locale, user: null, csrfToken: null },
    t('login'),
    html`<section class="card narrow">
  <h1>${t('appName')}</h1>
  ${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
  <form method="post" action="/login" class="stack">
    <input type="hidden" name="next" value="${options.next ?? '/'}">
    <label>${t('loginField')}<input name="login" autocomplete="username" required value="${options.login ?? ''}"></label>
    <label>${t('password')}<input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" class="primary">${t('login')}</button>
  </form>
  <p class="muted"><a href="?lang=ru">Русский</a> · <a href="?lang=en">English</a></p>
</section>`,
  );
}
