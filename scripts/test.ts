// `npm test`: the whole suite, starting what it needs. Type-check and lint first (a type
// error makes later failures noise), then every vitest project.
// The integration project's global setup starts the Temporal dev server (finding or
// building the CLI) and creates a fresh PostgreSQL database; the ssh tests start sshd.
// The workflow project starts a Temporal server of its own per test file.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { ensureTemporalCli } from '../lib/temporal-cli.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);

function step(title: string, command: string, args: string[]): void {
  console.log(`\n▶ ${title}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`✗ ${title} failed`);
    process.exit(result.status ?? 1);
  }
}

async function checkPostgres(): Promise<void> {
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (error) {
    console.error(
      `✗ The tests need PostgreSQL at ${url.replace(/:[^:@/]*@/, '@')} (${(error as Error).message}). Start it, or set DATABASE_URL to a server where this user may create databases.`,
    );
    process.exit(1);
  } finally {
    await sql.end();
  }
}

step('type-check', bin('tsc'), ['--noEmit', '-p', 'tsconfig.json']);
step('lint', bin('tsx'), ['scripts/lint.ts']);
console.log('\n▶ Temporal CLI');
const cli = await ensureTemporalCli({ log: (line) => console.log(line) });
console.log(`using ${cli.path} (${cli.source})`);
await checkPostgres();

const report = path.join(root, 'tmp', 'vitest-report.json');
fs.mkdirSync(path.dirname(report), { recursive: true });
fs.rmSync(report, { force: true });
console.log('\n▶ vitest');
const run = spawnSync(
  bin('vitest'),
  ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, TEMPORAL_CLI: cli.path },
  },
);
let summary = 'no report';
if (fs.existsSync(report)) {
  const json = JSON.parse(fs.readFileSync(report, 'utf8')) as {
    numPassedTests: number;
    numFailedTests: number;
    numPendingTests: number;
    numTodoTests: number;
  };
  summary = `${json.numPassedTests} passed, ${json.numFailedTests} failed, ${json.numPendingTests + json.numTodoTests} skipped`;
}
// The plain closing line CI reads.
console.log(`\ntests: ${summary}`);
process.exit(run.status ?? 1);
