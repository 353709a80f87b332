// MetricsTail against an in-memory metrics file and a fake store: what reaches the store,
// from which offset, and which failures end the watch for good.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { initialEta } from '../../domain/eta.js';
import { FAILURE } from '../../domain/failures.js';
import { ExecutorError } from '../../executors/types.js';
import { checkPoints } from '../../metrics/batch.js';
import type { CommitBatchInput, CommitResult, MetricsStore } from '../../metrics/store.js';
import { MetricsTail, type MetricsTailLimits } from '../../metrics/tail.js';

const FILE = '/runs/process-1/run-1/metrics.jsonl';
const OWNER = 'workflow-run/activity-1#1';

/** A metrics file that grows as the test appends to it; reads as the executors do (a missing tail reads as empty). */
function fakeMetricsFile() {
  let bytes = new Uint8Array(0);
  const reads: Array<{ offset: number; maxBytes: number }> = [];
  let failWith: Error | null = null;
  return {
    reads,
    append(text: string): void {
      const more = new TextEncoder().encode(text);
      const grown = new Uint8Array(bytes.length + more.length);
      grown.set(bytes);
      grown.set(more, bytes.length);
      bytes = grown;
    },
    get size(): number {
      return bytes.length;
    },
    failReadsWith(error: Error | null): void {
      failWith = error;
    },
    source: {
      async readChunk(path: string, offset: number, maxBytes: number): Promise<Uint8Array> {
        expect(path).toBe(FILE);
        reads.push({ offset, maxBytes });
        if (failWith) throw failWith;
        return bytes.slice(offset, offset + maxBytes);
      },
    },
  };
}

/**
 * A fake of metrics/store.ts: the same contract (a batch must start at the committed
 * offset and come from the owner; the points are checked as the real store checks
 * them), kept in memory.
 */
function fakeMetricsStore(options: { offset?: number; owner?: string } = {}) {
  const state = {
    offset: options.offset ?? 0,
    owner: options.owner ?? OWNER,
    batches: [] as CommitBatchInput[],
    refuseWith: null as Error | null,
  };
  const store: MetricsStore = {
    async commitBatch(input): Promise<CommitResult> {
      await new Promise((resolve) => setImmediate(resolve));
      if (state.refuseWith) throw state.refuseWith;
      checkPoints(input.points);
      if (input.ownerAttempt !== state.owner)
        return { committed: false, reason: 'fenced', committedOffset: state.offset };
      if (input.fromOffset !== state.offset)
        return { committed: false, reason: 'offset_moved', committedOffset: state.offset };
      state.batches.push(structuredClone(input));
      state.offset = input.toOffset;
      return { committed: true, committedOffset: input.toOffset };
    },
  };
  return { store, state, points: () => state.batches.flatMap((b) => b.points) };
}

function fakeClock(start = 1_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number): void {
      now += ms;
    },
  };
}

function tailOf(
  file: ReturnType<typeof fakeMetricsFile>,
  store: ReturnType<typeof fakeMetricsStore>,
  options: {
    clock?: ReturnType<typeof fakeClock>;
    fromOffset?: number;
    limits?: Partial<MetricsTailLimits>;
    totalSteps?: number;
  } = {},
) {
  return new MetricsTail({
    source: file.source,
    file: FILE,
    store: store.store,
    runId: 7,
    ownerAttempt: OWNER,
    fromOffset: options.fromOffset ?? 0,
    eta: initialEta({ totalSteps: options.totalSteps ?? null }),
    clock: options.clock ?? fakeClock(),
    ...(options.limits ? { limits: options.limits } : {}),
  });
}

const line = (step: number, loss: number): string => `{"step":${step},"loss":${loss}}\n`;
const bytesOf = (text: string): number => new TextEncoder().encode(text).length;

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

