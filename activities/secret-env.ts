// A template's secret env, opened for the one moment a trainer is launched. The run's
// snapshot keeps the sealed form (services/templates.ts); a key that cannot be opened
// fails the launch for good: retrying with the same TRAINYARD_SECRET cannot help.
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../domain/failures.js';
import { KeyboxError, openSecretEnv } from '../lib/keybox.js';

export function secretEnvOf(secret: string, snapshot: { secretEnv?: Record<string, string> | null }): Record<string, string> {
  try {
    return openSecretEnv(secret, snapshot.secretEnv);
  } catch (error) {
    if (error instanceof KeyboxError) throw ApplicationFailure.nonRetryable(error.message, FAILURE.launchFailed);
    throw error;
  }
}
