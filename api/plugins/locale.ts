// The language switch: `?lang=ru|en` on any page sets a cookie for this browser and,
// for a signed-in user, their stored locale, so the choice follows them to another one.
import fp from 'fastify-plugin';
import { setUserLocale } from '../../services/accounts.js';
import { LOCALE_COOKIE } from './auth.js';
import type { AppDeps } from '../deps.js';

export const localePlugin = fp<{ deps: AppDeps }>(async (app, { deps }) => {
  app.addHook('onSend', async (request, reply) => {
    const lang = (request.query as Record<string, unknown> | undefined)?.lang;
    if (lang !== 'ru' && lang !== 'en') return;
    reply.setCookie(LOCALE_COOKIE, lang, { path: '/', sameSite: 'lax', httpOnly: true, maxAge: 365 * 86400 });
    const principal = request.principal;
    if (principal && principal.via === 'session' && principal.locale !== lang) {
      await setUserLocale(deps.db, principal.id, lang);
    }
  });
});