describe('MetricsTail', () => {
  it('commits the whole lines the file holds as one batch that ends at the last newline', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    file.append(line(1, 0.9) + line(2, 0.8) + '{"step":3,"total_steps":10,"epoch":1,"loss":0.7}\n');
    const tail = tailOf(file, store);

    expect(await tail.catchUp(true)).toBe(true);

    expect(store.state.batches).toHaveLength(1);
    expect(store.state.batches[0]).toMatchObject({
      runId: 7,
      ownerAttempt: OWNER,
      fromOffset: 0,
      toOffset: file.size,
      progress: { step: 3, totalSteps: 10, epoch: 1 },
      malformed: 0,
      oversized: 0,
    });
    expect(store.points()).toEqual([
      { series: 'loss', step: 1, value: 0.9 },
      { series: 'loss', step: 2, value: 0.8 },
      { series: 'loss', step: 3, value: 0.7 },
    ]);
    expect(tail.offset).toBe(file.size);
    // Nothing new: nothing committed, and the pass says so (the caller then sleeps).
    expect(await tail.catchUp(true)).toBe(false);
    expect(store.state.batches).toHaveLength(1);
  });

  it('counts malformed lines in the batch and keeps going with the good ones', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    file.append(line(1, 0.5) + 'not json\n' + '{"loss":0.4}\n' + line(2, 0.3));
    const tail = tailOf(file, store);

    await tail.catchUp(true);

    expect(store.state.batches).toHaveLength(1);
    expect(store.state.batches[0]).toMatchObject({ malformed: 2, toOffset: file.size });
    expect(store.points().map((p) => p.step)).toEqual([1, 2]);
  });

  it('keeps a partial last line for the next read and commits it once its newline arrives', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    const clock = fakeClock();
    const first = line(1, 0.5);
    file.append(first + '{"step":2,"lo');
    const tail = tailOf(file, store, { clock });

    await tail.catchUp(true);
    expect(store.state.batches.map((b) => [b.fromOffset, b.toOffset])).toEqual([[0, bytesOf(first)]]);

    const sizeBefore = file.size;
    file.append('ss":0.25}\n');
    clock.advance(500);
    await tail.catchUp(true);
    // The next read started past the bytes the reader already held.
    expect(file.reads.map((r) => r.offset)).toEqual([0, sizeBefore]);
    expect(store.state.batches.map((b) => [b.fromOffset, b.toOffset])).toEqual([
      [0, bytesOf(first)],
      [bytesOf(first), file.size],
    ]);
    expect(store.points()).toEqual([
      { series: 'loss', step: 1, value: 0.5 },
      { series: 'loss', step: 2, value: 0.25 },
    ]);
  });

  it('commits a last line without its newline only when finish() says the trainer is gone', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    const clock = fakeClock();
    file.append(line(1, 0.5) + '{"step":2,"loss":0.25}');
    const tail = tailOf(file, store, { clock, totalSteps: 10 });

    await tail.catchUp(false);
    expect(store.points().map((p) => p.step)).toEqual([1]);

    // A step a second, eight to go: any commit but the last would say 8 s.
    clock.advance(1000);
    await tail.finish();
    expect(store.points().map((p) => p.step)).toEqual([1, 2]);
    const last = store.state.batches.at(-1)!;
    expect(last).toMatchObject({ toOffset: file.size, progress: { step: 2 } });
    // The final commit clears the ETA; its state is kept for a resumed run.
    expect(last.etaSeconds).toBeNull();
    expect(last.etaState).toMatchObject({ step: 2, totalSteps: 10 });
    expect(tail.offset).toBe(file.size);
  });

  it('resumes from the offset it is given and never reads what was committed before', async () => {
    const file = fakeMetricsFile();
    const before = line(1, 0.5) + line(2, 0.4);
    file.append(before + line(3, 0.3));
    const store = fakeMetricsStore({ offset: bytesOf(before) });
    const tail = tailOf(file, store, { fromOffset: bytesOf(before) });

    await tail.catchUp(true);

    expect(file.reads[0]!.offset).toBe(bytesOf(before));
    expect(store.state.batches.map((b) => [b.fromOffset, b.toOffset])).toEqual([[bytesOf(before), file.size]]);
    expect(store.points().map((p) => p.step)).toEqual([3]);
  });

  it('re-reads from the committed offset when a commit finds that offset moved', async () => {
    const file = fakeMetricsFile();
    const first = line(1, 0.5);
    file.append(first + line(2, 0.4) + line(3, 0.3));
    // Another writer committed the first line after this attempt read its offset.
    const store = fakeMetricsStore({ offset: bytesOf(first) });
    const tail = tailOf(file, store, { fromOffset: 0 });

    await tail.catchUp(false);

    expect(store.state.batches.map((b) => [b.fromOffset, b.toOffset])).toEqual([[bytesOf(first), file.size]]);
    expect(store.points().map((p) => p.step)).toEqual([2, 3]);
    expect(tail.offset).toBe(file.size);
  });

  it('holds parsed lines until enough bytes gather or commitEveryMs passes, unless the trainer is gone', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    const clock = fakeClock();
    const tail = tailOf(file, store, { clock, limits: { holdBytes: 3 * bytesOf(line(1, 0.5)), commitEveryMs: 500 } });
    file.append(line(1, 0.5));
    expect(await tail.catchUp(true)).toBe(true);

    file.append(line(2, 0.5));
    clock.advance(100);
    expect(await tail.catchUp(true)).toBe(false);
    expect(store.state.batches).toHaveLength(1);

    // Held lines are not read again: the next pass reads past them.
    file.append(line(3, 0.5));
    clock.advance(100);
    expect(await tail.catchUp(true)).toBe(false);
    expect(store.state.batches).toHaveLength(1);

    clock.advance(300);
    expect(await tail.catchUp(true)).toBe(true);
    expect(store.state.batches.map((b) => b.points.map((p) => p.step))).toEqual([[1], [2, 3]]);

    // Enough bytes commit at once, whatever the clock says.
    file.append(line(4, 0.5) + line(5, 0.5) + line(6, 0.5));
    expect(await tail.catchUp(true)).toBe(true);
    // So does a trainer that is gone.
    file.append(line(7, 0.5));
    expect(await tail.catchUp(false)).toBe(true);
    expect(store.state.batches.map((b) => b.points.map((p) => p.step))).toEqual([[1], [2, 3], [4, 5, 6], [7]]);
    expect(tail.offset).toBe(file.size);
  });

  it('reads a file bigger than one read in order, committing each stretch from where the last ended', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    let text = '';
    for (let step = 0; step < 200; step++) text += line(step, step / 1000);
    file.append(text);
    const tail = tailOf(file, store, {
      limits: { readBytes: 100, parseSliceBytes: 7, holdBytes: 256, commitEveryMs: 500 },
    });

    await tail.catchUp(false);

    expect(store.points().map((p) => p.step)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(store.state.batches.length).toBeGreaterThan(5);
    store.state.batches.forEach((batch, i) => {
      expect(batch.fromOffset).toBe(i === 0 ? 0 : store.state.batches[i - 1]!.toOffset);
    });
    expect(tail.offset).toBe(file.size);
  });

  it('counts an oversized line once, in the commit that passes its end', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    const tail = tailOf(file, store);
    file.append(line(1, 0.5));
    await tail.catchUp(true);
    // Longer than the reader's limit and not finished yet: counted, nothing to commit.
    file.append('x'.repeat(70_000));
    expect(await tail.catchUp(true)).toBe(false);
    expect(store.state.batches.map((b) => [b.toOffset, b.oversized])).toEqual([[bytesOf(line(1, 0.5)), 0]]);

    file.append('\n' + line(2, 0.5));
    await tail.catchUp(false);
    expect(store.state.batches.map((b) => [b.toOffset, b.oversized])).toEqual([
      [bytesOf(line(1, 0.5)), 0],
      [file.size, 1],
    ]);
    expect(store.points().map((p) => p.step)).toEqual([1, 2]);
  });

  it('carries the ETA on every commit, from the steps and the time between them', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    const clock = fakeClock();
    const tail = tailOf(file, store, { clock, totalSteps: 100 });
    file.append(line(10, 0.5));
    await tail.catchUp(true);
    clock.advance(1000);
    file.append(line(20, 0.4));
    await tail.catchUp(true);
    // 10 steps in 1 s, 80 to go.
    expect(store.state.batches.map((b) => b.etaSeconds)).toEqual([null, 8]);
    expect(store.state.batches[1]!.etaState).toMatchObject({ step: 20, totalSteps: 100 });
  });

  it('lets go with a non-retryable Fenced failure when a newer attempt owns the run', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore({ owner: 'workflow-run/activity-1#2' });
    file.append(line(1, 0.5));
    const tail = tailOf(file, store);

    const error = await failureOf(tail.catchUp(true));

    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: FAILURE.fenced, nonRetryable: true });
    expect(store.state.batches).toEqual([]);
  });

  it('ends with a non-retryable TrainerOutputRejected failure when the database refuses the data', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    file.append(line(1, 0.5));
    const tail = tailOf(file, store);
    // What postgres throws for a value text cannot hold: the same on every attempt.
    store.state.refuseWith = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
      code: '22021',
    });

    const error = await failureOf(tail.catchUp(true));

    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: FAILURE.trainerOutputRejected, nonRetryable: true });
    expect((error as Error).message).toContain('22021');
    expect(tail.offset).toBe(0);
  });

  it('ends with TrainerOutputRejected when the metrics file is not a regular file', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    file.failReadsWith(new ExecutorError('NOT_A_REGULAR_FILE', `${FILE} is a FIFO`));

    const error = await failureOf(tailOf(file, store).catchUp(true));

    expect(error).toMatchObject({ type: FAILURE.trainerOutputRejected, nonRetryable: true });
  });

  it('passes on failures a retry may cure, as they are, and carries on afterwards', async () => {
    const file = fakeMetricsFile();
    const store = fakeMetricsStore();
    file.append(line(1, 0.5));
    const tail = tailOf(file, store);
    const lost = new ExecutorError('CONNECTION_LOST', 'the SSH connection was lost');
    file.failReadsWith(lost);
    expect(await failureOf(tail.catchUp(true))).toBe(lost);
    store.state.refuseWith = Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    });
    file.failReadsWith(null);
    expect(await failureOf(tail.catchUp(true))).toBe(store.state.refuseWith);

    store.state.refuseWith = null;
    // The refused batch was never stored: the tail resumes from the committed offset.
    file.append(line(2, 0.4));
    await tail.catchUp(false);
    expect(store.points().map((p) => p.step)).toEqual([1, 2]);
    expect(tail.offset).toBe(file.size);
  });
});
