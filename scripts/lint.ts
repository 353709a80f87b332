// `npm run lint`: ESLint (with type information), Prettier's check and the workflow
// determinism lint. All three run even when one fails, so one pass shows everything.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);

const checks: Array<[title: string, command: string, args: string[]]> = [
  ['eslint', bin('eslint'), ['--max-warnings=0', '.']],
  ['prettier', bin('prettier'), ['--check', '--log-level=warn', '.']],
  ['workflow determinism lint', bin('tsx'), ['scripts/lint-workflows.ts']],
];

const failed: string[] = [];
for (const [title, command, args] of checks) {
  console.log(`▶ ${title}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) failed.push(title);
}
if (failed.length > 0) {
  console.error(`✗ lint failed: ${failed.join(', ')}`);
  process.exit(1);
}
console.log('lint: clean');
