// The activity signatures the workflow schedules. Types only: the workflow imports this
// file with `import type`, so no Node code reaches the workflow bundle.
import type { FailureClass, RestartPolicy } from '../domain/restart.js';
import type { NotificationPayload } from '../domain/notifications.js';
import type { ProcessStatus } from '../domain/status.js';

export interface StatusRecord {
  processId: number;
  status: ProcessStatus;
  statusVersion: number;
  statusBeforeDisable: ProcessStatus | null;
  lastError: string | null;
  runId: number | null;
  /** The attempt of the current restart chain; absent in records from before restarts (1). */
  attempt?: number;
}

/** Events of the process log that operators may want to hear about (activities/process-events.ts). */
export type ProcessEventKind = 'restarted' | 'stalled' | 'failed' | 'note';

export interface ProcessEvent {
  processId: number;
  runId: number | null;
  kind: ProcessEventKind;
  level: 'info' | 'warn' | 'error';
  message: string;
}

export interface CreatedRun {
  runId: number;
  runNumber: number;
  stopGraceSeconds: number;
  lostTimeoutSeconds: number;
  /** The run's template's policy; absent in histories from before restarts (never restart). */
  restart?: RestartPolicy;
}

export interface CreateRunOptions {
  /** The attempt of the restart chain this run is; a restart (attempt > 1) resumes from the run before. */
  attempt?: number;
}

export interface TrainerOutcome {
  /** null when the trainer left no exit code (killed with its wrapper). */
  exitCode: number | null;
  stderrTail: string;
}

export interface ControlActivities {
  recordStatus(record: StatusRecord): Promise<void>;
  createRun(processId: number, options?: CreateRunOptions): Promise<CreatedRun>;
  /**
   * createRun, then one try for a slot of the run's machine (never waits): the start of a
   * run in one call when a slot is free. slotIndex null: none was, and acquireSlot waits.
   */
  beginRun(processId: number, options?: CreateRunOptions): Promise<CreatedRun & { slotIndex: number | null }>;
  /** Waits (heartbeating) until a slot of the run's machine is free and leased to the run. */
  acquireSlot(runId: number): Promise<{ slotIndex: number }>;
  releaseSlot(runId: number): Promise<void>;
  finishRun(
    runId: number,
    result: {
      status: ProcessStatus;
      exitCode: number | null;
      error: string | null;
      trainerMayRemain?: boolean;
      failureClass?: FailureClass | null;
    },
  ): Promise<void>;
  noteEvent(processId: number, runId: number | null, level: 'info' | 'warn' | 'error', message: string): Promise<void>;
  /** A process-log entry of a kind operators may subscribe to (a restart, a stall, a classified failure). */
  recordEvent(event: ProcessEvent): Promise<void>;
  deleteProcessData(processId: number): Promise<void>;
}

export interface StopOptions {
  /** Give up on a silent machine sooner than its lost timeout (the trainer is then left to the reaper). */
  unreachableForSeconds?: number;
}

/** Whose trainers stopTrainersOf looks for: a process id and its key (workflows/messages.ts, processKeyOf). */
export interface StrayTrainers {
  processId: number;
  key: string;
  /** TERM to KILL; a template's default when absent. */
  graceMs?: number;
}

export interface MachineActivities {
  /** Launches the run's trainer, or adopts the one an earlier attempt launched. */
  launchTrainer(runId: number): Promise<{ pid: number }>;
  /** Tails metrics until the trainer's process group is gone; re-attaches on retry. */
  runTraining(runId: number): Promise<TrainerOutcome>;
  /**
   * TERM, the grace period, KILL; returns once the process group is gone (at once when the
   * run has no trainer). MachineLost once the machine has been silent for its lost timeout,
   * or for `unreachableForSeconds` when that is shorter.
   */
  stopTrainer(runId: number, options?: StopOptions): Promise<{ killed: boolean }>;
  /** Removes every run directory of the process on this machine. */
  removeRunDirs(processId: number): Promise<void>;
  /**
   * Stops the trainers still alive in the run directories of a process key (activities/strays.ts),
   * without the database; returns their pids.
   */
  stopTrainersOf(spec: StrayTrainers): Promise<{ stopped: number[] }>;
  /** Reachable, host key, free disk, GPUs; stored on the machine's row for the UI. */
  probeMachine(): Promise<MachineProbe>;
}

/** What a server presents as its SSH host key (the same shape as executors/host-key.ts returns). */
export interface FetchedHostKey {
  fingerprint: string;
  keyType: string;
}

export interface HostKeyActivities {
  /**
   * The host key `address` (host or host:port, already validated) presents, read from the worker: the web server
   * may not reach machines. HostKeyUnreadable when nothing answers with SSH within `timeoutMs`.
   */
  fetchHostKey(address: string, options: { timeoutMs: number }): Promise<FetchedHostKey>;
}

export interface MachineProbe {
  reachable: boolean;
  hostKeyMatches?: boolean;
  freeDiskBytes?: number;
  gpus?: Array<{ index: number; name: string; memoryMiB: number }>;
  error?: string;
  probedAt: string;
}

/** How a delivery retries: exponential backoff from `initialIntervalMs`, giving up after `giveUpAfterMs`. */
export interface DeliveryRetry {
  initialIntervalMs: number;
  maximumIntervalMs: number;
  giveUpAfterMs: number;
}

/** One event for one channel: the input of the delivery workflow and of its activity. */
export interface DeliveryInput {
  channelId: number;
  payload: NotificationPayload;
  retry: DeliveryRetry;
  /** The installation whose control queue delivers it; absent in deliveries started before installation ids. */
  installation?: string;
}

export interface NotificationActivities {
  /** One attempt to POST the event to the channel, written to the delivery log; throws to be retried. */
  deliverNotification(input: DeliveryInput): Promise<{ httpStatus: number }>;
}
