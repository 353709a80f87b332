// The activities a training process schedules, each with its timeouts and retry policy:
// database work on the control queue, trainer work on the machine's own queue.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ControlActivities, MachineActivities } from '../../activities/types.js';
import { FAILURE } from '../../domain/failures.js';
import { stopTimeoutSeconds } from '../../domain/stop-timeout.js';
import { controlTaskQueue, machineTaskQueue } from '../messages.js';

export type ControlProxies = ReturnType<typeof controlOf>;

/** The database activities of an installation's control queue (none: the legacy queue). */
export function controlOf(installation: string | undefined) {
  const taskQueue = controlTaskQueue(installation);
  return { control: control(taskQueue), localControl, slots: slots(taskQueue) };
}

const control = (taskQueue: string) =>
  proxyActivities<ControlActivities>({
    taskQueue,
    startToCloseTimeout: '30s',
    // Database writes must not be lost to an outage: retry until it comes back.
    retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
  });

/**
 * Database work as a local activity: run by the worker that runs the workflow task, within
 * that task, so the step costs database round trips instead of a trip through the server's
 * task queue and back. Only one at a time per workflow: two local activities in flight at
 * once may resolve in one activation on replay but in two when they ran, which reorders the
 * commands after them (a nondeterminism error); so the status mirror, which runs beside the
 * run, stays a normal activity.
 */
const localControl = proxyLocalActivities<Pick<ControlActivities, 'beginRun'>>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

const slots = (taskQueue: string) =>
  proxyActivities<Pick<ControlActivities, 'acquireSlot'>>({
    taskQueue,
    startToCloseTimeout: '365d',
    heartbeatTimeout: '5s',
    retry: { initialInterval: '500ms', maximumInterval: '10s', nonRetryableErrorTypes: [FAILURE.machineRemoved] },
    // A stop while queued must not wait for the cancel to reach the activity (it arrives
    // with a heartbeat, seconds later): the activity stops by itself once the run is
    // finished, and a lease it takes in between is freed as stale.
    cancellationType: 'TRY_CANCEL',
  });

export type MachineProxies = ReturnType<typeof machine>;

export function machine(machineId: number, installation: string | undefined) {
  const taskQueue = machineTaskQueue(machineId, installation);
  return {
    launch: proxyActivities<Pick<MachineActivities, 'launchTrainer'>>({
      taskQueue,
      startToCloseTimeout: '2m',
      // An unreachable machine fails the start after these attempts, with the reason.
      retry: {
        initialInterval: '1s',
        maximumInterval: '10s',
        maximumAttempts: 4,
        nonRetryableErrorTypes: [FAILURE.hostKeyMismatch, FAILURE.launchFailed],
      },
    }),
    watch: proxyActivities<Pick<MachineActivities, 'runTraining'>>({
      taskQueue,
      startToCloseTimeout: '3650d',
      // A dead worker is noticed within this; the next attempt re-attaches to the trainer.
      heartbeatTimeout: '10s',
      retry: { initialInterval: '200ms', maximumInterval: '5s', nonRetryableErrorTypes: [FAILURE.machineLost] },
    }),
    /** The stop of one run: an attempt outlasts the template's grace period (see stopTimeoutSeconds). */
    stop: (run: { stopGraceSeconds?: number; lostTimeoutSeconds?: number }) =>
      proxyActivities<Pick<MachineActivities, 'stopTrainer'>>({
        taskQueue,
        startToCloseTimeout: `${stopTimeoutSeconds(run.stopGraceSeconds ?? 30, run.lostTimeoutSeconds ?? 600)}s`,
        heartbeatTimeout: '15s',
        retry: { initialInterval: '200ms', maximumInterval: '5s', nonRetryableErrorTypes: [FAILURE.machineLost] },
      }),
    strays: strays(taskQueue),
    cleanup: proxyActivities<Pick<MachineActivities, 'removeRunDirs'>>({
      taskQueue,
      // Removing a big run directory (over SSH too) may take long: the activity heartbeats
      // while it removes, so a dead worker is noticed within the heartbeat timeout and only
      // a removal that really runs gets the long budget (the ssh executor's own is 1 h).
      startToCloseTimeout: '2h',
      heartbeatTimeout: '30s',
      retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 3 },
    }),
  };
}

/**
 * The trainers of a workflow whose rows are lost or another's (activities/strays.ts): each
 * found gets its grace period and a KILL, so an attempt takes a few minutes at most. It
 * waits an hour for a worker to serve the machine (`trainyard reconcile` runs with the
 * workers stopped, after a restore), then gives up saying so.
 */
export const strays = (taskQueue: string) =>
  proxyActivities<Pick<MachineActivities, 'stopTrainersOf'>>({
    taskQueue,
    scheduleToStartTimeout: '1h',
    startToCloseTimeout: '5m',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 3 },
  });
