// <repo>/.stack.env: KEY=VALUE lines with the real services' connection settings, written by
// `stack:up`. Absent file = nothing configured = embedded adapters.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { envFile } from './context.ts';

export const stackEnvFile = envFile;

export function parseStackEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    env[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return env;
}

/** The settings in <repo>/.stack.env (or `file`); {} when the stack was never started. */
export function loadStackEnv(file: string = stackEnvFile): Record<string, string> {
  return existsSync(file) ? parseStackEnv(readFileSync(file, 'utf8')) : {};
}

/** Copies the stack settings into process.env, leaving variables the caller already set alone. */
export function applyStackEnv(file: string = stackEnvFile): Record<string, string> {
  const env = loadStackEnv(file);
  for (const [key, value] of Object.entries(env)) process.env[key] ??= value;
  return env;
}

/** Merges `values` into the file (keys of other services are kept), atomically. */
export function writeStackEnv(values: Record<string, string>, file: string = stackEnvFile): void {
  const merged = { ...loadStackEnv(file), ...values };
  const lines = Object.keys(merged)
    .sort()
    .map((key) => `${key}=${merged[key]}`);
  const text = `# Written by test/stack/cli.ts (npm run stack:up); connection settings of the real services.\n${lines.join('\n')}\n`;
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** Drops `keys` from the file (after `down`), deleting the file once it holds nothing. */
export function removeStackEnv(keys: string[], file: string = stackEnvFile): void {
  if (!existsSync(file)) return;
  const env = loadStackEnv(file);
  for (const key of keys) delete env[key];
  if (Object.keys(env).length === 0) rmSync(file, { force: true });
  else {
    writeFileSync(file, '');
    writeStackEnv(env, file);
  }
}
