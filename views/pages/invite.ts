// The invite page: someone holding an invite link sees their login and chooses a password.
import { html, type Html } from '../html.js';
import { translator, type Locale } from '../i18n.js';
import { layout } from '../layout.js';

export interface InvitePageOptions {
  /** The link's own path (`/invite/<token>`): the form posts back to it. */
  action: string;
  login: string;
  error?: string;
}

export function invitePage(locale: Locale, options: InvitePageOptions): Html {
  const t = translator(locale);
  return layout(
    { locale, user: null, csrfToken: null },
    t('invTitle'),
    html`<section class="card narrow">
  <h1>${t('invTitle')}</h1>
  <p>${t('invIntro')}</p>
  ${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
  <form method="post" action="${options.action}" class="stack" id="accept-invite">
    <label>${t('loginField')}<input name="login" autocomplete="username" readonly value="${options.login}"></label>
    <label>${t('invNewPassword')}<input name="password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"></label>
    <label>${t('invRepeatPassword')}<input name="repeat" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"></label>
    <button type="submit" class="primary">${t('invSubmit')}</button>
  </form>
  <p class="muted"><a href="?lang=ru">Русский</a> · <a href="?lang=en">English</a></p>
</section>`,
  );
}

/** A link that does not work (any more), saying why, with the way to the login page. */
export function inviteRefusedPage(locale: Locale, message: string): Html {
  const t = translator(locale);
  return layout(
    { locale, user: null, csrfToken: null },
    t('usrInviteLink'),
    html`<section class="card narrow" id="invite-refused">
  <h1>${t('usrInviteLink')}</h1>
  <p class="error" role="alert">${message}</p>
  <p><a href="/login">${t('invToLogin')}</a></p>
  <p class="muted"><a href="?lang=ru">Русский</a> · <a href="?lang=en">English</a></p>
</section>`,
  );
}
