// The state of one training process and everything that changes it: the update handlers
// (their validators refuse what the status table refuses), the mirror that records every
// status change in the database, one run from slot to finish, and the delete.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  patched,
  setHandler,
  upsertSearchAttributes,
  allHandlersFinished,
  workflowInfo,
} from '@temporalio/workflow';
import type { StopOptions, TrainerOutcome } from '../../activities/types.js';
import { FAILURE } from '../../domain/failures.js';
import { exitFailureClass, restartPolicyOf, type FailureClass } from '../../domain/restart.js';
import {
  canTransition,
  decide,
  DELETE_UNDER_WAY,
  isActive,
  type ProcessStatus,
  type UserAction,
} from '../../domain/status.js';
import {
  deleteUpdate,
  disableUpdate,
  enableUpdate,
  SEARCH_KEYS,
  snapshotQuery,
  startUpdate,
  stopUpdate,
  type DeleteOptions,
  type ProcessSnapshot,
  processKeyOf,
} from '../messages.js';
import type { TrainingProcessInput } from '../training-process.js';
import { controlOf, machine, type ControlProxies, type MachineProxies } from './activities.js';
import { failureMessage, failureType, StatusTableViolation, watchFailureClass } from './failures.js';
import { RestartChain, type FailureVerdict } from './restarts.js';

export { StatusTableViolation } from './failures.js';

/** How long the stop after a failed launch waits for a silent machine before leaving the trainer to the reaper. */
const LAUNCH_STOP_PATIENCE_SECONDS = 30;

export class TrainingProcess {
  readonly state: ProcessSnapshot;
  /** A start was accepted and its run has not begun. */
  runRequested = false;
  /** A delete was accepted (with its options); the run in flight is being stopped first. */
  deleteRequested: DeleteOptions | null = null;
  /** A stop (or a disable or delete of an active process) was accepted for the run in flight. */
  private stopRequested = false;
  /** What a stopped run becomes instead of `stopped` (a disable of an active process). */
  private afterStop: ProcessStatus | null = null;
  /** The restart chain: the current policy and a pending restart (a stop, disable or delete cancels it). */
  readonly restarts: RestartChain;
  /** The newest status version in the database mirror. */
  private recordedVersion: number;
  private readonly machine: MachineProxies;
  /** Database activities, on the installation's control queue. */
  private readonly db: ControlProxies;
  /** Set when the process's row turned out to be another workflow's: the workflow ends with it. */
  foreign: ApplicationFailure | null = null;

  constructor(private readonly input: TrainingProcessInput) {
    const carried = input.carried;
    this.state = {
      processId: input.processId,
      status: carried?.status ?? 'created',
      statusVersion: carried?.statusVersion ?? 0,
      statusBeforeDisable: carried?.statusBeforeDisable ?? null,
      runNumber: carried?.runNumber ?? 0,
      runId: null,
      lastError: carried?.lastError ?? null,
      attempt: carried?.attempt ?? 1,
    };
    this.restarts = new RestartChain(carried?.restartAt ?? null);
    this.runRequested = this.restarts.at !== null;
    this.recordedVersion = carried?.statusVersion ?? -1;
    this.machine = machine(input.machineId, input.installation);
    this.db = controlOf(input.installation);
    this.setHandlers();
    // Made and started in one action (a sweep with start): the start needs no update.
    if (input.start === true && !carried) this.requestRun();
    void this.mirror();
  }

  /** What the next workflow of a continue-as-new carries over. */
  carried(): TrainingProcessInput {
    const { state, input } = this;
    return {
      processId: input.processId,
      templateId: input.templateId,
      machineId: input.machineId,
      ...(input.installation ? { installation: input.installation } : {}),
      carried: {
        status: state.status,
        statusVersion: state.statusVersion,
        statusBeforeDisable: state.statusBeforeDisable,
        runNumber: state.runNumber,
        lastError: state.lastError,
        attempt: state.attempt,
        ...(this.restarts.at !== null ? { restartAt: this.restarts.at } : {}),
      },
    };
  }

