// A full page that says one thing: forbidden, not found, an error. Always offers a way back.
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';

export function messagePage(ctx: PageContext, title: string, message: string): Html {
  const t = translator(ctx.locale);
  return layout(
    ctx,
    title,
    html`<section class="card narrow"><h1>${title}</h1><p>${message}</p><p><a href="/">${t('back')}</a></p></section>`,
  );
}
