// How the workflow reads the failures its activities report: the message, the type, and
// the class the restart policy decides on (domain/restart.ts).
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { FAILURE } from '../../domain/failures.js';
import type { FailureClass } from '../../domain/restart.js';

/**
 * A status change the status table does not allow. It is a bug in this workflow, never a
 * user's request (those are refused by the update validators before anything changes), so
 * it is a plain Error: the SDK fails the workflow task, not the workflow. The process then
 * stays where it was, nothing recorded, its trainer untouched, and the task is retried
 * until a worker with fixed code replays it; failing the workflow would lose the process.
 */
export class StatusTableViolation extends Error {
  override name = 'StatusTableViolation';
}

export function failureMessage(error: unknown): string {
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

export function failureType(error: unknown): string | undefined {
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current instanceof ApplicationFailure ? (current.type ?? undefined) : undefined;
}

/**
 * The class of a watch that gave up: a machine lost past its timeout, or a stall the
 * policy restarts. Anything else (the platform lost track of the trainer) has none and is
 * never restarted.
 */
export function watchFailureClass(error: unknown): FailureClass | null {
  const type = failureType(error);
  if (type === FAILURE.machineLost) return 'machine_lost';
  if (type === FAILURE.stalled) return 'stalled';
  return null;
}

export const FAILURE_CLASS_TEXT: Readonly<Record<FailureClass, string>> = {
  exit_code: 'a non-zero exit code',
  oom: 'out of memory',
  machine_lost: 'the machine was lost',
  launch_failed: 'the launch failed',
  stalled: 'stalled',
};
