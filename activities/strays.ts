// stopTrainersOf: stops every trainer a training-process workflow started on this machine,
// found by the process key its run directories carry (launch.ts) and never through the
// database. For a workflow whose rows are lost or are another's (a database restored from a
// backup): `trainyard reconcile` ends such a workflow, and one that finds its row taken ends
// by itself; neither may leave a trainer holding the machine's GPUs.
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../domain/failures.js';
import { heartbeating, type MachineContext } from './machine-context.js';
import type { StrayTrainers } from './types.js';

/** The grace a trainer gets when its template is not known (a template's default). */
const DEFAULT_GRACE_MS = 30_000;

export async function stopTrainersOf(ctx: MachineContext, spec: StrayTrainers): Promise<{ stopped: number[] }> {
  if (!Number.isSafeInteger(spec.processId) || spec.processId <= 0 || !/^[0-9a-f]{12}$/.test(spec.key)) {
    throw ApplicationFailure.nonRetryable(
      `No trainers to look for: process ${String(spec.processId)}, key ${JSON.stringify(spec.key)}.`,
      FAILURE.notFound,
    );
  }
  const context = Context.current();
  const executor = ctx.executor();
  const root = await executor.runsRoot();
  const stopped: number[] = [];
  // run-<number>-<run id>-<key>-<random>: the key is the fourth part.
  for (const dir of await executor.listRunDirs(path.posix.join(root, `process-${spec.processId}`))) {
    if (path.posix.basename(dir).split('-')[3] !== spec.key) continue;
    context.heartbeat();
    const handle = await executor.readHandle(dir);
    if (!handle || !(await executor.inspect(handle)).alive) continue;
    await heartbeating(ctx.heartbeatMs, executor.stop(handle, spec.graceMs ?? DEFAULT_GRACE_MS));
    stopped.push(handle.pid);
  }
  return { stopped };
}
