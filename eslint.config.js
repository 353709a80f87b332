// ESLint (flat config). TypeScript is linted with type information: the rules that
// matter most here are the promise rules, since a promise nobody awaits loses its
// error and its ordering. Formatting is Prettier's job (eslint-config-prettier turns
// off every rule it owns); the one layout rule kept is the 120-column limit.
import js from '@eslint/js';
import stylistic from '@stylistic/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

// The names views/static/*.js use: plain browser scripts, no bundler, htmx and ECharts as globals.
const browserGlobals = names(
  'window document location console fetch setTimeout clearTimeout confirm alert',
  'EventSource SharedWorker self Element HTMLSelectElement Intl URL htmx echarts',
);
// Node scripts that tests run as trainers.
const nodeGlobals = names('process Buffer console setTimeout clearTimeout');

export default tseslint.config(
  {
    ignores: ['node_modules/', 'data/', 'tmp/', '.tools/', 'test-results/', 'db/migrations/'],
  },
  js.configs.recommended,
  {
    rules: {
      // Validation and escaping match control characters on purpose.
      'no-control-regex': 'off',
      // `catch {}` is how best-effort cleanup says "a failure here changes nothing".
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Fastify plugins and handlers, Temporal update handlers and activities are async by
      // contract, whether or not their body awaits.
      '@typescript-eslint/require-await': 'off',
      // Activities, executors and stores are objects of closures that Temporal and the
      // callers pass around detached; none of them uses `this`.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read JSON bodies (`any` by design) and assert on them field by field; an
      // assertion that reads the wrong field fails the test.
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // Messages built from caught errors and parsed YAML values.
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
  {
    files: ['views/static/**/*.js'],
    languageOptions: { sourceType: 'script', globals: browserGlobals },
  },
  {
    files: ['test/**/*.mjs'],
    languageOptions: { globals: nodeGlobals },
  },
  prettier,
  // After eslint-config-prettier, which turns max-len off: Prettier wraps code at 120
  // columns but leaves long strings and comments alone, and those are what this catches.
  {
    plugins: { '@stylistic': stylistic },
    rules: {
      '@stylistic/max-len': [
        'error',
        {
          code: 120,
          tabWidth: 2,
          // HTML templates break where the markup reads best; URLs and regexes cannot break.
          ignoreTemplateLiterals: true,
          ignoreUrls: true,
          ignoreRegExpLiterals: true,
          // A test's name is one sentence, read whole in the report: `it('…', async () => {`.
          ignorePattern: String.raw`^\s*(?:it|test|describe)(?:\.\w+)?\(['"]`,
        },
      ],
    },
  },
);

function names(...lists) {
  return Object.fromEntries(
    lists
      .join(' ')
      .split(' ')
      .map((name) => [name, 'readonly']),
  );
}
