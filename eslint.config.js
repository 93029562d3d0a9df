// Lint (npm test runs it): typescript-eslint's recommended rules, no import cycles, short functions
// outside data tables, and no wall-clock or unseeded randomness in simulation code. Formatting is
// prettier's (.prettierrc.json); eslint-config-prettier turns off the rules that would fight it.
'use strict';
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const importX = require('eslint-plugin-import-x');
const prettier = require('eslint-config-prettier');

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.dbg/**', '.cache/**', 'probe/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [importX.createNodeResolver({ extensions: ['.ts', '.js'] })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // a function longer than this is a module: split it (a dispatch table over ops may say why it is not)
      'max-lines-per-function': ['error', { max: 100, skipBlankLines: true, skipComments: true }],
      // prettier wraps code at 120; strings, template literals and regexps stay whole (grep finds a message)
      'max-len': [
        'error',
        { code: 120, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true },
      ],
    },
  },
  {
    // a describe() block is a list of tests, not a function to split
    files: ['test/**/*.ts'],
    rules: { 'max-lines-per-function': 'off' },
  },
  {
    // simulation code takes all randomness from the run's seed (harness/prng.ts) and no time from the wall clock
    files: ['mm/**/*.ts', 'devices/**/*.ts', 'harness/schedctl.ts', 'harness/actor/**/*.ts', 'harness/agents/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: "take randomness from the run's seed (harness/prng.ts)" },
        { object: 'Date', property: 'now', message: 'simulation code must not read the wall clock' },
      ],
    },
  },
  {
    files: ['bin/**/*.js', '*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
        setImmediate: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
