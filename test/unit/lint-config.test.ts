// The lint config stays wired: the rules `npm run lint` promises fire on code that breaks them.
import fs from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

// The type-aware rules need the file on disk with a tsconfig.json: the probe gets a directory of its
// own under tmp/ (which the config ignores, hence `ignore: false`), so TypeScript loads one file
// instead of the whole project.
async function rulesFired(code: string): Promise<string[]> {
  fs.mkdirSync(path.join(root, 'tmp'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(root, 'tmp', 'lint-probe-'));
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({ extends: '../../tsconfig.json', include: ['*.ts'] }),
  );
  fs.writeFileSync(path.join(dir, 'probe.ts'), code);
  try {
    const [result] = await new ESLint({ cwd: root, ignore: false }).lintFiles([path.join(dir, 'probe.ts')]);
    return messages(result);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Browser scripts get no type information, so a text that is not on disk will do.
async function scriptRulesFired(code: string): Promise<string[]> {
  const [result] = await new ESLint({ cwd: root }).lintText(code, {
    filePath: path.join(root, 'views', 'static', 'lint-probe.js'),
  });
  return messages(result);
}

function messages(result: ESLint.LintResult | undefined): string[] {
  return (result?.messages ?? []).map((m) => m.ruleId ?? `fatal: ${m.message}`);
}

describe('the lint config', () => {
  it('refuses a promise nobody awaits and a promise where a boolean is expected', async () => {
    const code = [
      'async function save(): Promise<void> {}',
      'export function handler(): void {',
      '  save();',
      '  if (save()) return;',
      '}',
      '',
    ].join('\n');
    expect(await rulesFired(code)).toEqual([
      '@typescript-eslint/no-floating-promises',
      '@typescript-eslint/no-misused-promises',
    ]);
  }, 60_000);

  it('accepts the same code once the promises are awaited', async () => {
    const code = [
      'async function save(): Promise<boolean> {',
      '  return true;',
      '}',
      'export async function handler(): Promise<void> {',
      '  await save();',
      '  if (await save()) return;',
      '}',
      '',
    ].join('\n');
    expect(await rulesFired(code)).toEqual([]);
  }, 60_000);

  it('refuses a line over 120 characters, except inside a template literal', async () => {
    const long = 'x'.repeat(120);
    const code = [`export const plain = '${long}';`, `export const page = \`<p>${long}</p>\`;`, ''].join('\n');
    const fired = await rulesFired(code);
    expect(fired).toEqual(['@stylistic/max-len']);
  }, 60_000);

  it('lints the browser scripts as browser scripts', async () => {
    const code = ['(function () {', "  'use strict';", '  document.title = undefinedName;', '})();', ''].join('\n');
    expect(await scriptRulesFired(code)).toEqual(['no-undef']);
  }, 60_000);
});
