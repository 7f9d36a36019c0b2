#!/usr/bin/env node
// Compiles the lending peers of `make gas-peers` from their npm sources, each with solc-js of its own version and its
// own settings:
//   node scripts/bench/peers/compile.js morpho aave     -> prints {"morpho": "<output file>", "aave": "<output file>"}
// The Standard JSON input holds every source file it reaches (entry files and their imports, read from node_modules or
// this repository); its SHA-256 with the compiler version names the output file, .cache/peers/<peer>-<hash>.json, so a
// rerun with the same sources and settings reads it back instead of compiling. The output is
// {"solcVersion", "settings", "contracts": {name: {"abi", "bytecode", "linkReferences"}}} for every contract with code.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CACHE = path.join(ROOT, '.cache', 'peers');
const AAVE = '@aave/core-v3/contracts/';

const PEERS = {
  // Morpho Blue 1.0.0: the settings of its repository's foundry.toml (the package ships no compiler config):
  // via-IR, optimizer 999,999 runs, EVM paris, no metadata hash.
  morpho: {
    solc: 'solc-0.8.19',
    sources: ['@morpho-org/morpho-blue/src/Morpho.sol', '@morpho-org/morpho-blue/src/mocks/IrmMock.sol',
      'scripts/bench/peers/ChainlinkOracleAdapter.sol'],
    settings: {viaIR: true, optimizer: {enabled: true, runs: 999999}, evmVersion: 'paris',
      metadata: {bytecodeHash: 'none'}},
  },
  // Aave v3 core 1.19.3 (v3.0.2): the settings of the package's own build (artifacts/build-info):
  // optimizer 100,000 runs, EVM london, legacy code generator.
  aave: {
    solc: 'solc-0.8.10',
    sources: ['protocol/configuration/PoolAddressesProvider.sol', 'protocol/configuration/ACLManager.sol',
      'protocol/pool/Pool.sol', 'protocol/pool/PoolConfigurator.sol',
      'protocol/pool/DefaultReserveInterestRateStrategy.sol', 'protocol/tokenization/AToken.sol',
      'protocol/tokenization/VariableDebtToken.sol', 'protocol/tokenization/StableDebtToken.sol',
      'misc/AaveOracle.sol'].map((s) => AAVE + s),
    settings: {optimizer: {enabled: true, runs: 100000}, evmVersion: 'london'},
  },
};

/** The file behind a source unit name: this repository first, then node_modules. */
function read(unit) {
  for (const dir of [ROOT, path.join(ROOT, 'node_modules')]) {
    const file = path.join(dir, unit);
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
  }
  throw new Error(`source not found: ${unit} (looked in ${ROOT} and its node_modules)`);
}

/** Every source unit reachable from `entries`, with its content (relative imports resolved as solc does). */
function closure(entries) {
  const sources = {};
  const todo = [...entries];
  while (todo.length) {
    const unit = todo.pop();
    if (sources[unit]) continue;
    const content = read(unit);
    sources[unit] = {content};
    for (const m of content.matchAll(/^\s*import\s+(?:[^'"]*?\s+from\s+)?["']([^"']+)["']/gm)) {
      const imp = m[1];
      todo.push(imp.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(unit), imp)) : imp);
    }
  }
  return sources;
}

function compile(name) {
  const peer = PEERS[name];
  if (!peer) throw new Error(`unknown peer ${name}: use ${Object.keys(PEERS).join(', ')}`);
  const solc = require(peer.solc);
  const input = {
    language: 'Solidity',
    sources: closure(peer.sources),
    settings: {...peer.settings, outputSelection: {'*': {'*': ['abi', 'evm.bytecode.object',
      'evm.bytecode.linkReferences']}}},
  };
  const text = JSON.stringify(input);
  const hash = crypto.createHash('sha256').update(solc.version()).update(text).digest('hex').slice(0, 16);
  const out = path.join(CACHE, `${name}-${hash}.json`);
  if (fs.existsSync(out)) return out;
  const result = JSON.parse(solc.compile(text, {import: (unit) => ({contents: read(unit)})}));
  const errors = (result.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const contracts = {};
  for (const [unit, byName] of Object.entries(result.contracts)) {
    for (const [cname, c] of Object.entries(byName)) {
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
      if (contracts[cname] && contracts[cname].bytecode !== c.evm.bytecode.object) {
        throw new Error(`two contracts named ${cname} (${unit} and another file)`);
      }
      contracts[cname] = {abi: c.abi, bytecode: c.evm.bytecode.object, linkReferences: c.evm.bytecode.linkReferences};
    }
  }
  fs.mkdirSync(CACHE, {recursive: true});
  fs.writeFileSync(out, JSON.stringify({solcVersion: solc.version(), settings: peer.settings, contracts}));
  return out;
}

const names = process.argv.slice(2);
if (!names.length) {
  process.stderr.write(`usage: compile.js ${Object.keys(PEERS).join(' ')}\n`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(Object.fromEntries(names.map((n) => [n, compile(n)]))) + '\n');
