// Finds the Temporal server (`temporal-server`, `temporal-sql-tool` and the PostgreSQL
// schemas they apply), building it with Go when none is cached. Tests run it to prove
// Trainyard against a full server with TLS, and as a production cluster; `npm start` never needs it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cliCacheDir, findGo, goInstall, isExecutable, TemporalCliError } from './temporal-cli.js';

/** The server release the tests run; its schemas are copied beside the binaries. */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';

const MODULE = 'go.temporal.io/server';

export interface FoundServer {
  /** The `temporal-server` binary (`--root … --config … --env … start`). */
  server: string;
  /** `temporal-sql-tool`: creates and updates the SQL schemas. */
  sqlTool: string;
  /** `schema/postgresql/v12` of the release: `temporal/versioned` and `visibility/versioned`. */
  postgresSchemaDir: string;
  source: 'cache' | 'built';
}

/** One folder per release beside the CLI's cache, so every clone on the machine shares one build. */
export function serverCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(path.dirname(cliCacheDir(env)), `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

function layout(dir: string, source: FoundServer['source']): FoundServer {
  return {
    server: path.join(dir, 'temporal-server'),
    sqlTool: path.join(dir, 'temporal-sql-tool'),
    postgresSchemaDir: path.join(dir, 'schema', 'postgresql', 'v12'),
    source,
  };
}

/** Looks for a cached build only; never builds. */
export function findTemporalServer(env: NodeJS.ProcessEnv = process.env): FoundServer | null {
  const found = layout(serverCacheDir(env), 'cache');
  const complete =
    isExecutable(found.server) &&
    isExecutable(found.sqlTool) &&
    fs.existsSync(path.join(found.postgresSchemaDir, 'visibility', 'versioned'));
  return complete ? found : null;
}

/** Module cache files are read-only; the copy is ours to delete. */
function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) makeWritable(file);
    else fs.chmodSync(file, 0o644);
  }
}

/**
 * Finds the server or builds it (several minutes on a fresh machine: it is a large Go
 * program). The build goes to a scratch folder that is renamed into place when complete,
 * so an interrupted build is never found.
 */
export async function ensureTemporalServer(
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<FoundServer> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => console.error(line));
  const found = findTemporalServer(env);
  if (found) return found;

  const go = findGo(env);
  if (!go)
    throw new TemporalCliError(
      'No Temporal server found and no Go toolchain to build one: install Go (https://go.dev/dl).',
    );
  const target = serverCacheDir(env);
  const scratch = `${target}.building-${process.pid}`;
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { recursive: true });
  try {
    const started = Date.now();
    log(
      `Building the Temporal server ${TEMPORAL_SERVER_VERSION} with ${go} into ${target} (several minutes the first time)…`,
    );
    await goInstall(
      go,
      [`${MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`, `${MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`],
      scratch,
      log,
    );
    fs.renameSync(path.join(scratch, 'server'), path.join(scratch, 'temporal-server'));
    fs.renameSync(path.join(scratch, 'sql'), path.join(scratch, 'temporal-sql-tool'));

    // The schemas ship in the module, which `go install` has just put in the module cache.
    const download = spawnSync(go, ['mod', 'download', '-json', `${MODULE}@${TEMPORAL_SERVER_VERSION}`], {
      encoding: 'utf8',
      env: { ...env, GOTOOLCHAIN: 'local' },
    });
    const moduleDir = download.status === 0 ? (JSON.parse(download.stdout) as { Dir?: string }).Dir : undefined;
    if (!moduleDir)
      throw new TemporalCliError(
        `go mod download ${MODULE}@${TEMPORAL_SERVER_VERSION} failed: ${download.stderr.trim()}`,
      );
    const schemaCopy = path.join(scratch, 'schema', 'postgresql', 'v12');
    fs.cpSync(path.join(moduleDir, 'schema', 'postgresql', 'v12'), schemaCopy, { recursive: true });
    makeWritable(path.join(scratch, 'schema'));

    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(scratch, target);
    log(
      `Temporal server ${TEMPORAL_SERVER_VERSION} built in ${Math.round((Date.now() - started) / 1000)} s: ${target}`,
    );
    return layout(target, 'built');
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
