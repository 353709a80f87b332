// Activities on a machine's own task queue `machine-<id>`: launch, watch (tail metrics,
// heartbeat, re-attach on retry), stop, and clean up a process's run directories.
import crypto from 'node:crypto';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { and, desc, eq, isNotNull, isNull, lt } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Db } from '../db/client.js';
import { machines, processEvents, runs } from '../db/schema.js';
import { estimate, initialEta, observe, type EtaState } from '../domain/eta.js';
import { FAILURE } from '../domain/failures.js';
import { MetricsLineReader, type PushResult } from '../domain/metrics-line.js';
import { pgText } from '../domain/pg-text.js';
import { dataErrorOf } from './data-errors.js';
import { createExecutorFor, type MachineRow } from './executor-factory.js';
import { isExecutorError, type Executor, type TrainerHandle } from './executors/types.js';
import { claimRun, createMetricsStore } from './metrics-store.js';
import { secretEnvOf } from './secret-env.js';
import type { MachineActivities, MachineProbe, TrainerOutcome } from './types.js';

export type { MachineRow };

export interface MachineDeps {
  db: Db;
  sql: postgres.Sql;
  machine: MachineRow;
  dataDir: string;
  secret: string;
  keysDir: string | null;
  /** Poll interval of the metrics tail when the file is quiet. */
  idlePollMs?: number;
  /** How often long activities (a grace period, a removal) heartbeat; default 2 s. */
  heartbeatMs?: number;
}

const METRICS_FILE = 'metrics.jsonl';
const READ_CHUNK = 4 * 1024 * 1024;
// Parsed this much at a time, yielding in between, so that the commit in flight gets the
// event loop for its next statement and the database is not left waiting on a long parse.
const PARSE_SLICE = 32 * 1024;
// Parsed lines wait for a commit until this many bytes of them gather or this long has passed (see runTraining).
const HOLD_BYTES = 256 * 1024;
const COMMIT_EVERY_MS = 500;
const HEARTBEAT_MS = 2000;
const LOG_TAIL_BYTES = 16 * 1024;
// How long a launch that found its run directory taken waits for the other launch's handle.
const HANDLE_WAIT_MS = 15_000;
// The grace a trainer launched too late gets: it has done nothing worth saving yet.
const LATE_LAUNCH_GRACE_MS = 5_000;
// How often a stop in its grace period looks whether the trainer is gone.
const STOP_POLL_MS = 50;

/** Heartbeat details of stopTrainer: when its first TERM was sent (ms since the epoch). */
interface StopProgress {
  termSentAt: number;
}

/** A worker shutting down (or a timed-out attempt): let go; the next attempt carries on from the heartbeat. */
function letGoIfCancelled(context: Context | undefined): void {
  if (context?.cancellationSignal.aborted) throw new CancelledFailure('Let go of the stop; the next attempt carries on.');
}

/** Errors that mean "the machine is not answering now", as opposed to a bug or a refusal. */
function unreachable(error: unknown): boolean {
  return isExecutorError(error, 'UNREACHABLE') || isExecutorError(error, 'CONNECTION_LOST');
}

/**
 * What the trainer wrote fails the same way on every attempt: a log or metrics file that
 * is not a regular file, or data the database refuses. Retrying would never see the exit,
 * so the watch ends with a typed, non-retryable failure that says why.
 */
function rejectedOutput(error: unknown): ApplicationFailure | null {
  if (isExecutorError(error, 'NOT_A_REGULAR_FILE')) {
    return ApplicationFailure.nonRetryable(`The trainer's output cannot be read: ${pgText(error.message)}`, FAILURE.trainerOutputRejected);
  }
  const data = dataErrorOf(error);
  if (data) {
    return ApplicationFailure.nonRetryable(`The database refused what the trainer wrote (${data.code}): ${pgText(data.message)}`, FAILURE.trainerOutputRejected);
  }
  return null;
}

