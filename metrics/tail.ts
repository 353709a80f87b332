// The tail → parse → batch → commit loop of one run's metrics file. Bytes are read from
// where the reader stands, parsed a slice at a time, held until enough of them gather,
// and committed through the store in file order, one commit in flight while the next
// chunk is read and parsed. Every commit carries the file offset it reaches, so a
// refused one (the offset moved) resumes from the store's offset and nothing is stored
// twice; a fenced one means a newer attempt owns the run, and this one lets go.
//
// The watch activity (activities/watch.ts) drives it: `catchUp` after each look at the
// trainer, `finish` once the trainer is gone.
import { ApplicationFailure } from '@temporalio/common';
import { estimate, observe, type EtaState } from '../domain/eta.js';
import { FAILURE } from '../domain/failures.js';
import type { Executor } from '../executors/types.js';
import type { MetricsCommit } from '../telemetry/hooks.js';
import { rejectedOutput } from './data-errors.js';
import { MetricsLineReader, type PushResult } from './line-reader.js';
import type { MetricsStore } from './store.js';

/** The file a trainer appends its metrics lines to, in its run directory. */
export const METRICS_FILE = 'metrics.jsonl';

export interface MetricsTailLimits {
  /** Bytes read at a time. */
  readBytes: number;
  /**
   * Bytes parsed at a time, yielding in between, so that the commit in flight gets the
   * event loop for its next statement and the database is not left waiting on a long parse.
   */
  parseSliceBytes: number;
  /** Parsed lines wait for a commit until this many bytes of them gather… */
  holdBytes: number;
  /** …or this long has passed since the last commit, or the trainer is gone. */
  commitEveryMs: number;
}

const DEFAULT_TAIL_LIMITS: MetricsTailLimits = {
  readBytes: 4 * 1024 * 1024,
  parseSliceBytes: 32 * 1024,
  holdBytes: 256 * 1024,
  commitEveryMs: 500,
};

export interface MetricsTailDeps {
  /** Reads the metrics file: the executor of the run's machine. */
  source: Pick<Executor, 'readChunk'>;
  /** The metrics file's path on the machine. */
  file: string;
  store: MetricsStore;
  runId: number;
  /** The token this attempt claimed the run with (metrics/store.ts, claimRun). */
  ownerAttempt: string;
  /** The run's committed offset, where reading starts. */
  fromOffset: number;
  /** The run's ETA state, carried on by every commit. */
  eta: EtaState;
  clock?: { now(): number };
  limits?: Partial<MetricsTailLimits>;
  /** Told of every commit that stood (telemetry/hooks.ts). */
  onCommit?: (commit: MetricsCommit) => void;
}

const NOTHING_CARRIED: Readonly<{ malformed: number; oversized: number }> = Object.freeze({
  malformed: 0,
  oversized: 0,
});

export class MetricsTail {
  private readonly deps: MetricsTailDeps;
  private readonly limits: MetricsTailLimits;
  private readonly now: () => number;
  private reader = new MetricsLineReader();
  private eta: EtaState;
  private committed: number;
  // The end of what the reader has consumed: committed, in flight or held.
  private parsedTo: number;
  private inFlight: Promise<boolean> | null = null;
  private held: PushResult | null = null;
  private lastCommitAt = 0;
  // When the oldest bytes not yet handed to a commit were read off the file: where the
  // ingest lag a commit reports starts.
  private readSince: number | null = null;
  // Counts the reader reports before the line they belong to is consumed (an oversized
  // line is counted when it is first seen) ride along to the commit that passes it, so
  // counters, like points, are tied to committed offsets.
  private carried = NOTHING_CARRIED;

  constructor(deps: MetricsTailDeps) {
    this.deps = deps;
    this.limits = { ...DEFAULT_TAIL_LIMITS, ...deps.limits };
    const clock = deps.clock ?? Date;
    this.now = () => clock.now();
    this.eta = deps.eta;
    this.committed = deps.fromOffset;
    this.parsedTo = deps.fromOffset;
  }

  /** The offset the store holds for the run: a new reader would resume from here. */
  get offset(): number {
    return this.committed;
  }

  /**
   * Reads what the file holds now and commits it, held lines included when the trainer
   * is gone (`trainerAlive` false) or `commitEveryMs` has passed; returns once the last
   * commit stands. True when it committed something: a pass that only holds lines
   * should sleep before the next, since reads of local files are synchronous.
   */
  async catchUp(trainerAlive: boolean): Promise<boolean> {
    try {
      return await this.readToEnd(trainerAlive);
    } catch (error) {
      throw rejectedOutput(error) ?? error;
    }
  }

  /** The trainer is gone: a last line without its newline is complete after all. */
  async finish(): Promise<void> {
    try {
      const last = this.withCarried(this.reader.finish());
      if (last.consumedBytes > 0) await this.commit(last, true, this.takeReadSince());
    } catch (error) {
      throw rejectedOutput(error) ?? error;
    }
  }

