#!/usr/bin/env node
// The `parley` command: `parley start` runs every role in one process.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../common/config.ts';
import { createLogger } from '../common/log.ts';
import { startParley } from './server.ts';

const HELP = `parley — a messenger built around an MQTT broker

Usage:
  parley start [--role all|broker|api]   run Parley (default: every role in one process)
  parley --help                          this text

Configuration is environment variables (README.md, "Configuration"); unset backends run embedded,
with data under PARLEY_DATA_DIR (default ./data).`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { help: { type: 'boolean', short: 'h' }, role: { type: 'string', default: 'all' } },
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(HELP);
    return values.help ? 0 : 1;
  }
  if (command !== 'start') {
    console.error(`unknown command: ${command}\n\n${HELP}`);
    return 1;
  }
  if (!['all', 'broker', 'api'].includes(values.role!)) {
    console.error(`unknown role: ${values.role} (this build runs all, broker or api; broker and api share one process)`);
    return 1;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const running = await startParley(config, log);
  const stop = async (signal: string) => {
    log.info({ signal }, 'stopping');
    await running.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
