// Small formatting helpers the pages and fragments share: placeholders, dates, percents.
import { html, type Html } from '../html.js';
import type { Locale } from '../i18n.js';

/** Fills `{name}` placeholders of a dictionary string; values are plain text. */
export function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => (key in values ? String(values[key]) : whole));
}

/** Like fill, but a value may be markup (a link inside a sentence); text parts stay escaped. */
export function fillHtml(template: string, values: Record<string, Html | string | number>): Html {
  const parts = template.split(/\{(\w+)\}/);
  return html`${parts.map((part, i) => (i % 2 === 0 ? part : (values[part] ?? `{${part}}`)))}`;
}

const DATE_LOCALES: Record<Locale, string> = { ru: 'ru-RU', en: 'en-GB' };

// Building an Intl formatter costs far more than using one (it was ~15% of the
// processes page's server time), so each is built once per locale and options.
const formatters = new Map<string, Intl.DateTimeFormat | Intl.NumberFormat>();
function cached<T extends Intl.DateTimeFormat | Intl.NumberFormat>(key: string, make: () => T): T {
  let formatter = formatters.get(key) as T | undefined;
  if (!formatter) {
    formatter = make();
    formatters.set(key, formatter);
  }
  return formatter;
}

/** Server-side text of a timestamp; app.js re-renders it in the browser's own time zone. */
export function dateTime(iso: string | null, locale: Locale): Html | string {
  if (!iso) return '—';
  const formatter = cached(
    `date:${locale}`,
    () => new Intl.DateTimeFormat(DATE_LOCALES[locale], { dateStyle: 'short', timeStyle: 'medium', timeZone: 'UTC' }),
  );
  const text = formatter.format(new Date(iso));
  return html`<time datetime="${iso}" data-local>${text} UTC</time>`;
}

export function percent(step: number | null, total: number | null): number | null {
  if (step === null || total === null || total <= 0) return null;
  return Math.max(0, Math.min(100, (step / total) * 100));
}

export function percentText(value: number, locale: Locale): string {
  const digits = value > 0 && value < 10 ? 1 : 0;
  const formatter = cached(
    `percent:${locale}:${digits}`,
    () => new Intl.NumberFormat(DATE_LOCALES[locale], { maximumFractionDigits: digits, minimumFractionDigits: digits }),
  );
  return `${formatter.format(value)} %`;
}

export function integer(value: number, locale: Locale): string {
  return cached(`integer:${locale}`, () => new Intl.NumberFormat(DATE_LOCALES[locale])).format(value);
}
