// Mosquitto from Debian's package, installed on first use, run with a config generated per run.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const POLICY = '/usr/sbin/policy-rc.d';

export function mosquittoBinary(): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto']) if (fs.existsSync(p)) return p;
  return null;
}

/** Installs the `mosquitto` package with apt-get when it is missing (root, or sudo without a password). */
export function ensureMosquitto(progress: (line: string) => void): string {
  const found = mosquittoBinary();
  if (found) return found;
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]) => {
    const [cmd, ...rest] = [...sudo, ...args];
    const r = spawnSync(cmd, rest, { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).slice(-2000)}`);
  };
  progress('mosquitto: apt-get update');
  run(['apt-get', 'update', '-q', '-o', 'DPkg::Lock::Timeout=300']);
  progress('mosquitto: apt-get install mosquitto');
  // The package's postinst would start a system Mosquitto on 1883; the bench runs its own, so forbid that.
  const ownPolicy = sudo.length === 0 && !fs.existsSync(POLICY);
  if (ownPolicy) fs.writeFileSync(POLICY, '#!/bin/sh\n# parley bench: no services during install\nexit 101\n', { mode: 0o755 });
  try {
    run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=300', 'mosquitto']);
  } finally {
    if (ownPolicy) fs.rmSync(POLICY, { force: true });
  }
  const installed = mosquittoBinary();
  if (!installed) throw new Error('mosquitto was installed but its binary is not in /usr/sbin or /usr/bin');
  return installed;
}

export function mosquittoVersion(binary: string): string {
  const r = spawnSync(binary, ['-h'], { encoding: 'utf8' });
  return /mosquitto version (\S+)/.exec(r.stdout + r.stderr)?.[1] ?? 'unknown';
}

/**
 * A plain relay on one loopback listener: anonymous, no persistence file, TCP_NODELAY, and queues long
 * enough for the offline-drain scenario (the default max_queued_messages of 1000 would drop most of it).
 */
export function mosquittoConfig(port: number, queued: number): string {
  return [
    'per_listener_settings false',
    'allow_anonymous true',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'set_tcp_nodelay true',
    `max_queued_messages ${queued}`,
    'max_queued_bytes 0',
    `listener ${port} 127.0.0.1`,
    '',
  ].join('\n');
}
