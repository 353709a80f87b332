// Input checks the template, machine and role services share. They take `unknown`
// because forms, the JSON API and the CLI all reach the services, and each failure
// names its field. PostgreSQL text cannot hold NUL, and a lone surrogate would be
// stored altered, so both are refused rather than stored differently.
import { invalid } from './errors.js';

const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
// With the `u` flag a paired surrogate is one code point, so this finds lone halves only.
const LONE_SURROGATE = /[\ud800-\udfff]/u;
const NUL = /\u0000/;

export interface TextRule {
  min?: number;
  max: number;
  /** Count UTF-8 bytes instead of characters (e.g. the command's 64 KiB). */
  bytes?: boolean;
  /** Newlines and tabs allowed (multi-line text such as a command or a description). */
  multiline?: boolean;
}

export function text(field: string, value: unknown, rule: TextRule): string {
  if (typeof value !== 'string')
    throw invalid(field, { en: `${field} must be a string.`, ru: `${field}: нужна строка.` });
  if (LONE_SURROGATE.test(value))
    throw invalid(field, { en: `${field} is not valid Unicode text.`, ru: `${field}: текст с ошибкой Юникода.` });
  if (rule.multiline ? NUL.test(value) || CONTROL.test(value) : /[\u0000-\u001f\u007f]/.test(value)) {
    throw invalid(field, {
      en: `${field} may not contain control characters.`,
      ru: `${field}: управляющие символы не допускаются.`,
    });
  }
  const size = rule.bytes ? Buffer.byteLength(value, 'utf8') : [...value].length;
  const unit = rule.bytes ? { en: 'bytes', ru: 'байт' } : { en: 'characters', ru: 'символов' };
  if (size < (rule.min ?? 0)) {
    throw invalid(
      field,
      rule.min === 1
        ? { en: `${field} must not be empty.`, ru: `${field}: не может быть пустым.` }
        : { en: `${field} needs at least ${rule.min} ${unit.en}.`, ru: `${field}: не меньше ${rule.min} ${unit.ru}.` },
    );
  }
  if (size > rule.max)
    throw invalid(field, {
      en: `${field} may have at most ${rule.max} ${unit.en}.`,
      ru: `${field}: не больше ${rule.max} ${unit.ru}.`,
    });
  return value;
}

export function optionalText(field: string, value: unknown, rule: TextRule): string | null {
  if (value === undefined || value === null || value === '') return null;
  return text(field, value, rule);
}

export function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw invalid(field, { en: `${field} must be a whole number.`, ru: `${field}: нужно целое число.` });
  if (value < min || value > max)
    throw invalid(field, { en: `${field} must be from ${min} to ${max}.`, ru: `${field}: число от ${min} до ${max}.` });
  return value;
}

export function boolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw invalid(field, { en: `${field} must be true or false.`, ru: `${field}: нужно true или false.` });
  return value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype
  );
}

/**
 * A JSON value as PostgreSQL's jsonb will keep it: finite numbers, text without NUL or
 * lone surrogates (keys too), bounded depth. Returns a copy built from own properties.
 */
export function jsonValue(field: string, value: unknown, depth = 0): unknown {
  if (depth > 32)
    throw invalid(field, { en: `${field} is nested too deeply.`, ru: `${field}: слишком глубокая вложенность.` });
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      throw invalid(field, {
        en: `${field} holds a number JSON cannot carry.`,
        ru: `${field}: число, которое JSON не может передать.`,
      });
    return value;
  }
  if (typeof value === 'string') {
    if (NUL.test(value) || LONE_SURROGATE.test(value))
      throw invalid(field, {
        en: `${field} holds text with a NUL character or broken Unicode.`,
        ru: `${field}: текст с символом NUL или с ошибкой Юникода.`,
      });
    return value;
  }
  if (Array.isArray(value)) return value.map((item, i) => jsonValue(`${field}.${i}`, item, depth + 1));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (NUL.test(key) || LONE_SURROGATE.test(key))
        throw invalid(field, {
          en: `${field} has a key with a NUL character or broken Unicode.`,
          ru: `${field}: ключ с символом NUL или с ошибкой Юникода.`,
        });
      // defineProperty: a key named "__proto__" stays plain data.
      Object.defineProperty(out, key, {
        value: jsonValue(`${field}.${key}`, item, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  throw invalid(field, { en: `${field} must be JSON.`, ru: `${field}: нужен JSON.` });
}

/** Fields of a body that are not known: a typo should fail loudly, not be ignored. */
export function rejectUnknown(body: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) throw invalid(key, { en: `Unknown field ${key}.`, ru: `Неизвестное поле ${key}.` });
  }
}

/** The PostgreSQL error code of a (possibly wrapped) driver error: 23505 unique, 23503 foreign key. */
export function pgCode(error: unknown): string | undefined {
  for (let e: unknown = error, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}
