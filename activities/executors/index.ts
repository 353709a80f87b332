// Executors by machine: `createExecutor` builds one from a machine's settings,
// `ExecutorRegistry` keeps one per machine id so every activity on a machine
// shares its SSH connections, and replaces it when the settings change.

import { LocalExecutor, type LocalExecutorOptions } from './local.js';
import { SshExecutor, type SshExecutorOptions } from './ssh.js';
import type { Executor } from './types.js';

export * from './types.js';
export { fetchHostKeyFingerprint, fingerprintOf, parseFingerprint, type FetchedHostKey } from './host-key.js';
export { LocalExecutor, type LocalExecutorOptions } from './local.js';
export { SshExecutor, type SshExecutorOptions } from './ssh.js';

export type ExecutorTarget = ({ kind: 'local' } & LocalExecutorOptions) | ({ kind: 'ssh' } & SshExecutorOptions);

export function createExecutor(target: ExecutorTarget): Executor {
  if (target.kind === 'local') {
    const { kind: _kind, ...options } = target;
    return new LocalExecutor(options);
  }
  const { kind: _kind, ...options } = target;
  return new SshExecutor(options);
}

export class ExecutorRegistry {
  private readonly entries = new Map<string, { settings: string; executor: Executor }>();

  /** The machine's executor; a new one (the old one closed) when its settings differ from last time. */
  get(machineId: string, target: ExecutorTarget): Executor {
    const settings = JSON.stringify(target);
    const entry = this.entries.get(machineId);
    if (entry && entry.settings === settings) return entry.executor;
    if (entry) void entry.executor.close();
    const executor = createExecutor(target);
    this.entries.set(machineId, { settings, executor });
    return executor;
  }

  /** Drops a removed machine's executor and its connections. */
  async forget(machineId: string): Promise<void> {
    const entry = this.entries.get(machineId);
    this.entries.delete(machineId);
    await entry?.executor.close();
  }

  async closeAll(): Promise<void> {
    const executors = [...this.entries.values()].map((e) => e.executor);
    this.entries.clear();
    await Promise.all(executors.map((e) => e.close()));
  }
}
