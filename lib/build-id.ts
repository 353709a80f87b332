// The build id a worker announces to Temporal and in its start-up line: TRAINYARD_BUILD_ID
// when set (lib/config.ts), else `<package version>+<git commit>`, or the version alone
// where there is no git checkout (an image built without .git).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

export function resolveBuildId(configured: string | null, root: string = ROOT): string {
  if (configured) return configured;
  const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    }).trim();
    return /^[0-9a-f]{7,40}$/.test(commit) ? `${version}+${commit}` : version;
  } catch {
    return version;
  }
}

/** The deployment every Trainyard worker belongs to; the build id tells its versions apart. */
export const DEPLOYMENT_NAME = 'trainyard';
