// A workflow touches only the rows that are its own. Workflow ids never repeat (a process
// key is never reused), but a database restored from a backup hands out process and run
// ids again while workflows of the newer, lost rows live on: such a workflow must not write
// over the row that now has its process's id. Each activity that names a process or a run
// checks first that the process's workflow_id is the id of the workflow that scheduled it.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { processes, runs } from '../db/schema.js';
import { FAILURE } from '../domain/failures.js';

export type Subject = { processId: number } | { runId: number };

/** Throws a non-retryable FAILURE.notOwner when the subject's process belongs to another workflow. */
export async function assertOwner(db: Db, subject: Subject): Promise<void> {
  const caller = callingWorkflow();
  if (!caller) return;
  const [row] =
    'processId' in subject
      ? await db
          .select({ processId: processes.id, workflowId: processes.workflowId })
          .from(processes)
          .where(eq(processes.id, subject.processId))
      : await db
          .select({ processId: processes.id, workflowId: processes.workflowId })
          .from(runs)
          .innerJoin(processes, eq(processes.id, runs.processId))
          .where(eq(runs.id, subject.runId));
  // A row that is gone is each activity's own business (most treat it as done).
  if (!row || row.workflowId === caller) return;
  const what = 'processId' in subject ? `Process ${subject.processId}` : `Run ${subject.runId}`;
  throw ApplicationFailure.nonRetryable(
    `${what} belongs to workflow ${row.workflowId}, not to ${caller} (a database restored from a backup?); ` +
      'this workflow leaves it alone. `trainyard reconcile` lists such workflows and ends them.',
    FAILURE.notOwner,
  );
}

/** The id of the workflow whose activity this is; null when called outside one (a direct call, as tests make). */
export function callingWorkflow(): string | null {
  let context: Context;
  try {
    context = Context.current();
  } catch {
    return null;
  }
  return context.info.workflowExecution?.workflowId ?? null;
}

type Activity = (...args: never[]) => Promise<unknown>;

/**
 * The activities, each named in `subjects` checked by assertOwner before it runs. `subjects`
 * says where its arguments name the process or run.
 */
export function ownedOnly<A extends { [K in keyof A]: Activity }>(
  db: Db,
  activities: A,
  subjects: { [K in keyof A]?: (...args: Parameters<A[K]>) => Subject },
): A {
  const guarded = { ...activities };
  for (const name of Object.keys(subjects) as Array<keyof A>) {
    const activity = activities[name];
    const subjectOf = subjects[name]!;
    guarded[name] = (async (...args: Parameters<A[typeof name]>) => {
      await assertOwner(db, subjectOf(...args));
      return activity(...args);
    }) as A[typeof name];
  }
  return guarded;
}
