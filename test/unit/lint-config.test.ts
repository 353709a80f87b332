// The lint config stays wired: the rules `npm run lint` promises fire on code that breaks them.
import fs from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

// The type-aware rules need the file on disk inside the tsconfig's `include`, so the probe is
// written next to this test for the length of one lint and removed after.
async function rulesFired(code: string): Promise<string[]> {
  const file = path.join(root, 'test', 'unit', `lint-probe-${process.pid}.ts`);
  fs.writeFileSync(file, code);
  try {
    const [result] = await new ESLint({ cwd: root }).lintFiles([file]);
    return messages(result);
  } finally {
    fs.rmSync(file, { force: true });
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
