// Activities on the control queue: database work the workflow delegates (status mirror,
// runs, slot leases, the process log, deletion). Idempotent, since Temporal may retry them.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { machines, processEvents, processes, runs, slotLeases, templates } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';
import { pgText } from '../domain/pg-text.js';
import type { Notifier } from '../services/notifications.js';
import { NO_TELEMETRY, type WorkerTelemetry } from '../telemetry/hooks.js';
import { restartPolicyOf } from '../domain/restart.js';
import { ownedOnly } from './ownership.js';
import { recordProcessEvent } from './process-events.js';
import type { ControlActivities, CreatedRun, CreateRunOptions, StatusRecord } from './types.js';

export interface ControlDeps {
  db: Db;
  /** How often a queued run looks for a free slot. */
  slotPollMs?: number;
  telemetry?: WorkerTelemetry;
  /** Announces completed/failed runs to subscribed channels; none → no notifications. */
  notifier?: Pick<Notifier, 'announceProcessEvent'>;
}

export function createControlActivities({
  db,
  slotPollMs = 250,
  telemetry = NO_TELEMETRY,
  notifier,
}: ControlDeps): ControlActivities {
  /**
   * The run's slot: the one it holds, else the lowest free one on its machine, or null
   * (all taken, or the machine is disabled and drains). One call of a database function
   * (db/migrations/0004_take_slot.sql), so the machine's row lock that makes concurrent
   * takers take turns is never held across a round trip to a busy worker: with 200
   * starts at once, a lock held over several round trips queued them for tens of seconds.
   */
  async function trySlot(runId: number): Promise<number | null> {
    const [taken] = await db.execute<{ slot: number | null }>(sql`select trainyard_take_slot(${runId}) as slot`);
    return taken?.slot ?? null;
  }

  /** trySlot, and when none was free, whether the run may still wait for one (else a typed failure). */
  async function takeSlot(runId: number): Promise<number | null> {
    const slot = await trySlot(runId);
    if (slot !== null) return slot;
    const [run] = await db
      .select({ finishedAt: runs.finishedAt, machineId: machines.id })
      .from(runs)
      .leftJoin(machines, eq(machines.id, runs.machineId))
      .where(eq(runs.id, runId));
    if (!run) throw ApplicationFailure.nonRetryable(`Run ${runId} does not exist.`, FAILURE.notFound);
    // The workflow gave up waiting (a stop while queued) and finished the run.
    if (run.finishedAt)
      throw ApplicationFailure.nonRetryable(`Run ${runId} is finished; no slot needed.`, FAILURE.runFinished);
    if (run.machineId === null)
      throw ApplicationFailure.nonRetryable(`The machine of run ${runId} was removed.`, FAILURE.machineRemoved);
    return null;
  }

  /**
   * The run a workflow activity asks for, made once: a retried attempt (same workflow run and
   * activity id, so the same token) finds the run it made. `kind` keeps the tokens of the two
   * activities that make runs apart.
   */
  async function createRun(
    processId: number,
    kind: 'create' | 'begin',
    options: CreateRunOptions,
  ): Promise<CreatedRun> {
    const info = Context.current().info;
    const owner = `${kind}:${info.workflowExecution?.runId ?? 'standalone'}/${info.activityId}`;
    return db.transaction(async (tx) => {
      const [existing] = await tx
        .select()
        .from(runs)
        .where(and(eq(runs.processId, processId), eq(runs.ownerAttempt, owner)));
      const [process] = await tx.select().from(processes).where(eq(processes.id, processId));
      if (!process) throw ApplicationFailure.nonRetryable(`Process ${processId} does not exist.`, FAILURE.notFound);
      const [template] = await tx.select().from(templates).where(eq(templates.id, process.templateId));
      const [machine] = await tx.select().from(machines).where(eq(machines.id, process.machineId));
      if (!template || !machine)
        throw ApplicationFailure.nonRetryable(`Process ${processId} lost its template or machine.`, FAILURE.notFound);
      const result = (runId: number, runNumber: number) => ({
        runId,
        runNumber,
        stopGraceSeconds: template.stopGraceSeconds,
        lostTimeoutSeconds: machine.lostTimeoutSeconds,
        restart: restartPolicyOf(template.restart),
      });
      if (existing) return result(existing.id, existing.number);
      const [last] = await tx
        .select({ n: sql<number>`coalesce(max(${runs.number}), 0)::int` })
        .from(runs)
        .where(eq(runs.processId, processId));
      const number = (last?.n ?? 0) + 1;
      // The run keeps a copy of its template and parameters as they are now.
      const params = { ...template.params, ...process.params };
      const [row] = await tx
        .insert(runs)
        .values({
          processId,
          number,
          machineId: machine.id,
          templateSnapshot: template,
          params,
          totalSteps: template.totalSteps,
          ownerAttempt: owner,
          attempt: options.attempt ?? 1,
        })
        .returning();
      // A new run has written nothing yet: whatever stall the last one had is over.
      await tx.update(processes).set({ stalled: false }).where(eq(processes.id, processId));
      return result(row!.id, number);
    });
  }

  const activities: ControlActivities = {
    async recordStatus(record: StatusRecord) {
      // The version guard: a late (retried) write never overwrites a newer status.
      await db
        .update(processes)
        .set({
          status: record.status,
          statusVersion: record.statusVersion,
          statusBeforeDisable: record.statusBeforeDisable,
          // Reasons may quote the trainer's stderr: keep them storable (see domain/pg-text.ts).
          lastError: record.lastError === null ? null : pgText(record.lastError),
          ...(record.attempt !== undefined ? { attempt: record.attempt } : {}),
          updatedAt: new Date(),
        })
        .where(and(eq(processes.id, record.processId), lt(processes.statusVersion, record.statusVersion)));
      if (record.runId !== null && record.status !== 'disabled') {
        await db
          .update(runs)
          .set({ status: record.status })
          .where(and(eq(runs.id, record.runId), sql`${runs.finishedAt} is null`));
      }
    },

    createRun: (processId, options = {}) => createRun(processId, 'create', options),

    async beginRun(processId, options = {}) {
      const run = await createRun(processId, 'begin', options);
      return { ...run, slotIndex: await trySlot(run.runId) };
    },

    async acquireSlot(runId) {
      const context = Context.current();
      for (;;) {
        const leased = await takeSlot(runId);
        if (leased !== null) return { slotIndex: leased };
        context.heartbeat();
        // Resolves early when the workflow cancels the wait (a stop while queued).
        await Promise.race([context.sleep(slotPollMs), context.cancelled]);
      }
    },

    async releaseSlot(runId) {
      await db.delete(slotLeases).where(eq(slotLeases.runId, runId));
    },

    async finishRun(runId, result) {
      // Counted once per run: a retried attempt finds it finished already.
      const [before] = await db
        .select({ finishedAt: runs.finishedAt, processId: runs.processId })
        .from(runs)
        .where(eq(runs.id, runId));
      await db
        .update(runs)
        .set({
          status: result.status,
          exitCode: result.exitCode,
          error: result.error === null ? null : pgText(result.error),
          finishedAt: new Date(),
          etaSeconds: null,
          trainerMayRemain: result.trainerMayRemain ?? false,
          failureClass: result.failureClass ?? null,
        })
        .where(eq(runs.id, runId));
      if (before && before.finishedAt === null) telemetry.runFinished(result.status);
      // Announced on every attempt, not only the first: the event's key (its run and kind) makes a
      // repeat a no-op, while an attempt that failed after the update above must not lose it.
      if (notifier && before && (result.status === 'completed' || result.status === 'failed')) {
        await notifier.announceProcessEvent({
          processId: before.processId,
          runId,
          event: result.status,
          status: result.status,
          lastError: result.error === null ? null : pgText(result.error),
          exitCode: result.exitCode,
        });
      }
    },

    async noteEvent(processId, runId, level, message) {
      await db.insert(processEvents).values({ processId, runId, level, message: pgText(message) });
    },

    async recordEvent(event) {
      await recordProcessEvent(db, event, notifier);
    },

    async deleteProcessData(processId) {
      await db.transaction(async (tx) => {
        // Points carry no foreign key (it would halve ingest), so they go first, by hand;
        // runs, series, rollups and events go with the process (ON DELETE CASCADE).
        await tx.execute(
          sql`delete from metric_points where series_id in (select s.id from metric_series s join runs r on r.id = s.run_id where r.process_id = ${processId})`,
        );
        await tx.delete(slotLeases).where(eq(slotLeases.processId, processId));
        await tx.delete(processes).where(eq(processes.id, processId));
      });
    },
  };
  // A workflow writes only its own process's rows (activities/ownership.ts).
  return ownedOnly(db, activities, {
    recordStatus: (record) => ({ processId: record.processId }),
    createRun: (processId) => ({ processId }),
    beginRun: (processId) => ({ processId }),
    acquireSlot: (runId) => ({ runId }),
    releaseSlot: (runId) => ({ runId }),
    finishRun: (runId) => ({ runId }),
    noteEvent: (processId) => ({ processId }),
    recordEvent: (event) => ({ processId: event.processId }),
    deleteProcessData: (processId) => ({ processId }),
  });
}
