#!/usr/bin/env node
// Entry point of the `passerelle` command: runs the compiled CLI (built by `npm install` via `prepare`).
import { main } from '../dist/gateway/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.message : String(err)); process.exitCode = 1; },
);