  /** The one place the status changes: only along the status table (see StatusTableViolation). */
  private setStatus(status: ProcessStatus, lastError: string | null = this.state.lastError): void {
    if (!canTransition(this.state.status, status)) {
      throw new StatusTableViolation(
        `Process ${this.state.processId}: the status table has no transition ${this.state.status} → ${status}.`,
      );
    }
    this.state.status = status;
    this.state.lastError = lastError;
    this.state.statusVersion += 1;
  }

  /** Records the same status again with a new error (a failed delete). */
  private setLastError(lastError: string): void {
    this.state.lastError = lastError;
    this.state.statusVersion += 1;
  }

  private refuseUnless(action: UserAction): void {
    if (this.deleteRequested)
      throw ApplicationFailure.nonRetryable(DELETE_UNDER_WAY.en, FAILURE.notAllowed, DELETE_UNDER_WAY);
    const decision = decide(this.state.status, action, {
      statusBeforeDisable: this.state.statusBeforeDisable ?? undefined,
    });
    if (!decision.ok) throw ApplicationFailure.nonRetryable(decision.reason.en, FAILURE.notAllowed, decision.reason);
  }

  private requestRun(): void {
    this.setStatus('queued', null);
    // A user's start begins a new restart chain.
    this.state.attempt = 1;
    this.runRequested = true;
    this.stopRequested = false;
  }

  private setHandlers(): void {
    setHandler(snapshotQuery, () => ({ ...this.state }));

    setHandler(
      startUpdate,
      async () => {
        this.requestRun();
        return this.recorded();
      },
      { validator: () => this.refuseUnless('start') },
    );

    setHandler(
      stopUpdate,
      async () => {
        this.setStatus('stopping');
        if (this.cancelRestart()) this.setStatus('stopped');
        else this.stopRequested = true;
        return this.recorded();
      },
      { validator: () => this.refuseUnless('stop') },
    );

    setHandler(
      disableUpdate,
      async () => {
        if (this.restarts.at !== null) {
          // Waiting to restart: there is no trainer to stop.
          this.setStatus('stopping');
          this.cancelRestart();
          this.state.statusBeforeDisable = 'stopped';
          this.setStatus('disabled');
        } else if (isActive(this.state.status)) {
          // Stopped first; recorded as disabled once the trainer is gone.
          if (this.state.status !== 'stopping') this.setStatus('stopping');
          this.stopRequested = true;
          this.afterStop = 'disabled';
          this.state.statusBeforeDisable = 'stopped';
        } else {
          this.state.statusBeforeDisable = this.state.status;
          this.setStatus('disabled');
        }
        return this.recorded();
      },
      { validator: () => this.refuseUnless('disable') },
    );

    setHandler(
      enableUpdate,
      async () => {
        const decision = decide(this.state.status, 'enable', {
          statusBeforeDisable: this.state.statusBeforeDisable ?? undefined,
        });
        this.state.statusBeforeDisable = null;
        if (decision.ok) this.setStatus(decision.next);
        return this.recorded();
      },
      { validator: () => this.refuseUnless('enable') },
    );

    setHandler(
      deleteUpdate,
      async (options: DeleteOptions) => {
        this.deleteRequested = { force: options?.force === true };
        if (this.restarts.at !== null) {
          this.setStatus('stopping');
          this.cancelRestart();
          this.setStatus('stopped');
        } else if (isActive(this.state.status)) {
          if (this.state.status !== 'stopping') this.setStatus('stopping');
          this.stopRequested = true;
        }
        return this.recorded();
      },
      { validator: (_options: DeleteOptions) => this.refuseUnless('delete') },
    );
  }

