// The local executor hands a launch's arguments (the trainer's environment, secret
// variables included) to /bin/sh as variables, never in its argv: any local account can
// read a process's command line in /proc, only its owner the environment.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { localShellInvocation } from '../../executors/local.js';
import { launchArgs } from '../../executors/wrapper.js';

const base = mkdtempSync(join(tmpdir(), 'trainyard-local-invocation-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

async function waitForFile(path: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} never appeared`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return readFileSync(path, 'utf8');
}

describe('localShellInvocation', () => {
  it('keeps a secret environment value out of the shell command line, and the trainer still gets it', async () => {
    const secret = `s3cret-${process.pid}-'quoted' $(not run)`;
    const runDir = join(base, 'run-1');
    const args = launchArgs({
      runDir,
      command: 'printf %s "$API_KEY" > got.tmp && mv got.tmp got.txt',
      env: { API_KEY: secret, PATH: '/usr/bin:/bin' },
    });
    const { argv, env } = localShellInvocation('trainyard_launch', args);

    expect(argv.join('\n')).not.toContain('s3cret-');
    expect(argv.join('\n')).not.toContain(runDir);

    const result = spawnSync('/bin/sh', argv, { env, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^trainyard-pid \d+ \d+ \d+\n$/);
    expect(await waitForFile(join(runDir, 'got.txt'))).toBe(secret);
  });

  it('leaves none of the argument variables to the trainer', async () => {
    const runDir = join(base, 'run-2');
    const args = launchArgs({ runDir, command: 'env > env.tmp && mv env.tmp env.txt', env: { PATH: '/usr/bin:/bin' } });
    const { argv, env } = localShellInvocation('trainyard_launch', args);
    expect(spawnSync('/bin/sh', argv, { env, encoding: 'utf8' }).status).toBe(0);
    const seen = await waitForFile(join(runDir, 'env.txt'));
    expect(seen).toContain('PATH=/usr/bin:/bin');
    expect(seen).not.toContain('TRAINYARD_ARG_');
  });
});
