// The message an htmx request gets when it fails: swapped into the page's #flash region.
import { html, type Html } from '../html.js';

export function flash(message: string, kind: 'error' | 'info' = 'error'): Html {
  return html`<div class="flash ${kind}" role="${kind === 'error' ? 'alert' : 'status'}"><span>${message}</span><button type="button" class="flash-close" aria-label="×" data-dismiss="#flash">×</button></div>`;
}