  /**
   * The mirror: every status change reaches the database, in order, newest last. A change
   * made while a write is in flight is written right after it.
   */
  private async mirror(): Promise<void> {
    for (;;) {
      await condition(() => this.state.statusVersion > this.recordedVersion);
      const snapshot = { ...this.state };
      try {
        await this.db.control.recordStatus({
          processId: snapshot.processId,
          status: snapshot.status,
          statusVersion: snapshot.statusVersion,
          statusBeforeDisable: snapshot.statusBeforeDisable,
          lastError: snapshot.lastError,
          runId: snapshot.runId,
          attempt: snapshot.attempt,
        });
      } catch (error) {
        // The row is another workflow's (activities/ownership.ts): this one ends, touching nothing.
        if (failureType(error) !== FAILURE.notOwner) throw error;
        this.foreign = ApplicationFailure.nonRetryable(failureMessage(error), FAILURE.notOwner);
        return;
      }
      upsertSearchAttributes([{ key: SEARCH_KEYS.status, value: snapshot.status }]);
      this.recordedVersion = snapshot.statusVersion;
    }
  }

  /**
   * Stops the trainers this workflow started on its machine, found by the key in their run
   * directories (its rows are another's, so nothing is read from them). Best effort: a
   * machine that does not answer keeps them, and the failure says so.
   */
  async stopOwnTrainers(): Promise<string> {
    const key = processKeyOf(workflowInfo().workflowId);
    if (!key) return 'Its trainers (from before installation ids) were not looked for.';
    try {
      const { stopped } = await this.machine.strays.stopTrainersOf({ processId: this.input.processId, key });
      return stopped.length ? `Its trainer was stopped (pid ${stopped.join(', ')}).` : 'No trainer of it was running.';
    } catch (error) {
      return `Its trainer could not be stopped: ${failureMessage(error)}`;
    }
  }

  /** Resolves once every status change so far is in the database mirror. */
  flushed(): Promise<void> {
    return condition(() => this.recordedVersion >= this.state.statusVersion);
  }

  /**
   * An update answers once its status change is in the database mirror, so a caller
   * that reads the process right after its action sees the new status.
   */
  private async recorded(): Promise<{ status: ProcessStatus }> {
    const status = this.state.status;
    const version = this.state.statusVersion;
    await condition(() => this.recordedVersion >= version);
    return { status };
  }

