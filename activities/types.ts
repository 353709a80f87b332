// The activity signatures the workflow schedules. Types only: the workflow imports this
// file with `import type`, so no Node code reaches the workflow bundle.
import type { ProcessStatus } from '../domain/status.js';

export interface StatusRecord {
  processId: number;
  status: ProcessStatus;
  statusVersion: number;
  statusBeforeDisable: ProcessStatus | null;
  lastError: string | null;
  runId: number | null;
}

export interface TrainerOutcome {
  /** null when the trainer left no exit code (killed with its wrapper). */
  exitCode: number | null;
  stderrTail: string;
}

export interface NewRun {
  runId: number;
  runNumber: number;
  stopGraceSeconds: number;
  lostTimeoutSeconds: number;
}

export interface ControlActivities {
  recordStatus(record: StatusRecord): Promise<void>;
  createRun(processId: number): Promise<NewRun>;
  /**
   * createRun, then one try for a slot of the run's machine (never waits): the start of a
   * run in one call when a slot is free. slotIndex null: none was, and acquireSlot waits.
   */
  beginRun(processId: number): Promise<NewRun & { slotIndex: number | null }>;
  /** Waits (heartbeating) until a slot of the run's machine is free and leased to the run. */
  acquireSlot(runId: number): Promise<{ slotIndex: number }>;
  releaseSlot(runId: number): Promise<void>;
  finishRun(
    runId: number,
    result: { status: ProcessStatus; exitCode: number | null; error: string | null; trainerMayRemain?: boolean },
  ): Promise<void>;
  noteEvent(processId: number, runId: number | null, level: 'info' | 'warn' | 'error', message: string): Promise<void>;
  deleteProcessData(processId: number): Promise<void>;
}

export interface StopOptions {
  /** Give up on a silent machine sooner than its lost timeout (the trainer is then left to the reaper). */
  unreachableForSeconds?: number;
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
  /** Reachable, host key, free disk, GPUs; stored on the machine's row for the UI. */
  probeMachine(): Promise<MachineProbe>;
}

export interface MachineProbe {
  reachable: boolean;
  hostKeyMatches?: boolean;
  freeDiskBytes?: number;
  gpus?: Array<{ index: number; name: string; memoryMiB: number }>;
  error?: string;
  probedAt: string;
}
