// Stall detection for the watch activity: a run that writes no metric line for its
// template's stallSeconds is marked stalled (the run's and the process's flag, a process
// event) and, when its template's restart policy restarts stalled runs, given up with a
// Stalled failure so the workflow stops it and starts the next attempt. A line that
// arrives later clears the flag.
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { processes, runs } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';
import { restartPolicyOf, shouldRestart, type RestartPolicy } from '../domain/restart.js';
import type { RunRow } from './machine-context.js';
import { recordProcessEvent, type EventNotifier } from './process-events.js';

/** The pure part: when the run counts as stalled, given the offsets the tail reaches. */
export class StallClock {
  /** The offset the tail had reached when the last line arrived. */
  lastOffset: number;
  private lastLineAt: number;
  constructor(
    readonly stallMs: number | null,
    offset: number,
    now: number,
    public stalled: boolean,
  ) {
    this.lastOffset = offset;
    this.lastLineAt = now;
  }

  /** 'stalled' once the silence passes stallMs, 'resumed' at the first line after, else null. */
  observe(offset: number, now: number): 'stalled' | 'resumed' | null {
    if (offset !== this.lastOffset) {
      this.lastOffset = offset;
      this.lastLineAt = now;
      if (this.stalled) {
        this.stalled = false;
        return 'resumed';
      }
      return null;
    }
    if (this.stallMs !== null && !this.stalled && now - this.lastLineAt > this.stallMs) {
      this.stalled = true;
      return 'stalled';
    }
    return null;
  }

  /** The silence does not count while the machine cannot be read (that is the lost timeout's business). */
  pause(now: number): void {
    this.lastLineAt = now;
  }
}

export interface StallWatch {
  clock: StallClock;
  /** Records a change the clock reports; throws Stalled when the policy restarts the run. */
  note(change: 'stalled' | 'resumed' | null): Promise<void>;
}

export function stallWatch(db: Db, run: RunRow, offset: number, now: number, notifier?: EventNotifier): StallWatch {
  const snapshot = run.templateSnapshot as { stallSeconds?: number | null; restart?: Partial<RestartPolicy> | null };
  const stallSeconds = typeof snapshot.stallSeconds === 'number' ? snapshot.stallSeconds : null;
  const clock = new StallClock(stallSeconds === null ? null : stallSeconds * 1000, offset, now, run.stalled);
  const policy = restartPolicyOf(snapshot.restart);

  async function mark(stalled: boolean): Promise<void> {
    await db
      .update(runs)
      .set({ stalled })
      .where(and(eq(runs.id, run.id), isNull(runs.finishedAt)));
    // The process's flag mirrors its latest run only; a newer run resets it (createRun).
    await db
      .update(processes)
      .set({ stalled })
      .where(
        and(
          eq(processes.id, run.processId),
          sql`${run.number} = (select max(number) from runs where process_id = ${run.processId})`,
        ),
      );
  }

  return {
    clock,
    async note(change) {
      if (change === null) return;
      if (change === 'resumed') {
        await mark(false);
        await recordProcessEvent(db, {
          processId: run.processId,
          runId: run.id,
          kind: 'note',
          level: 'info',
          message: `Run ${run.number} writes metrics again; no longer stalled.`,
        });
        return;
      }
      const restarts = shouldRestart(policy, 'stalled', run.attempt);
      const message = `Run ${run.number} stalled: no metric line for ${stallSeconds} s${restarts ? '; stopping it to restart' : ''}.`;
      await mark(true);
      await recordProcessEvent(
        db,
        {
          processId: run.processId,
          runId: run.id,
          kind: 'stalled',
          level: 'warn',
          message,
        },
        notifier,
        // The offset the silence began at names this stall: a retried watch announces the same one.
        `stall-${clock.lastOffset}`,
      );
      if (restarts)
        throw ApplicationFailure.nonRetryable(`Stalled: no metric line for ${stallSeconds} s.`, FAILURE.stalled);
    },
  };
}
