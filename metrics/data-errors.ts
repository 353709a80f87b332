// Tells an error that repeats on every attempt (the database refuses the data itself) from
// one that may pass on retry (a connection cut, a lock timeout, a restart). The watch
// activity retries the second kind for as long as the run lasts; the first kind would
// retry forever with the trainer's exit never seen, so it must end the watch instead.
import { InvalidBatchError } from './batch.js';

// SQLSTATE classes that depend only on the statement and its data:
// 22 data exception (22021 invalid byte sequence, 22P05 untranslatable character,
// 22003 numeric value out of range, …) and 54 program limit exceeded (a value or row
// too large for an index or a page).
const DETERMINISTIC_SQLSTATE = /^(22|54)[0-9A-Z]{3}$/;

export interface DataError {
  /** The SQLSTATE, or 'invalid-batch' for a batch refused before it reached the database. */
  code: string;
  /** The database's own message (never the failed query's text, which would carry the data). */
  message: string;
}

/**
 * The deterministic data error in `error` or its causes (drizzle wraps the driver's error,
 * whose message it prefixes with the whole query and its parameters), or null.
 */
export function dataErrorOf(error: unknown): DataError | null {
  const seen = new Set<unknown>();
  for (let current = error; current instanceof Error && !seen.has(current); current = current.cause) {
    seen.add(current);
    if (current instanceof InvalidBatchError) return { code: 'invalid-batch', message: current.message };
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && DETERMINISTIC_SQLSTATE.test(code)) return { code, message: current.message };
  }
  return null;
}
