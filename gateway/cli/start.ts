/** `passerelle start [--config FILE]` (CONTRACT.md): runs until SIGTERM or SIGINT, then shuts down gracefully. */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { PasserelleError } from '../errors.js';
import { start } from '../server.js';

export async function startCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } }, strict: true });
  let gateway;
  try {
    gateway = await start(loadConfig({ file: values.config }));
  } catch (err) {
    if (err instanceof PasserelleError) {
      process.stderr.write(`passerelle start: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const running = gateway;
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      running.close().then(resolve, resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  return 0;
}
