#!/usr/bin/env node
// The `parley` command: `parley start` runs every role in one process.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createAdapters } from '../common/adapters.ts';
import { ConfigError, loadConfig, type Config } from '../common/config.ts';
import { exportHistory, parseHistoryArgs } from './history.ts';
import { createLogger } from '../common/log.ts';
import { ROLES, startParley, type Role } from './server.ts';
import { ANALYTICS_HELP, analyticsCommand } from '../analytics/cli.ts';

const HELP = `parley — a messenger built around an MQTT broker

Usage:
  parley start [--role all|broker|archiver|notifier|analytics]
                                         run Parley (default: every role in one process;
                                         broker serves MQTT and the HTTP API)
  parley history --user U [--peer P | --group G] [--from T] [--to T]
                                         a user's or a conversation's history as NDJSON
${ANALYTICS_HELP}
  parley bench [options]                 the benchmarks against Mosquitto and bare Aedes (npm run bench;
                                         parley bench --help lists the options; from a source checkout)
  parley --help                          this text

Configuration is environment variables (README.md, "Configuration"); unset backends run embedded,
with data under PARLEY_DATA_DIR (default ./data).`;

async function main(argv: string[]): Promise<number> {
  // The bench has options of its own: everything after `bench` is its.
  if (argv[0] === 'bench') return bench(argv.slice(1));
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      role: { type: 'string', default: 'all' },
      user: { type: 'string' },
      peer: { type: 'string' },
      group: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      job: { type: 'string' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(HELP);
    return values.help ? 0 : 1;
  }
  if (command !== 'start' && command !== 'history' && command !== 'analytics') {
    console.error(`unknown command: ${command}\n\n${HELP}`);
    return 1;
  }
  const roles: Role[] = values.role === 'all' ? [...ROLES] : (values.role!.split(',') as Role[]);
  if (roles.some((r) => !ROLES.includes(r))) {
    console.error(`unknown role: ${values.role} (one of all, ${ROLES.join(', ')})`);
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
  if (command === 'history') return history(config, values);
  if (command === 'analytics') return analyticsCommand(config, positionals.slice(1), values);
  const log = createLogger(config.logLevel);
  const running = await startParley(config, log, roles);
  const stop = async (signal: string) => {
    log.info({ signal }, 'stopping');
    await running.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  return -1;
}

/**
 * `parley bench …`: the benchmark harness (bench/run.ts, run through tsx like `npm run bench`), from the
 * checkout this CLI belongs to, whether it runs from the sources (cli/) or built (dist/cli/). Its exit code.
 */
function bench(args: string[]): Promise<number> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const repo = [path.resolve(here, '..'), path.resolve(here, '..', '..')].find((dir) => fs.existsSync(path.join(dir, 'bench', 'run.ts')));
  if (!repo) {
    console.error('parley bench runs from a source checkout (bench/run.ts, with its dev dependencies): git clone, npm ci, then parley bench or npm run bench');
    return Promise.resolve(2);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'bench', 'run.ts'), ...args], { cwd: repo, stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward).on('SIGTERM', forward);
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
  });
}

async function history(config: Config, values: Record<string, string | boolean | undefined>): Promise<number> {
  let query;
  try {
    query = parseHistoryArgs(values);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${HELP}`);
    return 1;
  }
  const adapters = await createAdapters(config);
  const started = Date.now();
  const progress = (n: number, done: boolean) => {
    const rate = Math.round(n / Math.max(0.001, (Date.now() - started) / 1000));
    process.stderr.write(`\r${done ? 'exported' : 'exporting'} ${n} messages (${rate}/s)${done ? '\n' : ''}`);
  };
  try {
    await exportHistory(adapters.archive, query, process.stdout, progress);
  } finally {
    await adapters.close();
  }
  return 0;
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
