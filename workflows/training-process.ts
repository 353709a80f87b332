// One durable entity workflow per training process. User actions arrive as Updates whose
// validators refuse what the status table refuses; every status change is mirrored to the
// database through an activity; between runs the workflow continues as new. The state and
// its handlers live in TrainingProcess (training-process/entity.ts); this is the main loop.
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  patched,
  workflowInfo,
} from '@temporalio/workflow';
import { FAILURE } from '../domain/failures.js';
import type { ProcessSnapshot } from './messages.js';
import { TrainingProcess } from './training-process/entity.js';
import { failureMessage, failureType } from './training-process/failures.js';

export interface TrainingProcessInput {
  processId: number;
  templateId: number;
  machineId: number;
  /**
   * The installation whose queues the workflow's activities go to (workflows/messages.ts);
   * absent in workflows started before installation ids, which keep the legacy queues.
   */
  installation?: string;
  /** Start a run at once (a process made with start: true); never carried across continue-as-new. */
  start?: boolean;
  /** Carried across continue-as-new (attempt is absent in inputs from before restarts). */
  carried?: Omit<ProcessSnapshot, 'processId' | 'runId' | 'attempt'> & {
    attempt?: number;
    /** A restart is pending at this workflow time (ms): the new workflow runs it after the backoff. */
    restartAt?: number;
  };
}

const historyIsLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 1500;

export async function trainingProcessWorkflow(input: TrainingProcessInput): Promise<void> {
  const training = new TrainingProcess(input);
  // A row that is another workflow's (a restored backup gave its id to a new process) ends this one.
  const foreign = condition(() => training.foreign !== null).then(() => Promise.reject(training.foreign!));
  try {
    await Promise.race([loop(training), foreign]);
  } catch (error) {
    // Ending so, it must not leave its trainer running: nobody would watch or stop it.
    if (failureType(error) !== FAILURE.notOwner || !patched('stop-trainers-when-foreign')) throw error;
    const trainers = await training.stopOwnTrainers();
    throw ApplicationFailure.nonRetryable(`${failureMessage(error)} ${trainers}`, FAILURE.notOwner);
  }
}

async function loop(training: TrainingProcess): Promise<void> {
  for (;;) {
    // Idle: wait for work, or for the history to grow long from actions alone (disable/enable).
    await condition(() => training.runRequested || training.deleteRequested !== null || historyIsLong());

    // Run.
    if (training.runRequested && training.deleteRequested === null) {
      await training.run();
      await training.flushed();
    }

    // Continue as new between runs, so history stays small, once no handler is mid-way —
    // unless a handler just asked for another run, which this history then does first.
    // A pending restart continues as new too, so a long restart chain keeps history small;
    // the new workflow waits out the rest of the backoff.
    const nothingToRun = () => !training.runRequested || training.restarts.at !== null;
    if (training.deleteRequested === null && (nothingToRun() || historyIsLong())) {
      await condition(allHandlersFinished);
      if (training.deleteRequested === null && nothingToRun()) {
        await continueAsNew<typeof trainingProcessWorkflow>(training.carried());
      }
    }

    // Delete: the workflow ends with the process, unless a delete that was not forced failed.
    if (training.deleteRequested !== null && (await training.delete())) return;
  }
}
