#!/usr/bin/env node
// A drop-in `solc` executable backed by solc-js (the official compiler built to WebAssembly).
// py-solc-x (and so Brownie) only ever calls `solc --version` and `solc --standard-json [--allow-paths ...]`,
// so those are the two calls answered here. Imports are read from the working directory, the allowed paths
// and node_modules, exactly like the native compiler with remappings.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);
if (args.includes('--version')) {
  // py-solc-x parses `(\d+\.\d+\.\d+)(\+commit\.\w+)`.
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}

const roots = [process.cwd()];
const allow = args.indexOf('--allow-paths');
if (allow >= 0 && args[allow + 1]) roots.push(...args[allow + 1].split(','));
const basePath = args.indexOf('--base-path');
if (basePath >= 0 && args[basePath + 1]) roots.unshift(args[basePath + 1]);

function findImport(p) {
  const candidates = path.isAbsolute(p) ? [p] : roots.map((r) => path.join(r, p));
  for (const c of candidates) {
    if (fs.existsSync(c)) return { contents: fs.readFileSync(c, 'utf8') };
  }
  return { error: `File not found: ${p} (searched ${roots.join(', ')})` };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImport }));
