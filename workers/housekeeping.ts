// A machine worker's housekeeping, beside the activities it serves: a periodic probe, so
// the machines page shows health without anyone asking, and the lost-trainer reaper
// (lost-trainers.ts) after each probe that found the machine answering. A disabled
// machine keeps its last probe: it is being drained or set aside, and an operator probes
// it on demand. Lost trainers are looked for on every machine.
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { machines } from '../db/schema.js';
import type { MachineProbe } from '../activities/types.js';
import type { MachineRow } from '../executors/factory.js';
import type { Executor } from '../executors/types.js';
import type { WorkerTelemetry } from '../telemetry/hooks.js';
import { reapLostTrainers } from './lost-trainers.js';

export interface HousekeepingDeps {
  db: Db;
  machine: MachineRow;
  /** Probes the machine and stores the result (the probeMachine activity). */
  probe(): Promise<MachineProbe>;
  executor(): Executor;
  intervalMs: number;
  telemetry: WorkerTelemetry;
}

export interface Housekeeping {
  /** Probes now and reaps trainers runs may have left (a workflow terminated by hand). */
  probeSoon(): void;
  stop(): void;
}

export function startHousekeeping(deps: HousekeepingDeps): Housekeeping {
  let probing = false;
  // Asked for while a probe runs: that probe may have looked for lost trainers already.
  let again = false;
  const probeNow = async (): Promise<void> => {
    const [row] = await deps.db
      .select({ enabled: machines.enabled })
      .from(machines)
      .where(eq(machines.id, deps.machine.id));
    const probe = row?.enabled ? await deps.probe() : null;
    if (probe) deps.telemetry.machineProbed(deps.machine.name, probe.reachable);
    if (probe?.reachable || !row?.enabled) await reapLostTrainers(deps);
  };
  const probeSoon = (): void => {
    if (probing) {
      again = true;
      return;
    }
    probing = true;
    void probeNow()
      .catch(() => undefined)
      .finally(() => {
        probing = false;
        if (again) {
          again = false;
          probeSoon();
        }
      });
  };
  const timer = setInterval(probeSoon, deps.intervalMs);
  timer.unref();
  probeSoon();
  return {
    probeSoon,
    stop: () => {
      clearInterval(timer);
      deps.telemetry.machineDropped(deps.machine.name);
    },
  };
}