  /** One run: a slot, the launch, the watch until the trainer exits or is stopped, the finish. */
  async run(): Promise<void> {
    this.runRequested = false;
    // Only a pending restart waits: without one, the run is begun in this very activation,
    // as histories from before restarts have it.
    if (this.restarts.at !== null && !(await this.restarts.backoff())) return;
    const attempt = this.state.attempt;
    const options = attempt > 1 ? [{ attempt }] : [];
    // The run and, when one is free, its slot in one local activity; else the wait below.
    const run = patched('begin-run-locally')
      ? await this.db.localControl.beginRun(this.input.processId, ...options)
      : { ...(await this.db.control.createRun(this.input.processId, ...options)), slotIndex: null };
    this.state.runId = run.runId;
    this.state.runNumber = run.runNumber;
    this.restarts.policy = restartPolicyOf(run.restart);

    // queued: wait for a slot (unless it has one already); a stop cancels the wait.
    const acquiring = new CancellationScope();
    const slotIndex = run.slotIndex;
    const acquired =
      slotIndex === null ? acquiring.run(() => this.db.slots.acquireSlot(run.runId)) : Promise.resolve({ slotIndex });
    const slotOrStop = await Promise.race([
      acquired.then(
        () => 'slot' as const,
        (error: unknown) => error,
      ),
      condition(() => this.stopRequested).then(() => 'stop' as const),
    ]);
    if (slotOrStop === 'stop') {
      acquiring.cancel();
      await acquired.catch(() => undefined);
      await this.db.control.releaseSlot(run.runId);
      await this.finish('stopped', null, null);
      return;
    }
    if (slotOrStop !== 'slot') {
      await this.db.control.releaseSlot(run.runId);
      await this.finish('failed', null, failureMessage(slotOrStop));
      return;
    }

    // A stop accepted in the activation that granted the slot launches nothing. Today the
    // race above already picks the stop then (Core hands updates to the workflow before
    // activity results), but which of two promises settling in one activation wins is the
    // SDK's business; this keeps the rule whatever order it settles them in.
    if (this.stopRequested && patched('stop-at-slot-grant')) {
      await this.db.control.releaseSlot(run.runId);
      await this.finish('stopped', null, null);
      return;
    }

    const stopping = this.machine.stop(run);
    /** Stops whatever trainer the run may have; the error when that failed, else null. */
    async function stopTrainer(options?: StopOptions): Promise<unknown> {
      try {
        await stopping.stopTrainer(run.runId, ...(options ? [options] : []));
        return null;
      } catch (error) {
        return error;
      }
    }

    this.setStatus('starting', null);
    try {
      await this.machine.launch.launchTrainer(run.runId);
    } catch (error) {
      // The trainer may have started although no attempt could say so (a lost reply,
      // then failed retries): look for it and stop it before its slot is given away.
      // A machine that did not answer the launch is not waited for long: the worker stops
      // that trainer once the machine answers again (trainerMayRemain).
      const stopError = patched('stop-after-failed-launch')
        ? await stopTrainer({ unreachableForSeconds: LAUNCH_STOP_PATIENCE_SECONDS })
        : null;
      await this.db.control.releaseSlot(run.runId);
      if (this.stopRequested) {
        await this.finish(
          'stopped',
          null,
          stopError === null ? null : `Could not make sure the trainer is gone: ${failureMessage(stopError)}`,
          stopError !== null,
        );
      } else {
        const stopNote =
          stopError === null
            ? ''
            : ` (the trainer it may have started could not be stopped: ${failureMessage(stopError)})`;
        await this.finish(
          'failed',
          null,
          `Launch failed: ${failureMessage(error)}${stopNote}`,
          stopError !== null,
          'launch_failed',
        );
      }
      return;
    }
    if (!this.stopRequested) this.setStatus('running');

    const watching = this.machine.watch.runTraining(run.runId);
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
    await Promise.race([watched, condition(() => this.stopRequested)]);
    let stopError: unknown = null;
    let stoppedTrainer = false;
    if (this.stopRequested && outcome === null && watchError === null) {
      stopError = await stopTrainer();
      stoppedTrainer = stopError === null;
    }
    await watched;
    // The watch gave up for a reason other than a silent machine (bad data, a missing
    // run): the trainer is still there and still holds its GPUs, so it is stopped before
    // the slot is freed. (A machine that is not answering cannot be asked; the worker
    // stops that trainer once the machine answers again.)
    if (
      watchError !== null &&
      !stoppedTrainer &&
      stopError === null &&
      failureType(watchError) !== FAILURE.machineLost &&
      patched('stop-after-watch-failure')
    ) {
      stopError = await stopTrainer();
      stoppedTrainer = stopError === null;
    }
    await this.db.control.releaseSlot(run.runId);

    if (watchError !== null || stopError !== null) {
      const error = watchError ?? stopError;
      const lost = failureType(error) === FAILURE.machineLost;
      if (stoppedTrainer) {
        await this.finish('failed', null, failureMessage(error), false, watchFailureClass(error));
        return;
      }
      // The trainer may outlive its machine's silence: the worker stops it when the machine answers again.
      await this.finish(
        'failed',
        null,
        lost ? failureMessage(error) : `Lost track of the trainer: ${failureMessage(error)}`,
        true,
        lost ? 'machine_lost' : null,
      );
      return;
    }
    const result = outcome as TrainerOutcome | null;
    if (this.stopRequested) {
      await this.finish('stopped', result?.exitCode ?? null, null);
    } else if (result?.exitCode === 0) {
      await this.finish('completed', 0, null);
    } else {
      const code = result?.exitCode ?? null;
      const tail = result?.stderrTail.trim() ?? '';
      const reason = `The trainer exited with code ${code ?? 'unknown'}${tail ? `: ${tail}` : ''}`;
      await this.finish('failed', code, reason, false, exitFailureClass(code, tail));
    }
  }

