// Keeps workflow code deterministic: files under workflows/ (and the pure domain/
// modules they use) may import only the workflow SDK, each other, and types.
// Node built-ins, drivers and I/O modules never reach the workflow bundle.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const PURE_DIRS = ['workflows', 'domain'];
const ALLOWED_PACKAGES = new Set(['@temporalio/workflow', '@temporalio/common']);
const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const FORBIDDEN_CALLS = [/\bprocess\.env\b/, /\brequire\(/];

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return files(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

// `import type …` and `export type …` vanish at compile time; everything else is real.
const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;

export function lint(root = ROOT): string[] {
  const problems: string[] = [];
  for (const dir of PURE_DIRS) {
    const base = path.join(root, dir);
    if (!fs.existsSync(base)) continue;
    for (const file of files(base)) {
      const text = fs.readFileSync(file, 'utf8');
      const rel = path.relative(root, file);
      for (const match of text.matchAll(IMPORT)) {
        const [, , typeOnly, spec] = match;
        if (typeOnly || !spec) continue;
        if (BUILTINS.has(spec)) {
          problems.push(
            `${rel}: imports the Node built-in "${spec}"; workflow code must be deterministic and do no I/O`,
          );
        } else if (spec.startsWith('.')) {
          const target = path.resolve(path.dirname(file), spec);
          const inside = PURE_DIRS.some((d) => target.startsWith(path.join(root, d) + path.sep));
          if (!inside)
            problems.push(
              `${rel}: imports "${spec}" outside ${PURE_DIRS.join('/ and ')}/ (use \`import type\` for types)`,
            );
        } else if (!ALLOWED_PACKAGES.has(spec)) {
          problems.push(
            `${rel}: imports the package "${spec}"; only ${[...ALLOWED_PACKAGES].join(', ')} are allowed here`,
          );
        }
      }
      for (const pattern of FORBIDDEN_CALLS) {
        if (pattern.test(text))
          problems.push(`${rel}: uses ${pattern.source.replace(/\\b|\\/g, '')}, which is not deterministic`);
      }
    }
  }
  return problems;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const problems = lint();
  for (const p of problems) console.error(p);
  if (problems.length > 0) process.exit(1);
  console.log(`lint-workflows: ${PURE_DIRS.join('/, ')}/ import no Node built-ins or I/O modules`);
}