  private async readToEnd(trainerAlive: boolean): Promise<boolean> {
    const { readBytes, holdBytes, commitEveryMs } = this.limits;
    let committed = false;
    for (;;) {
      const chunk = await this.deps.source.readChunk(
        this.deps.file,
        this.parsedTo + this.reader.pendingBytes,
        readBytes,
      );
      if (chunk.length > 0) {
        this.readSince ??= this.now();
        const parsed = this.withCarried(await this.pushInSlices(chunk));
        if (parsed.consumedBytes > 0) {
          this.held = this.held ? addTo(this.held, parsed) : parsed;
          this.parsedTo += parsed.consumedBytes;
        }
      }
      if (
        this.held &&
        (this.held.consumedBytes >= holdBytes || !trainerAlive || this.now() - this.lastCommitAt >= commitEveryMs)
      ) {
        if (!(await this.settle())) continue;
        const batch: PushResult = this.held;
        this.held = null;
        committed = true;
        this.lastCommitAt = this.now();
        const committing = this.commit(batch, false, this.takeReadSince());
        // Awaited by settle(); until then a refusal must not count as unhandled.
        committing.catch(() => undefined);
        this.inFlight = committing;
      }
      // At the end of what the file holds: the last commit must stand before this pass ends.
      if (chunk.length < readBytes && (await this.settle())) return committed;
    }
  }

  /** Commits what the reader finished; false when the offset moved under us (resume from the committed one). */
  private takeReadSince(): number {
    const since = this.readSince ?? this.now();
    this.readSince = null;
    return since;
  }

  private async commit(parsed: PushResult, final: boolean, readSince: number): Promise<boolean> {
    const now = this.now();
    if (parsed.progress)
      this.eta = observe(this.eta, {
        step: parsed.progress.step,
        totalSteps: parsed.progress.totalSteps ?? null,
        atMs: now,
      });
    const result = await this.deps.store.commitBatch({
      runId: this.deps.runId,
      ownerAttempt: this.deps.ownerAttempt,
      fromOffset: this.committed,
      toOffset: this.committed + parsed.consumedBytes,
      points: parsed.points,
      progress: parsed.progress,
      malformed: parsed.malformed,
      oversized: parsed.oversized,
      etaState: this.eta,
      etaSeconds: final ? null : estimate(this.eta, now).etaSeconds,
    });
    if (result.committed) {
      this.committed = result.committedOffset;
      this.deps.onCommit?.({
        points: parsed.points.length,
        skippedLines: parsed.malformed + parsed.oversized,
        lagSeconds: Math.max(0, this.now() - readSince) / 1000,
      });
      return true;
    }
    if (result.reason === 'fenced')
      throw ApplicationFailure.nonRetryable('A newer attempt owns this run; this one lets go.', FAILURE.fenced);
    this.committed = result.committedOffset;
    return false;
  }

  /**
   * Waits for the commit in flight; false when it was refused and reading must resume
   * from the committed offset. A commit that failed is rethrown, and what it carried is
   * read again should this tail be asked for more.
   */
  private async settle(): Promise<boolean> {
    if (!this.inFlight) return true;
    let committed: boolean;
    try {
      committed = await this.inFlight;
    } catch (error) {
      this.resumeFromCommitted();
      throw error;
    } finally {
      this.inFlight = null;
    }
    if (committed) return true;
    this.resumeFromCommitted();
    return false;
  }

  private resumeFromCommitted(): void {
    this.reader = new MetricsLineReader();
    this.carried = NOTHING_CARRIED;
    this.held = null;
    this.readSince = null;
    this.parsedTo = this.committed;
  }

  private withCarried(parsed: PushResult): PushResult {
    const merged = {
      ...parsed,
      malformed: parsed.malformed + this.carried.malformed,
      oversized: parsed.oversized + this.carried.oversized,
    };
    this.carried =
      parsed.consumedBytes > 0 ? NOTHING_CARRIED : { malformed: merged.malformed, oversized: merged.oversized };
    return merged;
  }

  /** reader.push(chunk) in slices with a yield between them; one result for the whole chunk. */
  private async pushInSlices(chunk: Uint8Array): Promise<PushResult> {
    const slice = this.limits.parseSliceBytes;
    const whole = this.reader.push(chunk.subarray(0, slice));
    for (let from = slice; from < chunk.length; from += slice) {
      await new Promise((resolve) => setImmediate(resolve));
      addTo(whole, this.reader.push(chunk.subarray(from, from + slice)));
    }
    return whole;
  }
}

/** Adds the result of a later push to `whole` (in place), as if both had been one push. */
function addTo(whole: PushResult, later: PushResult): PushResult {
  for (const point of later.points) whole.points.push(point);
  whole.progress = later.progress ?? whole.progress;
  whole.consumedBytes += later.consumedBytes;
  whole.malformed += later.malformed;
  whole.oversized += later.oversized;
  return whole;
}
