// Executors: how Trainyard reaches a machine. `createExecutor` builds one from a
// machine's settings (factory.ts builds it from a machine's row).
//
// How the parts fit (details in each file):
// - types.ts: the Executor interface and ExecutorError (`code` says which
//   expected failure; activities map it to an ApplicationFailure type).
// - shell.ts, wrapper.ts: the only text that runs on a machine, a library of
//   /bin/sh functions (launch, inspect, signal, ...) whose arguments are always
//   strictly quoted data. The trainer starts through a wrapper in its run dir:
//   under setsid (its own session and process group), stdin from /dev/null,
//   stdout.log/stderr.log, its PID and start time in ./pid, only the env file's
//   variables (env -i), and its exit status written atomically to ./exit_code.
// - base.ts: the behaviour both executors share (stop = TERM, grace, KILL,
//   until the group is gone; path checks; output parsing).
// - local.ts: /bin/sh from child_process, fs for reads.
// - ssh.ts, ssh-pool.ts, ssh-shell.ts, host-key.ts: node-ssh connections per
//   machine, persistent remote shells (one login-shell start per channel, then
//   one round trip per operation), SFTP for reads, pinned host keys.
//
// Besides launch, inspect, signal and reads, the interface has `kind`, `runsRoot()`
// (the caller needs the absolute root to name run dirs; for ssh `~` resolves
// remotely) and `readHandle(runDir)` (re-attach after a launch whose answer was lost: launch
// refuses an existing run dir, so it never starts a second trainer there).
// fetchHostKeyFingerprint returns the key type with the fingerprint.

import { LocalExecutor, type LocalExecutorOptions } from './local.js';
import { SshExecutor, type SshExecutorOptions } from './ssh.js';
import type { Executor } from './types.js';

export * from './types.js';
export { fetchHostKeyFingerprint, parseFingerprint, type FetchedHostKey } from './host-key.js';
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
