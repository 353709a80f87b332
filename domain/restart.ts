// A template's restart policy and the classes of failure it decides on (docs/design.md
// §2, "Restarts"). Pure: the workflow, the services and the views all read it.

/** Why a run failed, as the restart policy sees it. Stored on the run; never rename one. */
export const FAILURE_CLASSES = ['exit_code', 'oom', 'machine_lost', 'launch_failed', 'stalled'] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

export interface RestartPolicy {
  /** How many times a failed run is followed by a new one (0: never). */
  onFailure: number;
  /** The wait before each new run. */
  backoffSeconds: number;
  /** Whether a machine lost past its timeout counts as a restartable failure. */
  onMachineLost: boolean;
  /** Classes that are never restarted. */
  except: FailureClass[];
}

export const DEFAULT_RESTART_POLICY: Readonly<RestartPolicy> = Object.freeze({
  onFailure: 0,
  backoffSeconds: 30,
  onMachineLost: false,
  except: [],
});

export const RESTART_LIMITS = { onFailure: 100, backoffSeconds: 86_400, stallSeconds: { min: 5, max: 7 * 86_400 } };

export function isFailureClass(value: unknown): value is FailureClass {
  return typeof value === 'string' && (FAILURE_CLASSES as readonly string[]).includes(value);
}

/** A stored policy (possibly partial, possibly from before restarts existed) with its defaults filled in. */
export function restartPolicyOf(stored: Partial<RestartPolicy> | null | undefined): RestartPolicy {
  return {
    onFailure: stored?.onFailure ?? DEFAULT_RESTART_POLICY.onFailure,
    backoffSeconds: stored?.backoffSeconds ?? DEFAULT_RESTART_POLICY.backoffSeconds,
    onMachineLost: stored?.onMachineLost ?? DEFAULT_RESTART_POLICY.onMachineLost,
    except: (stored?.except ?? []).filter(isFailureClass),
  };
}

// The kernel's OOM killer and the usual frameworks' out-of-memory errors, as a trainer's stderr shows them.
const OOM_IN_STDERR =
  /out of memory|oom[-_ ]?kill|killed process \d+|memory cgroup out of memory|MemoryError|std::bad_alloc/i;

/** The class of a trainer that exited non-zero: out of memory (exit 137, or the kernel's message) or its exit code. */
export function exitFailureClass(exitCode: number | null, stderrTail: string): FailureClass {
  if (exitCode === 137 || OOM_IN_STDERR.test(stderrTail)) return 'oom';
  return 'exit_code';
}

/**
 * Whether a run that failed with `failureClass` as attempt `attempt` (1-based) of its chain is
 * followed by a new one. A failure with no class (the platform lost track of the trainer)
 * is never restarted: a second trainer could overlap the first.
 */
export function shouldRestart(policy: RestartPolicy, failureClass: FailureClass | null, attempt: number): boolean {
  if (failureClass === null || attempt > policy.onFailure) return false;
  if (failureClass === 'machine_lost' && !policy.onMachineLost) return false;
  return !policy.except.includes(failureClass);
}

/** How many runs a chain may have: the first and its restarts. */
export function maxAttempts(policy: RestartPolicy): number {
  return policy.onFailure + 1;
}