  private async finish(
    status: ProcessStatus,
    exitCode: number | null,
    error: string | null,
    trainerMayRemain = false,
    failureClass: FailureClass | null = null,
  ): Promise<void> {
    if (this.state.runId !== null) {
      await this.db.control.finishRun(this.state.runId, {
        status,
        exitCode,
        error,
        ...(trainerMayRemain ? { trainerMayRemain } : {}),
        ...(status === 'failed' && failureClass !== null ? { failureClass } : {}),
      });
    }
    // Synchronous unless the policy has something to record: the commands of histories
    // from before restarts keep their order.
    const verdict = status === 'failed' ? this.failureVerdict(failureClass) : null;
    if (verdict?.event)
      await this.db.control.recordEvent({ processId: this.input.processId, runId: this.state.runId, ...verdict.event });
    if (verdict?.restart && this.restartable()) {
      this.restartAfterFailure(error);
      return;
    }
    if (status === 'stopped' && this.afterStop === 'disabled') {
      this.setStatus('disabled', error);
    } else if (status === 'failed' && this.afterStop === 'disabled' && patched('disable-after-failure')) {
      // Disabled while a failure was being handled (its trainer being stopped): the disable
      // still happens, and enable brings back the failure with its reason.
      this.state.statusBeforeDisable = 'failed';
      this.setStatus('disabled', error);
    } else {
      this.setStatus(status, error);
    }
    this.afterStop = null;
    this.stopRequested = false;
  }

  /**
   * After a failed run that nobody asked to stop: when the template's policy restarts its
   * class, the process records `failed` and at once `queued` again with the next attempt
   * (the reason stays in lastError), and the next run starts after the backoff. The
   * failure and its class go to the process log (failureVerdict).
   */
  private failureVerdict(failureClass: FailureClass | null): FailureVerdict | null {
    if (!this.restartable()) return null;
    return this.restarts.verdict(failureClass, this.state.attempt, this.state.runNumber);
  }

  /** Nobody asked to stop, disable or delete the process (also checked again after recording the failure). */
  private restartable(): boolean {
    return !this.stopRequested && this.afterStop === null && this.deleteRequested === null;
  }

  private restartAfterFailure(error: string | null): void {
    this.setStatus('failed', error);
    this.setStatus('queued', error);
    this.state.attempt += 1;
    this.restarts.schedule();
    this.runRequested = true;
  }

  /** A stop, disable or delete during a restart's backoff: no run is in flight, so nothing is to stop. */
  private cancelRestart(): boolean {
    if (!this.restarts.cancel()) return false;
    this.runRequested = false;
    return true;
  }

  /**
   * Removes the run directories, then the process's data. True once deleted; false when the
   * machine refused and the delete was not forced: the process stays, with the reason.
   */
  async delete(): Promise<boolean> {
    const options = this.deleteRequested ?? {};
    try {
      await this.machine.cleanup.removeRunDirs(this.input.processId);
    } catch (error) {
      if (!options.force) {
        this.deleteRequested = null;
        this.setLastError(
          `Delete failed: ${failureMessage(error)}. Retry, or delete with force to leave the files behind.`,
        );
        await this.flushed();
        return false;
      }
      await this.db.control.noteEvent(
        this.input.processId,
        null,
        'warn',
        `Forced delete: run directories may remain on the machine (${failureMessage(error)}).`,
      );
    }
    await this.flushed();
    await this.db.control.deleteProcessData(this.input.processId);
    await condition(allHandlersFinished);
    return true;
  }
}
