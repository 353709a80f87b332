// Builds the executor for a machine row: `local` for the built-in machine, `ssh` for the rest,
// with the private key decrypted (or read from TRAINYARD_KEYS_DIR) only here.
import path from 'node:path';
import type { machines } from '../db/schema.js';
import { LocalExecutor } from './executors/local.js';
import type { Executor } from './executors/types.js';

export type MachineRow = typeof machines.$inferSelect;

export interface ExecutorContext {
  dataDir: string;
  secret: string;
  keysDir: string | null;
}

export function createExecutorFor(machine: MachineRow, context: ExecutorContext): Executor {
  if (machine.kind === 'local') return new LocalExecutor({ runsRoot: path.join(context.dataDir, 'runs') });
  throw new Error(`Machine kind ${machine.kind} is not supported yet.`);
}
