// Tells an error that repeats on every attempt (the database refuses the data itself) from
// one that may pass on retry (a connection cut, a lock timeout, a restart). The watch
// activity retries the second kind for as long as the run lasts; the first kind would
// retry forever with the trainer's exit never seen, so it must end the watch instead.
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../domain/failures.js';
import { pgText } from '../domain/pg-text.js';
import { isExecutorError } from '../executors/types.js';
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

/**
 * What the trainer wrote fails the same way on every attempt: a log or metrics file that
 * is not a regular file, or data the database refuses. Retrying would never see the exit,
 * so the watch ends with a typed, non-retryable failure that says why; null for any other error.
 */
export function rejectedOutput(error: unknown): ApplicationFailure | null {
  if (isExecutorError(error, 'NOT_A_REGULAR_FILE')) {
    return ApplicationFailure.nonRetryable(
      `The trainer's output cannot be read: ${pgText(error.message)}`,
      FAILURE.trainerOutputRejected,
    );
  }
  const data = dataErrorOf(error);
  if (data) {
    return ApplicationFailure.nonRetryable(
      `The database refused what the trainer wrote (${data.code}): ${pgText(data.message)}`,
      FAILURE.trainerOutputRejected,
    );
  }
  return null;
}
