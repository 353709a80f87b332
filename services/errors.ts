// Expected failures, typed, so the API maps them to HTTP codes and the CLI to one line.
// A plain Error escaping a service is a bug. Each failure carries its text in both
// languages: pages show the reader's, the JSON API and the logs the English one.
import { EXPECTED_ERROR } from '../domain/failures.js';
import type { LocalizedText } from '../domain/status.js';

export type { LocalizedText };

export type ServiceErrorCode =
  'invalid' | 'unauthenticated' | 'forbidden' | 'not_found' | 'not_allowed' | 'conflict' | 'unavailable';

export const HTTP_STATUS: Record<ServiceErrorCode, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  not_allowed: 409,
  conflict: 409,
  unavailable: 503,
};

export class ServiceError extends Error {
  override name = EXPECTED_ERROR.service;
  constructor(
    readonly code: ServiceErrorCode,
    /** The message in each language; `message` is the English one. */
    readonly text: LocalizedText,
    /** The input field at fault, for 400s. */
    readonly field?: string,
  ) {
    super(text.en);
  }

  /** The message in the reader's language. */
  in(locale: keyof LocalizedText): string {
    return this.text[locale];
  }
}

/** A thing's name in both languages, for "does not exist" messages. */
export const THINGS = {
  user: { en: 'User', ru: 'пользователь' },
  role: { en: 'Role', ru: 'роль' },
  template: { en: 'Template', ru: 'шаблон' },
  machine: { en: 'Machine', ru: 'машина' },
  process: { en: 'Process', ru: 'процесс' },
  sweep: { en: 'Sweep', ru: 'перебор' },
  grant: { en: 'Grant', ru: 'назначение роли' },
  token: { en: 'Active token', ru: 'действующий токен' },
  run: { en: 'Run', ru: 'запуск' },
  channel: { en: 'Notification channel', ru: 'канал уведомлений' },
  subscription: { en: 'Subscription', ru: 'подписка' },
} satisfies Record<string, LocalizedText>;

export const notFound = (what: LocalizedText, id: unknown) =>
  new ServiceError('not_found', {
    en: `${what.en} ${String(id)} does not exist.`,
    ru: `Не найдено: ${what.ru} ${String(id)}.`,
  });
export const invalid = (field: string, text: LocalizedText) => new ServiceError('invalid', text, field);

/** A message from a ServiceError in the reader's language, else the error's own (English) text. */
export function messageIn(error: unknown, locale: keyof LocalizedText): string {
  if (error instanceof ServiceError) return error.in(locale);
  return error instanceof Error ? error.message : String(error);
}
