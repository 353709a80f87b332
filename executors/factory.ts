// Builds the executor for a machine row: `local` for the built-in machine, `ssh` for the
// rest, with the private key decrypted (or read from TRAINYARD_KEYS_DIR) only here.
import path from 'node:path';
import type { machines } from '../db/schema.js';
import { decryptSecret, readKeyFile } from '../lib/keybox.js';
import { createExecutor } from './index.js';
import { ExecutorError, type Executor } from './types.js';

export type MachineRow = typeof machines.$inferSelect;

export interface ExecutorContext {
  dataDir: string;
  secret: string;
  keysDir: string | null;
}

/** "host", "host:port", "[v6]" or "[v6]:port". */
export function parseAddress(address: string): { host: string; port: number } {
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(address);
  const v4 = /^([^:[\]\s]+)(?::(\d{1,5}))?$/.exec(address);
  const match = v6 ?? v4;
  const port = match?.[2] ? Number(match[2]) : 22;
  if (!match?.[1] || port < 1 || port > 65535)
    throw new ExecutorError('INVALID_ARGUMENT', `"${address}" is not an address: use host or host:port.`);
  return { host: match[1], port };
}

function privateKeyOf(machine: MachineRow, context: ExecutorContext): string {
  if (machine.privateKeyEncrypted) return decryptSecret(context.secret, machine.privateKeyEncrypted);
  if (machine.privateKeyPath) return readKeyFile(context.keysDir, machine.privateKeyPath);
  throw new ExecutorError(
    'AUTH_FAILED',
    `Machine "${machine.name}" has no SSH private key: give it a key or a privateKeyPath under TRAINYARD_KEYS_DIR.`,
  );
}

export function createExecutorFor(machine: MachineRow, context: ExecutorContext): Executor {
  if (machine.kind === 'local') return createExecutor({ kind: 'local', runsRoot: path.join(context.dataDir, 'runs') });
  const { host, port } = parseAddress(machine.address);
  return createExecutor({
    kind: 'ssh',
    host,
    port,
    username: machine.sshUser ?? 'root',
    privateKey: privateKeyOf(machine, context),
    ...(machine.hostKeyFingerprint ? { hostKeyFingerprint: machine.hostKeyFingerprint } : {}),
    // Below the watch activity's heartbeat timeout, so a dead link is an error, not a hang.
    readyTimeoutMs: 5000,
    keepaliveIntervalMs: 5000,
    commandTimeoutMs: 8000,
  });
}
