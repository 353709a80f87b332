import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lint } from '../../scripts/lint-workflows.js';

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lint-workflows-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), text);
  }
  return root;
}

describe('the workflow determinism lint', () => {
  it('passes the project as it is', () => {
    expect(lint()).toEqual([]);
  });

  it('flags Node built-ins, I/O packages, imports out of workflows/ and domain/, and process.env', () => {
    const root = tree({
      'workflows/a.ts': "import fs from 'node:fs';\nimport { x } from 'crypto';\n",
      'workflows/b.ts': "import postgres from 'postgres';\n",
      'workflows/c.ts': "import { db } from '../db/client.js';\nconst url = process.env.X;\n",
      'domain/d.ts': "import { readFileSync } from 'fs';\n",
    });
    const problems = lint(root);
    expect(problems.some((p) => p.includes('workflows/a.ts') && p.includes('"node:fs"'))).toBe(true);
    expect(problems.some((p) => p.includes('workflows/a.ts') && p.includes('"crypto"'))).toBe(true);
    expect(problems.some((p) => p.includes('workflows/b.ts') && p.includes('"postgres"'))).toBe(true);
    expect(problems.some((p) => p.includes('workflows/c.ts') && p.includes('../db/client.js'))).toBe(true);
    expect(problems.some((p) => p.includes('workflows/c.ts') && p.includes('process.env'))).toBe(true);
    expect(problems.some((p) => p.includes('domain/d.ts') && p.includes('"fs"'))).toBe(true);
  });

  it('allows the workflow SDK, each other, and type-only imports from anywhere', () => {
    const root = tree({
      'workflows/a.ts':
        "import { condition } from '@temporalio/workflow';\n" +
        "import { decide } from '../domain/s.js';\n" +
        "import type { Db } from '../db/client.js';\n",
      'domain/s.ts': 'export const decide = 1;\n',
    });
    expect(lint(root)).toEqual([]);
  });
});
