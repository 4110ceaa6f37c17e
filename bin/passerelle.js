#!/usr/bin/env node
// Entry point of the `passerelle` command: runs the compiled CLI (built by `npm install` via `prepare`).
import { main } from '../dist/gateway/cli/main.js';

// A reader that stops early (`| head`) closes the pipe: that ends the output, it is not a crash.
process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw err; });

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.message : String(err)); process.exitCode = 1; },
);
