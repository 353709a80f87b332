// The trainers of a training-process workflow that `trainyard reconcile` ended because no
// process row has it (workers/reconcile.ts): a short workflow, so the stop runs where the
// machine's executor lives (a worker polling the machine's queue), like the probe.
import type { StrayTrainers } from '../activities/types.js';
import { strays } from './training-process/activities.js';
import { machineTaskQueue } from './messages.js';

export interface StopTrainersInput extends StrayTrainers {
  machineId: number;
  /** Whose machine queue (workflows/messages.ts). */
  installation: string;
}

export async function stopTrainersWorkflow(input: StopTrainersInput): Promise<{ stopped: number[] }> {
  const { machineId, installation, ...spec } = input;
  return strays(machineTaskQueue(machineId, installation)).stopTrainersOf(spec);
}
