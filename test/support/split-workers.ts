// Workers the way startWorkers builds them, but one queue role each, so a test can stop
// the workflow worker alone, or put a fault injection around one real activity. The
// activities inside are the real ones (real database, real executor, real trainers).
import { NativeConnection, Worker } from '@temporalio/worker';
import { createControlActivities } from '../../activities/control.js';
import { createMachineActivities } from '../../activities/machine.js';
import type { ControlActivities, MachineActivities } from '../../activities/types.js';
import type { machines } from '../../db/schema.js';
import { controlTaskQueue, machineTaskQueue } from '../../workflows/messages.js';
import { installationOf } from '../../services/installation.js';
import { TEST_SECRET, workflowBundle, type Stack } from './stack.js';

export interface TestWorker {
  shutdown(): Promise<void>;
}

async function running(
  stack: Stack,
  make: (connection: NativeConnection) => Promise<Worker>,
  dispose?: () => Promise<void>,
): Promise<TestWorker> {
  const connection = await NativeConnection.connect({ address: stack.temporalAddress });
  const worker = await make(connection);
  const run = worker.run();
  let closed: Promise<void> | null = null;
  return {
    shutdown() {
      closed ??= (async () => {
        worker.shutdown();
        await run.catch(() => undefined);
        await dispose?.();
        await connection.close();
      })();
      return closed;
    },
  };
}

/**
 * Runs training-process workflows, and the control activities they run as local activities
 * (those run where the workflow task runs); `wrap` as for startControlWorker.
 */
export function startWorkflowWorker(
  stack: Stack,
  wrap: (real: ControlActivities) => Partial<ControlActivities> = () => ({}),
): Promise<TestWorker> {
  const real = createControlActivities({ db: stack.database.db });
  return running(stack, async (connection) =>
    Worker.create({
      connection,
      namespace: 'default',
      taskQueue: controlTaskQueue(await installationOf(stack.database.db)),
      workflowBundle: await workflowBundle(),
      activities: { ...real, ...wrap(real) },
      // Local activities only: the control queue's activities stay with the control worker, so
      // stopping this worker never waits on (or takes over) one that a test holds.
      enableNonLocalActivities: false,
      shutdownGraceTime: '1s',
    }),
  );
}

/** The real control activities; `wrap` may replace some with fault injections around the real ones. */
export function startControlWorker(
  stack: Stack,
  wrap: (real: ControlActivities) => Partial<ControlActivities> = () => ({}),
): Promise<TestWorker> {
  const real = createControlActivities({ db: stack.database.db });
  return running(stack, async (connection) =>
    Worker.create({
      connection,
      namespace: 'default',
      taskQueue: controlTaskQueue(await installationOf(stack.database.db)),
      activities: { ...real, ...wrap(real) },
      shutdownGraceTime: '1s',
    }),
  );
}

/** The real activities of one machine; `wrap` may replace some with fault injections around the real ones. */
export function startMachineWorker(
  stack: Stack,
  machine: typeof machines.$inferSelect,
  wrap: (real: MachineActivities) => Partial<MachineActivities> = () => ({}),
): Promise<TestWorker> {
  const made = createMachineActivities({
    db: stack.database.db,
    sql: stack.database.sql,
    machine,
    dataDir: stack.dataDir,
    secret: TEST_SECRET,
    keysDir: null,
  });
  return running(
    stack,
    async (connection) =>
      Worker.create({
        connection,
        namespace: 'default',
        taskQueue: machineTaskQueue(machine.id, await installationOf(stack.database.db)),
        activities: { ...made.activities, ...wrap(made.activities) },
        shutdownGraceTime: '1s',
      }),
    made.dispose,
  );
}