function handleOf(run: typeof runs.$inferSelect): TrainerHandle | null {
  if (run.pid === null || run.pgid === null || run.processStartTime === null || run.runDir === null) return null;
  return { pid: run.pid, pgid: run.pgid, startTime: run.processStartTime, runDir: run.runDir };
}

/** reader.push(chunk) in PARSE_SLICE pieces with a yield between them; one result for the whole chunk. */
async function pushInSlices(reader: MetricsLineReader, chunk: Uint8Array): Promise<PushResult> {
  const whole = reader.push(chunk.subarray(0, PARSE_SLICE));
  for (let from = PARSE_SLICE; from < chunk.length; from += PARSE_SLICE) {
    await new Promise((resolve) => setImmediate(resolve));
    addTo(whole, reader.push(chunk.subarray(from, from + PARSE_SLICE)));
  }
  return whole;
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

export function createMachineActivities(deps: MachineDeps): {
  activities: MachineActivities;
  probe(): Promise<MachineProbe>;
  reapLostTrainers(): Promise<number>;
  dispose(): Promise<void>;
} {
  const { db, machine } = deps;
  // Built on first use: a machine with a bad key or address fails its own activities with
  // the reason, and never stops the worker from serving the other machines.
  let built: Executor | null = null;
  const executorOf = (): Executor => {
    if (built) return built;
    try {
      built = createExecutorFor(machine, { dataDir: deps.dataDir, secret: deps.secret, keysDir: deps.keysDir });
      return built;
    } catch (error) {
      throw ApplicationFailure.nonRetryable(`Machine "${machine.name}": ${(error as Error).message}`, FAILURE.launchFailed);
    }
  };
  const store = createMetricsStore(db, deps.sql);
  const idlePollMs = deps.idlePollMs ?? 200;
  const heartbeatMs = deps.heartbeatMs ?? HEARTBEAT_MS;

  async function loadRun(runId: number) {
    const [run] = await db.select().from(runs).where(eq(runs.id, runId));
    if (!run) throw ApplicationFailure.nonRetryable(`Run ${runId} does not exist.`, FAILURE.notFound);
    return run;
  }

  async function trainerEnv(run: typeof runs.$inferSelect, runDir: string): Promise<Record<string, string>> {
    const template = run.templateSnapshot as { env?: Record<string, string>; secretEnv?: Record<string, string>; totalSteps?: number | null };
    const root = await executorOf().runsRoot();
    const env: Record<string, string> = {
      PATH: executorOf().kind === 'local' ? (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin') : '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: executorOf().kind === 'local' ? (process.env.HOME ?? '/') : path.posix.dirname(path.posix.dirname(root)),
      LANG: executorOf().kind === 'local' ? (process.env.LANG ?? 'C.UTF-8') : 'C.UTF-8',
      ...(template.env ?? {}),
      ...secretEnvOf(deps.secret, template),
      TRAINYARD_RUN_DIR: runDir,
      TRAINYARD_METRICS_FILE: path.posix.join(runDir, METRICS_FILE),
      TRAINYARD_PARAMS: JSON.stringify(run.params ?? {}),
    };
    const totalSteps = (run.params as Record<string, unknown>)?.total_steps ?? template.totalSteps;
    if (typeof totalSteps === 'number' && Number.isFinite(totalSteps)) env.TRAINYARD_TOTAL_STEPS = String(totalSteps);
    // Resume only from a stopped previous run on this machine; a completed or failed one starts fresh.
    const [previous] = await db
      .select()
      .from(runs)
      .where(and(eq(runs.processId, run.processId), lt(runs.number, run.number), isNotNull(runs.finishedAt)))
      .orderBy(desc(runs.number))
      .limit(1);
    if (previous && previous.status === 'stopped' && previous.machineId === machine.id && previous.runDir) {
      env.TRAINYARD_PREVIOUS_RUN_DIR = previous.runDir;
    }
    if (machine.gpus.length > 0 && run.slotIndex !== null) {
      const perSlot = Math.max(1, Math.floor(machine.gpus.length / machine.slots));
      const mine = machine.gpus.slice(run.slotIndex * perSlot, run.slotIndex * perSlot + perSlot);
      if (mine.length > 0) env.CUDA_VISIBLE_DEVICES = mine.join(',');
    }
    return env;
  }

  async function recordHandle(runId: number, handle: TrainerHandle): Promise<void> {
    await db
      .update(runs)
      .set({ pid: handle.pid, pgid: handle.pgid, processStartTime: handle.startTime, runDir: handle.runDir, startedAt: new Date() })
      .where(eq(runs.id, runId));
  }

  /**
   * The run's directory, chosen once: overlapping attempts of launchTrainer agree on the
   * first one recorded, so they cannot start two trainers in two directories. `ours`:
   * this call recorded it, so no trainer can be there yet.
   */
  async function claimRunDir(run: typeof runs.$inferSelect): Promise<{ runDir: string; ours: boolean }> {
    if (run.runDir !== null) return { runDir: run.runDir, ours: false };
    const root = await executorOf().runsRoot();
    // A random part: ids restart with a new database, and a run must never adopt the
    // trainer an older installation left in a directory of the same name.
    const fresh = path.posix.join(root, `process-${run.processId}`, `run-${run.number}-${run.id}-${crypto.randomBytes(4).toString('hex')}`);
    const [claimed] = await db
      .update(runs)
      .set({ runDir: fresh })
      .where(and(eq(runs.id, run.id), isNull(runs.runDir)))
      .returning({ runDir: runs.runDir });
    if (claimed) return { runDir: fresh, ours: true };
    const stored = (await loadRun(run.id)).runDir;
    if (stored === null) throw new Error(`Run ${run.id}: the run directory was neither recorded nor found.`);
    return { runDir: stored, ours: false };
  }

  /** The handle a launch under way in `runDir` is about to record (its wrapper writes it within moments). */
  async function handleSoon(runDir: string): Promise<TrainerHandle | null> {
    const deadline = Date.now() + HANDLE_WAIT_MS;
    for (;;) {
      const found = await executorOf().readHandle(runDir);
      if (found || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  function graceMsOf(run: typeof runs.$inferSelect): number {
    return ((run.templateSnapshot as { stopGraceSeconds?: number }).stopGraceSeconds ?? 30) * 1000;
  }

  /**
   * True once the trainer's group is gone, false if it is still there after `ms`. A worker
   * shutting down mid-grace lets go (CancelledFailure): the next attempt of the stop keeps
   * the first TERM's deadline from its heartbeat, so nothing is lost by leaving.
   */
  async function goneWithin(handle: TrainerHandle, ms: number, context?: Context): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (!(await executorOf().inspect(handle)).alive) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      letGoIfCancelled(context);
      await new Promise((resolve) => setTimeout(resolve, Math.min(STOP_POLL_MS, left)));
    }
  }

  function typedFailure(error: unknown): never {
    if (isExecutorError(error, 'HOST_KEY_MISMATCH')) throw ApplicationFailure.nonRetryable(error.message, FAILURE.hostKeyMismatch);
    if (isExecutorError(error, 'HOST_KEY_NOT_PINNED') || isExecutorError(error, 'AUTH_FAILED') || isExecutorError(error, 'LAUNCH_FAILED')) {
      throw ApplicationFailure.nonRetryable((error as Error).message, FAILURE.launchFailed);
    }
    throw error;
  }

  // The watch loop of each run this worker reads, by run id: a stop that has seen the
  // trainer gone wakes it, so `stopped` does not wait for the loop's next poll.
  const wakers = new Map<number, () => void>();

  const lastTails = new Map<number, string>();
  /**
   * Copies the ends of stdout/stderr into the run's row, so logs stay viewable without the
   * machine; NUL bytes and the like become U+FFFD, which PostgreSQL text can hold.
   */
  async function copyLogTails(runId: number, runDir: string): Promise<{ stdout: string; stderr: string }> {
    const [stdout, stderr] = (
      await Promise.all([
        executorOf().tail(path.posix.join(runDir, 'stdout.log'), LOG_TAIL_BYTES),
        executorOf().tail(path.posix.join(runDir, 'stderr.log'), LOG_TAIL_BYTES),
      ])
    ).map(pgText) as [string, string];
    const key = `${stdout.length}:${stdout.slice(-64)}|${stderr.length}:${stderr.slice(-64)}`;
    if (lastTails.get(runId) !== key) {
      await db.update(runs).set({ stdoutTail: stdout, stderrTail: stderr }).where(eq(runs.id, runId));
      lastTails.set(runId, key);
    }
    return { stdout, stderr };
  }

  /** Heartbeats while `work` runs, so long waits (a grace period) do not time out. */
  async function heartbeating<T>(work: Promise<T>, details?: unknown): Promise<T> {
    const context = Context.current();
    const timer = setInterval(() => context.heartbeat(details), heartbeatMs);
    try {
      return await work;
    } finally {
      clearInterval(timer);
    }
  }

  const activities: MachineActivities = {
    async launchTrainer(runId) {
      const run = await loadRun(runId);
      // A late attempt (one that outlived its timeout) must not start what the workflow gave up on.
      if (run.finishedAt) throw ApplicationFailure.nonRetryable(`Run ${runId} is finished; nothing to launch.`, FAILURE.launchFailed);
      try {
        const adopted = handleOf(run);
        if (adopted) return { pid: adopted.pid };
        const { runDir, ours } = await claimRunDir(run);
        // An earlier or overlapping attempt may have launched before it could record the
        // handle: adopt it. (A directory this attempt just claimed holds nothing yet.)
        const recorded = ours ? null : await executorOf().readHandle(runDir);
        if (recorded) {
          await recordHandle(runId, recorded);
          return { pid: recorded.pid };
        }
        const template = run.templateSnapshot as { command: string; workingDir?: string | null };
        let handle: TrainerHandle;
        try {
          handle = await executorOf().launch({
            runDir,
            command: template.command,
            ...(template.workingDir ? { workingDir: template.workingDir } : {}),
            env: await trainerEnv(run, runDir),
          });
        } catch (error) {
          if (!isExecutorError(error, 'RUN_DIR_EXISTS')) throw error;
          // Another attempt created the directory; its wrapper records the handle right after.
          const found = await handleSoon(runDir);
          if (!found) throw ApplicationFailure.nonRetryable(`The run directory ${runDir} exists but holds no trainer.`, FAILURE.launchFailed);
          handle = found;
        }
        await recordHandle(runId, handle);
        // The workflow gave up on this run while this (late) attempt launched: nobody
        // watches this trainer, so it must not keep its GPUs.
        const [now] = await db.select({ finishedAt: runs.finishedAt }).from(runs).where(eq(runs.id, runId));
        if (now?.finishedAt) {
          await executorOf().stop(handle, Math.min(graceMsOf(run), LATE_LAUNCH_GRACE_MS));
          throw ApplicationFailure.nonRetryable(`Run ${runId} finished while this attempt launched; its trainer was stopped.`, FAILURE.launchFailed);
        }
        return { pid: handle.pid };
      } catch (error) {
        typedFailure(error);
      }
    },

    async runTraining(runId): Promise<TrainerOutcome> {
      const context = Context.current();
      const info = context.info;
      const token = `${info.workflowExecution?.runId ?? 'standalone'}/${info.activityId}#${info.attempt}`;
      const run = await loadRun(runId);
      const handle = handleOf(run);
      if (!handle) throw ApplicationFailure.nonRetryable(`Run ${runId} has no launched trainer.`, FAILURE.launchFailed);
      // Claim before touching anything: an older attempt still alive is fenced out from here on.
      let { committedOffset: offset } = await claimRun(db, runId, token);
      let reader = new MetricsLineReader();
      let eta: EtaState = (run.etaState as EtaState | null) ?? initialEta({ totalSteps: run.totalSteps });
      let unreachableSince: number | null = run.unreachableSince ? run.unreachableSince.getTime() : null;
      const lostMs = machine.lostTimeoutSeconds * 1000;
      const metricsFile = path.posix.join(handle.runDir, METRICS_FILE);
      let lastBeat = 0;

      // Counts the reader reports before the line they belong to is consumed (an oversized
      // line is counted when it is first seen) ride along to the commit that passes it, so
      // counters, like points, are tied to committed offsets.
      let carried = { malformed: 0, oversized: 0 };
      function withCarried(parsed: PushResult): PushResult {
        const merged = { ...parsed, malformed: parsed.malformed + carried.malformed, oversized: parsed.oversized + carried.oversized };
        carried = parsed.consumedBytes > 0 ? { malformed: 0, oversized: 0 } : { malformed: merged.malformed, oversized: merged.oversized };
        return merged;
      }

      /** Commits what the reader finished; false when the offset moved under us (resume from the committed one). */
      async function commit(parsed: PushResult, final: boolean): Promise<boolean> {
        const now = Date.now();
        if (parsed.progress) eta = observe(eta, { step: parsed.progress.step, totalSteps: parsed.progress.totalSteps ?? null, atMs: now });
        const result = await store.commitBatch({
          runId,
          ownerAttempt: token,
          fromOffset: offset,
          toOffset: offset + parsed.consumedBytes,
          points: parsed.points,
          progress: parsed.progress,
          malformed: parsed.malformed,
          oversized: parsed.oversized,
          etaState: eta,
          etaSeconds: final ? null : estimate(eta, now).etaSeconds,
        });
        if (result.committed) {
          offset = result.committedOffset;
          return true;
        }
        if (result.reason === 'fenced') throw ApplicationFailure.nonRetryable('A newer attempt owns this run; this one lets go.', FAILURE.fenced);
        offset = result.committedOffset;
        return false;
      }

      // One commit may be in flight while the next chunk is read and parsed (the database
      // stores one batch while this process parses the next). Commits still go one at a
      // time, each from where the last ended. Parsed lines are held until HOLD_BYTES of
      // them gather, COMMIT_EVERY_MS pass, or the trainer is gone: a trickle of lines from
      // each of many trainers costs a commit every half second, not one a poll.
      // `parsedTo`: the end of what the reader has consumed, committed, in flight or held.
      let parsedTo = offset;
      let inFlight: Promise<boolean> | null = null;
      let held: PushResult | null = null;
      let lastCommitAt = 0;
      /** Waits for the commit in flight; false when it was refused and reading must resume from the committed offset. */
      async function settle(): Promise<boolean> {
        if (!inFlight) return true;
        const committed = await inFlight.finally(() => {
          inFlight = null;
        });
        if (committed) return true;
        reader = new MetricsLineReader();
        carried = { malformed: 0, oversized: 0 };
        held = null;
        parsedTo = offset;
        return false;
      }

      for (;;) {
        if (context.cancellationSignal.aborted) {
          // Worker shutdown or a timed-out attempt: let go; the next attempt re-attaches.
          throw new CancelledFailure('Let go of the trainer; it keeps running.');
        }
        try {
          // Inspect before reading: once the group is gone, the reads below reach the file's end.
          const state = await executorOf().inspect(handle);
          // A pass that committed nothing sleeps before the next: reads of local files are
          // synchronous, so a pass that only holds lines must not go straight round again.
          let committed = false;
          for (;;) {
            const chunk = await executorOf().readChunk(metricsFile, parsedTo + reader.pendingBytes, READ_CHUNK);
            if (chunk.length > 0) {
              const parsed = withCarried(await pushInSlices(reader, chunk));
              if (parsed.consumedBytes > 0) {
                held = held ? addTo(held, parsed) : parsed;
                parsedTo += parsed.consumedBytes;
              }
            }
            if (held && (held.consumedBytes >= HOLD_BYTES || !state.alive || Date.now() - lastCommitAt >= COMMIT_EVERY_MS)) {
              if (!(await settle())) continue;
              const batch: PushResult = held;
              held = null;
              committed = true;
              lastCommitAt = Date.now();
              const committing = commit(batch, false);
              // Awaited by settle(); until then a refusal must not count as unhandled.
              committing.catch(() => undefined);
              inFlight = committing;
            }
            // At the end of what the file holds: the last commit must stand before this pass ends.
            if (chunk.length < READ_CHUNK && (await settle())) break;
          }
          if (unreachableSince !== null) {
            unreachableSince = null;
            await db.update(runs).set({ unreachableSince: null }).where(eq(runs.id, runId));
          }
          if (!state.alive) {
            // The trainer is gone, so a last line without its newline is complete after all.
            const last = withCarried(reader.finish());
            if (last.consumedBytes > 0) await commit(last, true);
            const { stderr } = await copyLogTails(runId, handle.runDir);
            return { exitCode: state.exitCode, stderrTail: stderr.split('\n').slice(-10).join('\n').slice(-2000) };
          }
          if (Date.now() - lastBeat > heartbeatMs) {
            context.heartbeat({ offset });
            lastBeat = Date.now();
            await copyLogTails(runId, handle.runDir);
          }
          if (!committed) {
            const woken = new Promise<void>((resolve) => wakers.set(runId, resolve));
            await Promise.race([context.sleep(idlePollMs).catch(() => undefined), woken]);
            wakers.delete(runId);
          }
        } catch (error) {
          const rejected = rejectedOutput(error);
          if (rejected) throw rejected;
          if (!unreachable(error)) throw error;
          const now = Date.now();
          if (unreachableSince === null) {
            unreachableSince = now;
            await db.update(runs).set({ unreachableSince: new Date(now) }).where(eq(runs.id, runId));
          }
          if (now - unreachableSince > lostMs) {
            throw ApplicationFailure.nonRetryable(
              `The machine "${machine.name}" was unreachable for more than ${machine.lostTimeoutSeconds} s: ${(error as Error).message}`,
              FAILURE.machineLost,
            );
          }
          context.heartbeat({ offset, unreachable: true });
          await context.sleep(1000).catch(() => undefined);
        }
      }
    },

    async stopTrainer(runId, options) {
      const context = Context.current();
      const run = await loadRun(runId);
      const graceMs = graceMsOf(run);
      // When an earlier attempt of this stop sent TERM (its heartbeat said so), the grace
      // runs from then: a worker restart mid-grace must not start it afresh, or a trainer
      // that ignores TERM could outlive every attempt.
      const earlier = context.info.heartbeatDetails as Partial<StopProgress> | undefined;
      let termSentAt = typeof earlier?.termSentAt === 'number' ? earlier.termSentAt : null;
      const startedAt = Date.now();
      for (;;) {
        try {
          const handle = handleOf(run) ?? (run.runDir ? await executorOf().readHandle(run.runDir) : null);
          if (!handle) return { killed: false };
          if (termSentAt === null) {
            const at = Date.now();
            // Said before the TERM leaves, so that a worker dying right after it cannot lose it.
            context.heartbeat({ termSentAt: at } satisfies StopProgress);
            try {
              await executorOf().signal(handle, 'TERM');
            } catch (error) {
              // No connection was made, so no TERM went out: the grace has not begun.
              if (isExecutorError(error, 'UNREACHABLE')) context.heartbeat({});
              throw error;
            }
            termSentAt = at;
          }
          const progress: StopProgress = { termSentAt };
          context.heartbeat(progress);
          // Wait out what is left of the grace (all of it, unless an earlier attempt sent the
          // TERM), then TERM again in case it never arrived, and KILL.
          const gone = await heartbeating(goneWithin(handle, Math.max(0, termSentAt + graceMs - Date.now()), context), progress);
          const stopped = gone ? { killed: false } : await heartbeating(executorOf().stop(handle, 0), progress);
          wakers.get(runId)?.();
          return stopped;
        } catch (error) {
          if (!unreachable(error)) throw error;
          if (Date.now() - startedAt > Math.min(machine.lostTimeoutSeconds, options?.unreachableForSeconds ?? Infinity) * 1000) {
            throw ApplicationFailure.nonRetryable(`Could not stop the trainer: the machine "${machine.name}" is unreachable.`, FAILURE.machineLost);
          }
          context.heartbeat(termSentAt === null ? undefined : { termSentAt });
          await context.sleep(1000).catch(() => undefined);
          letGoIfCancelled(context);
        }
      }
    },

    async probeMachine() {
      let result: MachineProbe;
      try {
        result = { ...(await executorOf().probe()), probedAt: new Date().toISOString() };
      } catch (error) {
        result = { reachable: false, error: (error as Error).message, probedAt: new Date().toISOString() };
      }
      // Stored as jsonb, which refuses what text refuses: the error may quote the machine's output.
      if (result.error !== undefined) result.error = pgText(result.error);
      if (result.gpus) result.gpus = result.gpus.map((gpu) => ({ ...gpu, name: pgText(gpu.name) }));
      await db.update(machines).set({ probe: result, probedAt: new Date(result.probedAt) }).where(eq(machines.id, machine.id));
      return result;
    },

    async removeRunDirs(processId) {
      // A big run directory (checkpoints, many files) can take minutes to remove, over SSH
      // too: the activity heartbeats all along, so its time budget is the workflow's long
      // one while a dead worker is still noticed within the heartbeat timeout.
      const removal = (async () => {
        const rows = await db.select().from(runs).where(and(eq(runs.processId, processId), eq(runs.machineId, machine.id)));
        for (const row of rows) {
          if (row.runDir) await executorOf().removeRunDir(row.runDir);
        }
        const root = await executorOf().runsRoot();
        await executorOf().removeRunDir(path.posix.join(root, `process-${processId}`));
      })();
      Context.current().heartbeat();
      await heartbeating(removal);
    },
  };

  /**
   * Trainers of runs that failed while the machine was unreachable, or whose workflow was
   * closed by hand (services/process-workflow.ts): once the machine answers, any that is
   * still alive is stopped and noted in its process's log, never re-adopted.
   */
  async function reapLostTrainers(): Promise<number> {
    const lost = await db.select({ id: runs.id }).from(runs).where(and(eq(runs.machineId, machine.id), eq(runs.trainerMayRemain, true)));
    let stopped = 0;
    for (const { id } of lost) {
      // One reaper per run, when several workers serve the machine: the others skip it.
      // The row stays locked until the trainer is gone; if the machine fails to answer, the
      // flag stays set for the next look.
      await db.transaction(async (tx) => {
        const [run] = await tx.select().from(runs).where(and(eq(runs.id, id), eq(runs.trainerMayRemain, true))).for('update', { skipLocked: true });
        if (!run) return;
        const handle = handleOf(run) ?? (run.runDir ? await executorOf().readHandle(run.runDir) : null);
        if (handle && (await executorOf().inspect(handle)).alive) {
          const grace = ((run.templateSnapshot as { stopGraceSeconds?: number }).stopGraceSeconds ?? 30) * 1000;
          await executorOf().stop(handle, grace);
          await tx.insert(processEvents).values({
            processId: run.processId,
            runId: run.id,
            level: 'warn',
            message: run.unreachableSince
              ? `The trainer of run ${run.number} (pid ${handle.pid}) was still running when the machine "${machine.name}" answered again; it was stopped.`
              : `The trainer of run ${run.number} (pid ${handle.pid}) was still running after its run had ended; it was stopped.`,
          });
          stopped += 1;
        }
        await tx.update(runs).set({ trainerMayRemain: false }).where(eq(runs.id, run.id));
      });
    }
    return stopped;
  }

  return {
    activities,
    reapLostTrainers,
    probe: activities.probeMachine,
    dispose: async () => {
      await built?.close();
    },
  };
}
