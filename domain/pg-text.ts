// What a PostgreSQL `text` (or jsonb string) value can hold. It refuses U+0000 outright
// (SQLSTATE 22021, or 22P05 inside jsonb), and an unpaired UTF-16 surrogate has no UTF-8
// form at all (the driver would silently turn it into U+FFFD, so a stored name would no
// longer equal the one in memory). Trainer output can hold both, so every text that comes
// from a trainer's bytes passes through here before it is written.

const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

/** True when PostgreSQL text holds `value` exactly as it is. */
export function isPgText(value: string): boolean {
  return !UNSTORABLE.test(value);
}

/**
 * `value` with each NUL and each unpaired surrogate replaced by U+FFFD (the character a
 * UTF-8 decoder already puts where a trainer wrote invalid bytes), so a log stays readable
 * and shows where something was.
 */
export function pgText(value: string): string {
  return isPgText(value) ? value : value.replace(UNSTORABLE_ALL, '\uFFFD');
}
