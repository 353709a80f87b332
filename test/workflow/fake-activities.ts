// Fake activities for the workflow tier: the control and machine activities the
// training-process workflow schedules, answering from a per-process script instead of
// PostgreSQL and a trainer. They record every call, so a test asserts what the workflow
// asked for, and every status the workflow mirrored.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type {
  ControlActivities,
  CreateRunOptions,
  MachineActivities,
  StatusRecord,
  StopOptions,
  TrainerOutcome,
} from '../../activities/types.js';
import { FAILURE } from '../../domain/failures.js';
import type { RestartPolicy } from '../../domain/restart.js';
import type { ProcessStatus } from '../../domain/status.js';

/** How each fake activity answers for one process. `hold` waits until the test lets go. */
export interface FakeScript {
  slot: 'grant' | 'hold' | 'machine-removed';
  launch: 'ok' | 'hold' | 'fail';
  /** The trainer's exit, `until-stopped` (it runs until stopTrainer), or a failure of the watch. */
  watch: FakeWatch;
  /** Per run number (1-based), overriding `watch` for that run. */
  watches: FakeWatch[];
  /** The template's restart policy, as createRun returns it (absent: as before restarts). */
  restart?: RestartPolicy;
  stop: 'ok' | 'hold' | 'machine-lost';
  cleanup: 'ok' | 'fail';
}

/** `stalls`: the watch reports a stall the policy restarts (the trainer runs on until stopped). */
export type FakeWatch = TrainerOutcome | 'until-stopped' | 'machine-lost' | 'output-rejected' | 'stalls';

export const DEFAULT_SCRIPT: FakeScript = {
  slot: 'grant',
  launch: 'ok',
  watch: { exitCode: 0, stderrTail: '' },
  watches: [],
  stop: 'ok',
  cleanup: 'ok',
};

export interface FakeCall {
  name: string;
  args: unknown[];
}

const LOST = 'The machine "fake" has not answered for 5 s.';

type Gate = 'slot' | 'launch' | 'stop';

class Latch {
  opened = false;
  private waiters: Array<() => void> = [];
  open(): void {
    this.opened = true;
    for (const wake of this.waiters.splice(0)) wake();
  }
  wait(): Promise<void> {
    return this.opened ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

class FakeProcess {
  readonly calls: FakeCall[] = [];
  readonly records: StatusRecord[] = [];
  runNumber = 0;
  readonly gates = new Map<Gate, Latch>();
  /** Opened by stopTrainer: an `until-stopped` watch then returns. */
  readonly stopped = new Latch();
  /** Opened by a stopTrainer that finds the machine silent: an `until-stopped` watch then loses it too. */
  readonly lost = new Latch();
  constructor(public script: FakeScript) {}
  gate(name: Gate): Latch {
    let latch = this.gates.get(name);
    if (!latch) this.gates.set(name, (latch = new Latch()));
    return latch;
  }
}

/** Waits for `latch`, heartbeating so the workflow's heartbeat timeouts hold; ends on cancellation. */
async function holdUntil(...latches: Latch[]): Promise<void> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), 200);
  try {
    await Promise.race([...latches.map((latch) => latch.wait()), context.cancelled]);
  } finally {
    clearInterval(beat);
  }
}

/**
 * One fake fleet per test file. Process ids are unique per test; a run id is its process
 * id times 1000 plus the run number, so machine activities find their process.
 */
export class FakeFleet {
  private readonly processes = new Map<number, FakeProcess>();

  /** Scripts process `processId`; unscripted parts answer as DEFAULT_SCRIPT. */
  script(processId: number, script: Partial<FakeScript> = {}): void {
    this.processes.set(processId, new FakeProcess({ ...DEFAULT_SCRIPT, ...script }));
  }

  /** Lets a held activity of the process go on. */
  release(processId: number, gate: Gate): void {
    this.process(processId).gate(gate).open();
  }

  calls(processId: number, name?: string): FakeCall[] {
    const calls = this.process(processId).calls;
    return name ? calls.filter((call) => call.name === name) : calls;
  }

  /** Every status the workflow mirrored to the "database", in order. */
  statuses(processId: number): ProcessStatus[] {
    return this.process(processId).records.map((record) => record.status);
  }

  lastRecord(processId: number): StatusRecord | undefined {
    return this.process(processId).records.at(-1);
  }

  private process(processId: number): FakeProcess {
    const found = this.processes.get(processId);
    if (!found) throw new Error(`FakeFleet: process ${processId} has no script.`);
    return found;
  }

  private byRun(runId: number): FakeProcess {
    return this.process(Math.floor(runId / 1000));
  }

