// `npm run bench -- [name] [--quick] [other flags for that bench]`: runs one benchmark,
// or all of them in sequence, each as its own child process so one that crashes does
// not hide the others' figures. DESIGN §8 says what each measures; docs/performance.md
// has the latest figures.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BENCHES: Record<string, { file: string; what: string }> = {
  ingest: {
    file: 'ingest.ts',
    what: 'metric points/s trainer → stored and the write → queryable lag, beside a raw COPY',
  },
  chart: { file: 'chart-query.ts', what: 'the metrics query on 1 000 000 points a series, beside reading every point' },
  lifecycle: {
    file: 'lifecycle.ts',
    what: 'start → running, stop → TERM, exit → stopped, local and SSH, beside the bare executor',
  },
  scale: { file: 'scale.ts', what: '200 processes at once: statuses, worker RSS, history length, rows/s' },
  pages: { file: 'pages.ts', what: 'the processes page with 10 000 processes under 20 clients, beside /healthz' },
  starts: {
    file: 'starts.ts',
    what: '200 made and started in one action → running, 10 starts at once, beside the bare executor',
  },
};

const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('-') && a in BENCHES);
const unknown = args.filter(
  (a, i) =>
    !a.startsWith('-') && !(a in BENCHES) && !(i > 0 && args[i - 1]!.startsWith('--') && args[i - 1] !== '--quick'),
);
if (unknown.length > 0 || args.includes('--help') || args.includes('-h')) {
  console.log(
    `Usage: npm run bench -- [name] [--quick]\n\n${Object.entries(BENCHES)
      .map(([n, b]) => `  ${n.padEnd(10)} ${b.what}`)
      .join('\n')}\n\nNo name runs them all in sequence. --quick: a short run (under 30 s each).`,
  );
  if (unknown.length > 0) console.error(`\nUnknown benchmark: ${unknown.join(', ')}`);
  process.exit(unknown.length > 0 ? 2 : 0);
}
const flags = args.filter((a) => !names.includes(a));
const chosen = names.length > 0 ? names : Object.keys(BENCHES);

let current: ChildProcess | null = null;
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted = true;
    // Ctrl-C reaches the child through the terminal too; a SIGTERM is passed on. The child cleans up, then we stop.
    if (signal === 'SIGTERM') current?.kill('SIGTERM');
  });
}

console.log(
  `Trainyard benchmarks: ${chosen.join(', ')}${flags.length ? ` (${flags.join(' ')})` : ''} · ${os.cpus().length} cpus · ${new Date().toISOString()}`,
);
const results: { name: string; code: number | string; seconds: number }[] = [];
for (const name of chosen) {
  if (interrupted) break;
  const bench = BENCHES[name]!;
  console.log(`\n== ${name}: ${bench.what}`);
  const started = performance.now();
  const child = spawn(
    path.join(ROOT, 'node_modules', '.bin', 'tsx'),
    [path.join(ROOT, 'bench', bench.file), ...flags],
    { cwd: ROOT, stdio: 'inherit' },
  );
  current = child;
  const code = await new Promise<number | string>((resolve) => {
    child.once('error', (error) => resolve(error.message));
    child.once('exit', (c, signal) => resolve(c ?? signal ?? 'unknown'));
  });
  current = null;
  results.push({ name, code, seconds: (performance.now() - started) / 1000 });
}

console.log('\n== summary');
for (const r of results)
  console.log(`  ${r.name.padEnd(10)} ${r.code === 0 ? 'ok    ' : `FAILED (${r.code})`} ${r.seconds.toFixed(1)} s`);
if (interrupted) console.log('  (interrupted)');
process.exit(results.every((r) => r.code === 0) && !interrupted ? 0 : 1);
