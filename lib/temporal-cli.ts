// Finds a Temporal CLI binary (it carries the dev server and the Temporal UI), building
// it with Go when none is around, so a fresh machine and CI get one without help.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXPECTED_ERROR } from '../domain/failures.js';

/** The newest tag that `go install` accepts: later ones carry a `replace` directive. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
/** Older tags without `replace` directives, tried in order when the pinned one will not build. */
const FALLBACK_VERSIONS = ['v1.4.1', 'v1.3.0'];

export class TemporalCliError extends Error {
  override name = EXPECTED_ERROR.temporalCli;
}

export type CliSource = 'TEMPORAL_CLI' | 'PATH' | 'cache' | 'GOPATH' | 'built';

export interface FoundCli {
  path: string;
  source: CliSource;
}

/** Where built binaries are kept: per user, so every clone on the machine shares one build. */
export function cliCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'trainyard', 'bin');
}

export function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

export function findGo(env: NodeJS.ProcessEnv): string | null {
  return onPath('go', env) ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : null);
}

function goPathBin(go: string | null, env: NodeJS.ProcessEnv): string | null {
  if (!go) return null;
  const out = spawnSync(go, ['env', 'GOPATH'], { encoding: 'utf8', env });
  const gopath = out.status === 0 ? out.stdout.trim().split(path.delimiter)[0] : '';
  return gopath ? path.join(gopath, 'bin', 'temporal') : null;
}

/** Looks for an existing binary only; never builds. */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env, projectRoot = process.cwd()): FoundCli | null {
  const explicit = env.TEMPORAL_CLI?.trim();
  if (explicit) {
    if (!isExecutable(explicit)) {
      throw new TemporalCliError(`TEMPORAL_CLI=${explicit} is not an executable file; fix the path or unset it.`);
    }
    return { path: explicit, source: 'TEMPORAL_CLI' };
  }
  const fromPath = onPath('temporal', env);
  if (fromPath) return { path: fromPath, source: 'PATH' };
  for (const candidate of [
    path.join(projectRoot, '.tools', 'bin', 'temporal'),
    path.join(cliCacheDir(env), 'temporal'),
  ]) {
    if (isExecutable(candidate)) return { path: candidate, source: 'cache' };
  }
  const gopathBin = goPathBin(findGo(env), env);
  if (gopathBin && isExecutable(gopathBin)) return { path: gopathBin, source: 'GOPATH' };
  return null;
}

/**
 * `go install -v` of the given packages (one module, one version) into `gobin`, with the
 * package count as progress. Rejects with the tail of Go's output.
 */
export function goInstall(go: string, packages: string[], gobin: string, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const env = {
      ...process.env,
      GOBIN: gobin,
      GOTOOLCHAIN: 'local',
      PATH: `${path.dirname(go)}${path.delimiter}${process.env.PATH ?? ''}`,
    };
    // -x would be too noisy; -v lists packages as they compile, which is the progress we show.
    const child = spawn(go, ['install', '-v', ...packages], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let compiled = 0;
    let tail = '';
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split('\n')) {
        if (line.startsWith('go: downloading')) log(line);
        else if (line.trim()) {
          compiled += 1;
          if (compiled % 100 === 0) log(`  … ${compiled} packages compiled`);
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new TemporalCliError(`go install ${packages.join(' ')} failed (exit ${code}):\n${tail.trim()}`));
    });
  });
}

/**
 * Finds the CLI or builds it. Building takes minutes on a fresh machine (it is a large
 * Go program); later calls find the cached binary at once.
 */
export async function ensureTemporalCli(
  options: { env?: NodeJS.ProcessEnv; projectRoot?: string; log?: (line: string) => void } = {},
): Promise<FoundCli> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => console.error(line));
  const found = findTemporalCli(env, options.projectRoot);
  if (found) return found;

  const go = findGo(env);
  if (!go) {
    throw new TemporalCliError(
      'No Temporal CLI found and no Go toolchain to build one: install Go (https://go.dev/dl), ' +
        'put `temporal` on PATH, set TEMPORAL_CLI to its path, ' +
        'or set TEMPORAL_ADDRESS to use a running Temporal server.',
    );
  }
  const gobin = cliCacheDir(env);
  fs.mkdirSync(gobin, { recursive: true });
  const errors: string[] = [];
  for (const version of [TEMPORAL_CLI_VERSION, ...FALLBACK_VERSIONS]) {
    log(`Building the Temporal CLI ${version} with ${go} into ${gobin} (a few minutes the first time)…`);
    try {
      await goInstall(go, [`github.com/temporalio/cli/cmd/temporal@${version}`], gobin, log);
      const built = path.join(gobin, 'temporal');
      log(`Temporal CLI ${version} built: ${built}`);
      return { path: built, source: 'built' };
    } catch (error) {
      errors.push((error as Error).message);
      log(`Could not build ${version}; ${FALLBACK_VERSIONS.includes(version) ? '' : 'trying an older tag.'}`);
    }
  }
  throw new TemporalCliError(`Could not build the Temporal CLI:\n${errors.join('\n\n')}`);
}
