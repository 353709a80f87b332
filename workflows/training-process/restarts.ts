// The restart chain of a training process (docs/design.md §2, "Restarts"): the policy of
// the current run's template, what follows a failure, and the backoff before the next
// attempt — a workflow timer that a stop, disable or delete cancels.
import { CancellationScope, condition, patched, sleep } from '@temporalio/workflow';
import type { ProcessEvent } from '../../activities/types.js';
import {
  maxAttempts,
  restartPolicyOf,
  shouldRestart,
  type FailureClass,
  type RestartPolicy,
} from '../../domain/restart.js';
import { FAILURE_CLASS_TEXT } from './failures.js';

export interface FailureVerdict {
  restart: boolean;
  /** The process-log entry to record, or null (histories from before restarts record none). */
  event: Omit<ProcessEvent, 'processId' | 'runId'> | null;
}

export class RestartChain {
  /** The restart policy of the current run's template (from createRun; absent in old histories). */
  policy: RestartPolicy = restartPolicyOf(null);
  /**
   * When (workflow time, ms) the next attempt starts; non-null only between a failed run
   * and its restart, while no run is in flight.
   */
  at: number | null;

  constructor(at: number | null) {
    this.at = at;
  }

  /** What follows a run that failed as attempt `attempt` (run `runNumber`) with `failureClass`. */
  verdict(failureClass: FailureClass | null, attempt: number, runNumber: number): FailureVerdict {
    const { policy } = this;
    const restart = shouldRestart(policy, failureClass, attempt);
    // Templates without a policy (and every history from before restarts) record nothing new.
    if (failureClass === null || policy.onFailure === 0) return { restart: false, event: null };
    if (!patched('restart-policy')) return { restart: false, event: null };
    const why = ` (${FAILURE_CLASS_TEXT[failureClass]})`;
    const of = maxAttempts(policy);
    if (restart) {
      return {
        restart,
        event: {
          kind: 'restarted',
          level: 'warn',
          message: `Run ${runNumber} failed${why}; attempt ${attempt + 1}/${of} starts in ${policy.backoffSeconds} s.`,
        },
      };
    }
    const excluded = policy.except.includes(failureClass) || (failureClass === 'machine_lost' && !policy.onMachineLost);
    return {
      restart,
      event: {
        kind: 'failed',
        level: 'error',
        message: `Run ${runNumber} failed${why}; attempt ${attempt}/${of}, not restarted${
          excluded ? ' (the policy does not restart this class)' : ''
        }.`,
      },
    };
  }

  schedule(): void {
    this.at = Date.now() + this.policy.backoffSeconds * 1000;
  }

  /** Cancels a pending restart; false when none was pending. */
  cancel(): boolean {
    if (this.at === null) return false;
    this.at = null;
    return true;
  }

  /** Waits for a pending restart's time; false when it was cancelled meanwhile (nothing is to run). */
  async backoff(): Promise<boolean> {
    const at = this.at;
    if (at === null) return true;
    const waiting = new CancellationScope();
    const timer = waiting.run(() => sleep(Math.max(0, at - Date.now())));
    const due = await Promise.race([
      timer.then(
        () => true,
        () => false,
      ),
      condition(() => this.at === null).then(() => false),
    ]);
    if (!due) {
      waiting.cancel();
      await timer.catch(() => undefined);
      return false;
    }
    this.at = null;
    return true;
  }
}
