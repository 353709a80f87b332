// On-demand machine probe: a short workflow so the probe runs where the machine's
// executor lives (a worker polling `machine-<id>`), whichever process asked.
import { proxyActivities } from '@temporalio/workflow';
import type { MachineActivities, MachineProbe } from '../activities/types.js';
import { machineTaskQueue } from './messages.js';

export async function probeMachineWorkflow(machineId: number): Promise<MachineProbe> {
  const { probeMachine } = proxyActivities<Pick<MachineActivities, 'probeMachine'>>({
    taskQueue: machineTaskQueue(machineId),
    // No worker polls the queue of a machine nobody serves: say so instead of waiting.
    scheduleToStartTimeout: '15s',
    startToCloseTimeout: '30s',
    retry: { maximumAttempts: 1 },
  });
  return probeMachine();
}
