// The Python trainers' own unittest suites, run by Debian's interpreter (other python3 on
// PATH may lack the packages): trainers/python (the protocol helper, standard library
// only) and trainers/pytorch-digits (needs python3-torch and python3-sklearn, which
// .ci/run installs). Each Python test shows here as one test, so the counts add up;
// a missing interpreter or package fails with what to install, never skips.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const PYTHON = '/usr/bin/python3';
const ROOT = path.resolve(import.meta.dirname, '../..');

interface SuiteResult {
  exitCode: number | null;
  output: string;
  /** `Class.test_name` → ok, FAIL, ERROR, skipped … */
  tests: Map<string, string>;
  ran: number | null;
}

function runUnittest(dir: string): Promise<SuiteResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-m', 'unittest', 'discover', '-s', dir, '-v'], {
      cwd: ROOT,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('close', (exitCode) => {
      const tests = new Map<string, string>();
      for (const match of output.matchAll(/^(\w+) \(([\w.]+)\) \.\.\. (.+)$/gm))
        tests.set(match[2]!.split('.').slice(-2).join('.'), match[3]!);
      const ran = /^Ran (\d+) tests? in /m.exec(output);
      resolve({ exitCode, output, tests, ran: ran ? Number(ran[1]) : null });
    });
  });
}

/** What is missing to run a suite, in words that say what to install; null when nothing. */
function missing(modules: string[], packages: string): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing: apt-get install python3${packages ? ` ${packages}` : ''}`;
  if (modules.length === 0) return null;
  const probe = spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  return probe.status === 0
    ? null
    : `${PYTHON} cannot import ${modules.join(', ')}: apt-get install ${packages} (.ci/run does)\n${probe.stderr}`;
}

const SUITES = [
  { dir: 'trainers/python', modules: [], packages: '' },
  { dir: 'trainers/pytorch-digits', modules: ['torch', 'sklearn'], packages: 'python3-torch python3-sklearn' },
];

// Both suites run while this file is collected (they are processes, not vitest tests), so
// each Python test can be declared below by name.
const results = await Promise.all(
  SUITES.map(async (suite) => {
    const lacking = missing(suite.modules, suite.packages);
    return { ...suite, lacking, result: lacking ? null : await runUnittest(suite.dir) };
  }),
);

for (const { dir, lacking, result } of results) {
  describe(`${dir} (Python unittest)`, () => {
    if (lacking || !result) {
      it('has the interpreter and packages it needs', () => {
        throw new Error(lacking ?? 'not run');
      });
      return;
    }
    it('runs every test and exits 0', () => {
      expect(result.tests.size, result.output).toBeGreaterThan(0);
      expect(result.ran, result.output).toBe(result.tests.size);
      expect(result.exitCode, result.output).toBe(0);
    });
    for (const [name, status] of result.tests) {
      it(name, () => {
        // The traceback of a failed test is in the suite's output, under its name.
        expect(status, result.output).toBe('ok');
      });
    }
  });
}