  controlActivities(): ControlActivities {
    const note = (fake: FakeProcess, name: string, args: unknown[]) => fake.calls.push({ name, args });
    /** The next run of the process, as createRun and beginRun make it. */
    const newRun = (name: string, processId: number, options: CreateRunOptions | undefined) => {
      const fake = this.process(processId);
      note(fake, name, options ? [processId, options] : [processId]);
      fake.runNumber += 1;
      return {
        runId: processId * 1000 + fake.runNumber,
        runNumber: fake.runNumber,
        stopGraceSeconds: 1,
        lostTimeoutSeconds: 5,
        ...(fake.script.restart ? { restart: fake.script.restart } : {}),
      };
    };
    return {
      recordStatus: async (record) => {
        const fake = this.process(record.processId);
        note(fake, 'recordStatus', [record]);
        fake.records.push(record);
      },
      createRun: async (processId, options) => newRun('createRun', processId, options),
      beginRun: async (processId, options) => ({
        ...newRun('beginRun', processId, options),
        // A slot at once only when the script grants one without a wait; else acquireSlot decides.
        slotIndex: this.process(processId).script.slot === 'grant' ? 0 : null,
      }),
      acquireSlot: async (runId) => {
        const fake = this.byRun(runId);
        note(fake, 'acquireSlot', [runId]);
        if (fake.script.slot === 'machine-removed')
          throw ApplicationFailure.nonRetryable(`The machine of run ${runId} was removed.`, FAILURE.machineRemoved);
        if (fake.script.slot === 'hold') await holdUntil(fake.gate('slot'));
        return { slotIndex: 0 };
      },
      releaseSlot: async (runId) => {
        note(this.byRun(runId), 'releaseSlot', [runId]);
      },
      finishRun: async (runId, result) => {
        note(this.byRun(runId), 'finishRun', [runId, result]);
      },
      noteEvent: async (processId, runId, level, message) => {
        note(this.process(processId), 'noteEvent', [processId, runId, level, message]);
      },
      recordEvent: async (event) => {
        note(this.process(event.processId), 'recordEvent', [event]);
      },
      deleteProcessData: async (processId) => {
        note(this.process(processId), 'deleteProcessData', [processId]);
      },
    };
  }

  machineActivities(): Omit<MachineActivities, 'probeMachine'> {
    return {
      launchTrainer: async (runId) => {
        const fake = this.byRun(runId);
        fake.calls.push({ name: 'launchTrainer', args: [runId] });
        if (fake.script.launch === 'fail')
          throw ApplicationFailure.nonRetryable('Machine "fake": /bin/sh: train: not found', FAILURE.launchFailed);
        if (fake.script.launch === 'hold') await holdUntil(fake.gate('launch'));
        return { pid: 4242 };
      },
      runTraining: async (runId) => {
        const fake = this.byRun(runId);
        fake.calls.push({ name: 'runTraining', args: [runId] });
        const watch = fake.script.watches[(runId % 1000) - 1] ?? fake.script.watch;
        if (watch === 'stalls')
          throw ApplicationFailure.nonRetryable('Stalled: no metric line for 5 s.', FAILURE.stalled);
        if (watch === 'machine-lost') throw ApplicationFailure.nonRetryable(LOST, FAILURE.machineLost);
        if (watch === 'output-rejected')
          throw ApplicationFailure.nonRetryable(
            "The trainer's output cannot be read: not a file",
            FAILURE.trainerOutputRejected,
          );
        if (watch === 'until-stopped') {
          await holdUntil(fake.stopped, fake.lost);
          if (fake.lost.opened) throw ApplicationFailure.nonRetryable(LOST, FAILURE.machineLost);
          return { exitCode: null, stderrTail: '' };
        }
        return watch;
      },
      stopTrainer: async (runId, options?: StopOptions) => {
        const fake = this.byRun(runId);
        fake.calls.push({ name: 'stopTrainer', args: options ? [runId, options] : [runId] });
        if (fake.script.stop === 'hold') await holdUntil(fake.gate('stop'));
        if (fake.script.stop === 'machine-lost') {
          fake.lost.open();
          throw ApplicationFailure.nonRetryable(
            'Could not stop the trainer: the machine "fake" is unreachable.',
            FAILURE.machineLost,
          );
        }
        fake.stopped.open();
        return { killed: false };
      },
      removeRunDirs: async (processId) => {
        const fake = this.process(processId);
        fake.calls.push({ name: 'removeRunDirs', args: [processId] });
        // Non-retryable so a failed delete answers at once instead of after the policy's three attempts.
        if (fake.script.cleanup === 'fail')
          throw ApplicationFailure.create({
            message: 'ssh: connect to host fake port 22: Connection refused',
            nonRetryable: true,
          });
      },
      stopTrainersOf: async (spec) => {
        this.process(spec.processId).calls.push({ name: 'stopTrainersOf', args: [spec] });
        return { stopped: [] };
      },
    };
  }
}
