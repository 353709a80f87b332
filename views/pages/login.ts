import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';
import { layout } from '../layout.js';

export interface LoginPageOptions {
  error?: string;
  login?: string;
  next?: string;
  /** Offer "Sign in with SSO" (TRAINYARD_OIDC_ISSUER is set). */
  sso?: boolean;
  /** Show the password form; false when TRAINYARD_LOCAL_LOGIN=false. */
  localLogin?: boolean;
}

export function loginPage(locale: Locale, options: LoginPageOptions = {}): Html {
  const t = translator(locale);
  const next = options.next ?? '/';
  const ssoHref = `/auth/oidc/login?next=${encodeURIComponent(next)}`;
  return layout(
    { locale, user: null, csrfToken: null },
    t('login'),
    html`<section class="card narrow">
  <h1>${t('appName')}</h1>
  ${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
  ${
    options.localLogin === false
      ? ''
      : html`<form method="post" action="/login" class="stack">
    <input type="hidden" name="next" value="${next}">
    <label>${t('loginField')}<input name="login" autocomplete="username" required value="${options.login ?? ''}"></label>
    <label>${t('password')}<input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" class="primary">${t('login')}</button>
  </form>`
  }
  ${options.sso ? html`<p class="stack"><a id="sso-login" class="button${options.localLogin === false ? ' primary' : ''}" href="${ssoHref}">${t('ssoLogin')}</a></p>` : ''}
  <p class="muted"><a href="/login?lang=ru">Русский</a> · <a href="/login?lang=en">English</a></p>
</section>`,
  );
}
