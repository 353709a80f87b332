// On-demand machine probe: a short workflow so the probe runs where the machine's
// executor lives (a worker polling the machine's queue), whichever process asked.
import { proxyActivities } from '@temporalio/workflow';
import type { MachineActivities, MachineProbe } from '../activities/types.js';
import { machineTaskQueue } from './messages.js';

/** `installation`: whose machine queue (workflows/messages.ts). */
export async function probeMachineWorkflow(machineId: number, installation: string): Promise<MachineProbe> {
  const { probeMachine } = proxyActivities<Pick<MachineActivities, 'probeMachine'>>({
    taskQueue: machineTaskQueue(machineId, installation),
    // No worker polls the queue of a machine nobody serves: say so instead of waiting.
    scheduleToStartTimeout: '15s',
    startToCloseTimeout: '30s',
    retry: { maximumAttempts: 1 },
  });
  return probeMachine();
}
