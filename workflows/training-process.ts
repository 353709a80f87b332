// One durable entity workflow per training process. User actions arrive as Updates whose
// validators refuse what the status table refuses; every status change is mirrored to the
// database through an activity; between runs the workflow continues as new.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  allHandlersFinished,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities, MachineActivities, StopOptions, TrainerOutcome } from '../activities/types.js';
import { FAILURE } from '../domain/failures.js';
import { decide, DELETE_UNDER_WAY, isActive, type ProcessStatus, type UserAction } from '../domain/status.js';
import { stopTimeoutSeconds } from '../domain/stop-timeout.js';
import {
  CONTROL_TASK_QUEUE,
  deleteUpdate,
  disableUpdate,
  enableUpdate,
  machineTaskQueue,
  SEARCH_KEYS,
  snapshotQuery,
  startUpdate,
  stopUpdate,
  type DeleteOptions,
  type ProcessSnapshot,
} from './messages.js';

export interface TrainingProcessInput {
  processId: number;
  templateId: number;
  machineId: number;
  /** Carried across continue-as-new. */
  carried?: Omit<ProcessSnapshot, 'processId' | 'runId'>;
}

const control = proxyActivities<ControlActivities>({
  taskQueue: CONTROL_TASK_QUEUE,
  startToCloseTimeout: '30s',
  // Database writes must not be lost to an outage: retry until it comes back.
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

const slots = proxyActivities<Pick<ControlActivities, 'acquireSlot'>>({
  taskQueue: CONTROL_TASK_QUEUE,
  startToCloseTimeout: '365d',
  heartbeatTimeout: '5s',
  retry: { initialInterval: '500ms', maximumInterval: '10s', nonRetryableErrorTypes: [FAILURE.machineRemoved] },
  // A stop while queued must not wait for the cancel to reach the activity (it arrives
  // with a heartbeat, seconds later): the activity stops by itself once the run is
  // finished, and a lease it takes in between is freed as stale.
  cancellationType: 'TRY_CANCEL',
});

/** How long the stop after a failed launch waits for a silent machine before leaving the trainer to the reaper. */
const LAUNCH_STOP_PATIENCE_SECONDS = 30;

function machine(machineId: number) {
  const taskQueue = machineTaskQueue(machineId);
  return {
    launch: proxyActivities<Pick<MachineActivities, 'launchTrainer'>>({
      taskQueue,
      startToCloseTimeout: '2m',
      // An unreachable machine fails the start after these attempts, with the reason.
      retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 4, nonRetryableErrorTypes: [FAILURE.hostKeyMismatch, FAILURE.launchFailed] },
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

function failureMessage(error: unknown): string {
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

function failureType(error: unknown): string | undefined {
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current instanceof ApplicationFailure ? (current.type ?? undefined) : undefined;
}

export async function trainingProcessWorkflow(input: TrainingProcessInput): Promise<void> {
  const carried = input.carried;
  const state: ProcessSnapshot = {
    processId: input.processId,
    status: carried?.status ?? 'created',
    statusVersion: carried?.statusVersion ?? 0,
    statusBeforeDisable: carried?.statusBeforeDisable ?? null,
    runNumber: carried?.runNumber ?? 0,
    runId: null,
    lastError: carried?.lastError ?? null,
  };
  const machineActivities = machine(input.machineId);

  let runRequested = false;
  let stopRequested = false;
  let afterStop: ProcessStatus | null = null;
  let deleteRequested: DeleteOptions | null = null;
  let recordedVersion = carried?.statusVersion ?? -1;

  function setStatus(status: ProcessStatus, lastError: string | null = state.lastError): void {
    state.status = status;
    state.lastError = lastError;
    state.statusVersion += 1;
  }

  function refuseUnless(action: UserAction): void {
    if (deleteRequested) throw ApplicationFailure.nonRetryable(DELETE_UNDER_WAY.en, FAILURE.notAllowed, DELETE_UNDER_WAY);
    const decision = decide(state.status, action, { statusBeforeDisable: state.statusBeforeDisable ?? undefined });
    if (!decision.ok) throw ApplicationFailure.nonRetryable(decision.reason.en, FAILURE.notAllowed, decision.reason);
  }

  setHandler(snapshotQuery, () => ({ ...state }));

  setHandler(
    startUpdate,
    async () => {
      setStatus('queued', null);
      runRequested = true;
      stopRequested = false;
      return recorded();
    },
    { validator: () => refuseUnless('start') },
  );

  setHandler(
    stopUpdate,
    async () => {
      setStatus('stopping');
      stopRequested = true;
      return recorded();
    },
    { validator: () => refuseUnless('stop') },
  );

  setHandler(
    disableUpdate,
    async () => {
      if (isActive(state.status)) {
        // Stopped first; recorded as disabled once the trainer is gone.
        if (state.status !== 'stopping') setStatus('stopping');
        stopRequested = true;
        afterStop = 'disabled';
        state.statusBeforeDisable = 'stopped';
      } else {
        state.statusBeforeDisable = state.status;
        setStatus('disabled');
      }
      return recorded();
    },
    { validator: () => refuseUnless('disable') },
  );

  setHandler(
    enableUpdate,
    async () => {
      const decision = decide(state.status, 'enable', { statusBeforeDisable: state.statusBeforeDisable ?? undefined });
      state.statusBeforeDisable = null;
      if (decision.ok) setStatus(decision.next);
      return recorded();
    },
    { validator: () => refuseUnless('enable') },
  );

  setHandler(
    deleteUpdate,
    async (options: DeleteOptions) => {
      deleteRequested = { force: options?.force === true };
      if (isActive(state.status)) {
        if (state.status !== 'stopping') setStatus('stopping');
        stopRequested = true;
      }
      return recorded();
    },
    { validator: (_options: DeleteOptions) => refuseUnless('delete') },
  );

  // The mirror: every status change reaches the database, in order, newest last. A change
  // made while a write is in flight is written right after it.
  const recorder = (async () => {
    for (;;) {
      await condition(() => state.statusVersion > recordedVersion);
      const snapshot = { ...state };
      await control.recordStatus({
        processId: snapshot.processId,
        status: snapshot.status,
        statusVersion: snapshot.statusVersion,
        statusBeforeDisable: snapshot.statusBeforeDisable,
        lastError: snapshot.lastError,
        runId: snapshot.runId,
      });
      upsertSearchAttributes([{ key: SEARCH_KEYS.status, value: snapshot.status }]);
      recordedVersion = snapshot.statusVersion;
    }
  })();
  void recorder;
  const flushed = () => condition(() => recordedVersion >= state.statusVersion);
  /**
   * An update answers once its status change is in the database mirror, so a caller
   * that reads the process right after its action sees the new status.
   */
  async function recorded(): Promise<{ status: ProcessStatus }> {
    const status = state.status;
    const version = state.statusVersion;
    await condition(() => recordedVersion >= version);
    return { status };
  }

  async function executeRun(): Promise<void> {
    runRequested = false;
    const run = await control.createRun(input.processId);
    state.runId = run.runId;
    state.runNumber = run.runNumber;

    // queued: wait for a slot; a stop cancels the wait.
    const acquiring = new CancellationScope();
    const acquired = acquiring.run(() => slots.acquireSlot(run.runId));
    const slotOrStop = await Promise.race([
      acquired.then(() => 'slot' as const, (error: unknown) => error),
      condition(() => stopRequested).then(() => 'stop' as const),
    ]);
    if (slotOrStop === 'stop') {
      acquiring.cancel();
      await acquired.catch(() => undefined);
      await control.releaseSlot(run.runId);
      await finish('stopped', null, null);
      return;
    }
    if (slotOrStop !== 'slot') {
      await control.releaseSlot(run.runId);
      await finish('failed', null, failureMessage(slotOrStop));
      return;
    }

    // A stop accepted in the activation that granted the slot launches nothing. Today the
    // race above already picks the stop then (Core hands updates to the workflow before
    // activity results), but which of two promises settling in one activation wins is the
    // SDK's business; this keeps the rule whatever order it settles them in.
    if (stopRequested && patched('stop-at-slot-grant')) {
      await control.releaseSlot(run.runId);
      await finish('stopped', null, null);
      return;
    }

    const stopping = machineActivities.stop(run);
    /** Stops whatever trainer the run may have; the error when that failed, else null. */
    async function stopTrainer(options?: StopOptions): Promise<unknown> {
      try {
        await stopping.stopTrainer(run.runId, ...(options ? [options] : []));
        return null;
      } catch (error) {
        return error;
      }
    }

    setStatus('starting', null);
    try {
      await machineActivities.launch.launchTrainer(run.runId);
    } catch (error) {
      // The trainer may have started although no attempt could say so (a lost reply,
      // then failed retries): look for it and stop it before its slot is given away.
      // A machine that did not answer the launch is not waited for long: the worker stops
      // that trainer once the machine answers again (trainerMayRemain).
      const stopError = patched('stop-after-failed-launch') ? await stopTrainer({ unreachableForSeconds: LAUNCH_STOP_PATIENCE_SECONDS }) : null;
      await control.releaseSlot(run.runId);
      if (stopRequested) {
        await finish('stopped', null, stopError === null ? null : `Could not make sure the trainer is gone: ${failureMessage(stopError)}`, stopError !== null);
      } else {
        const stopNote = stopError === null ? '' : ` (the trainer it may have started could not be stopped: ${failureMessage(stopError)})`;
        await finish('failed', null, `Launch failed: ${failureMessage(error)}${stopNote}`, stopError !== null);
      }
      return;
    }
    if (!stopRequested) setStatus('running');

    const watching = machineActivities.watch.runTraining(run.runId);
    let outcome: TrainerOutcome | null = null;
    let watchError: unknown = null;
    const watched = watching.then(
      (result) => {
        outcome = result;
      },
      (error: unknown) => {
        watchError = error;
      },
    );
    await Promise.race([watched, condition(() => stopRequested)]);
    let stopError: unknown = null;
    let stoppedTrainer = false;
    if (stopRequested && outcome === null && watchError === null) {
      stopError = await stopTrainer();
      stoppedTrainer = stopError === null;
    }
    await watched;
    // The watch gave up for a reason other than a silent machine (bad data, a missing
    // run): the trainer is still there and still holds its GPUs, so it is stopped before
    // the slot is freed. (A machine that is not answering cannot be asked; the worker
    // stops that trainer once the machine answers again.)
    if (watchError !== null && !stoppedTrainer && stopError === null && failureType(watchError) !== FAILURE.machineLost && patched('stop-after-watch-failure')) {
      stopError = await stopTrainer();
      stoppedTrainer = stopError === null;
    }
    await control.releaseSlot(run.runId);

    if (watchError !== null || stopError !== null) {
      const error = watchError ?? stopError;
      const lost = failureType(error) === FAILURE.machineLost;
      if (stoppedTrainer) {
        await finish('failed', null, failureMessage(error));
        return;
      }
      // The trainer may outlive its machine's silence: the worker stops it when the machine answers again.
      await finish('failed', null, lost ? failureMessage(error) : `Lost track of the trainer: ${failureMessage(error)}`, true);
      return;
    }
    const result = outcome as TrainerOutcome | null;
    if (stopRequested) {
      await finish('stopped', result?.exitCode ?? null, null);
    } else if (result?.exitCode === 0) {
      await finish('completed', 0, null);
    } else {
      const code = result?.exitCode ?? null;
      const tail = result?.stderrTail.trim() ?? '';
      const reason = `The trainer exited with code ${code ?? 'unknown'}${tail ? `: ${tail}` : ''}`;
      await finish('failed', code, reason);
    }
  }

  async function finish(status: ProcessStatus, exitCode: number | null, error: string | null, trainerMayRemain = false): Promise<void> {
    if (state.runId !== null) await control.finishRun(state.runId, { status, exitCode, error, ...(trainerMayRemain ? { trainerMayRemain } : {}) });
    if (status === 'stopped' && afterStop === 'disabled') {
      setStatus('disabled', error);
    } else if (status === 'failed' && afterStop === 'disabled' && patched('disable-after-failure')) {
      // Disabled while a failure was being handled (its trainer being stopped): the disable
      // still happens, and enable brings back the failure with its reason.
      state.statusBeforeDisable = 'failed';
      setStatus('disabled', error);
    } else {
      setStatus(status, error);
    }
    afterStop = null;
    stopRequested = false;
  }

  const historyIsLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 1500;
  async function startAfresh(): Promise<never> {
    return continueAsNew<typeof trainingProcessWorkflow>({
      processId: input.processId,
      templateId: input.templateId,
      machineId: input.machineId,
      carried: {
        status: state.status,
        statusVersion: state.statusVersion,
        statusBeforeDisable: state.statusBeforeDisable,
        runNumber: state.runNumber,
        lastError: state.lastError,
      },
    });
  }

  for (;;) {
    // Idle: wait for work, or for the history to grow long from actions alone (disable/enable).
    await condition(() => runRequested || deleteRequested !== null || historyIsLong());
    if (runRequested && deleteRequested === null) {
      await executeRun();
      await flushed();
    }
    if (deleteRequested === null && (!runRequested || historyIsLong())) {
      // Between runs: start afresh so history stays small, once no handler is mid-way —
      // unless a handler just asked for another run, which this history then does first.
      await condition(allHandlersFinished);
      if (deleteRequested === null && !runRequested) await startAfresh();
    }
    if (deleteRequested !== null) {
      const options: DeleteOptions = deleteRequested;
      try {
        await machineActivities.cleanup.removeRunDirs(input.processId);
      } catch (error) {
        if (!options.force) {
          deleteRequested = null;
          setStatus(state.status, `Delete failed: ${failureMessage(error)}. Retry, or delete with force to leave the files behind.`);
          await flushed();
          continue;
        }
        await control.noteEvent(input.processId, null, 'warn', `Forced delete: run directories may remain on the machine (${failureMessage(error)}).`);
      }
      await flushed();
      await control.deleteProcessData(input.processId);
      await condition(allHandlersFinished);
      return;
    }
  }
}
