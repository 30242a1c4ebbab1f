// Debian packages for the stack. Services install in parallel but dpkg takes one at a time, so every
// call goes through one queue; `apt-get update` runs once per CLI run, and only if something is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import type { StackContext } from './service.ts';
import { run } from './commands.ts';

export interface AptRequest {
  packages: string[];
  /** debconf lines for debconf-set-selections, e.g. 'slapd slapd/no_configuration boolean true'. */
  preseed?: string[];
}

let queue: Promise<unknown> = Promise.resolve();
let updated = false;

export function isInstalled(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === 'install ok installed';
}

/** Installs the missing ones of `packages` with apt-get; no-op when all are installed. */
export function aptInstall(ctx: StackContext, request: AptRequest): Promise<void> {
  const next = queue.then(() => installNow(ctx, request));
  queue = next.catch(() => undefined);
  return next;
}

const policyFile = '/usr/sbin/policy-rc.d';

async function installNow(ctx: StackContext, { packages, preseed = [] }: AptRequest): Promise<void> {
  const missing = packages.filter((p) => !isInstalled(p));
  if (missing.length === 0) return;
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const as = (cmd: string, args: string[]) => (sudo.length ? ['sudo', ['-n', cmd, ...args]] : [cmd, args]) as [string, string[]];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', NEEDRESTART_MODE: 'a' };

  if (preseed.length) await run(...as('debconf-set-selections', []), { input: preseed.join('\n') + '\n', env });
  if (!updated) {
    ctx.progress('apt-get update');
    await run(...as('apt-get', ['update', '-q', '-o', 'DPkg::Lock::Timeout=300']), { env });
    updated = true;
  }
  ctx.progress(`apt-get install ${missing.join(' ')}`);
  // Packages like redis-server and slapd start a system service from their postinst; the stack runs
  // its own on other ports, so forbid that while we install (Docker images ship the same file).
  const ownPolicy = !existsSync(policyFile) && sudo.length === 0;
  if (ownPolicy) writeFileSync(policyFile, '#!/bin/sh\n# parley test/stack: no services during install\nexit 101\n', { mode: 0o755 });
  try {
    let fetched = 0;
    await run(
      ...as('apt-get', ['install', '-y', '-q', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=300', ...missing]),
      {
        env,
        onLine(line) {
          if (line.startsWith('Get:')) {
            fetched++;
            if (fetched % 5 === 1) ctx.progress(`apt: downloading package ${fetched}`);
          } else if (line.startsWith('Setting up ')) {
            ctx.progress(`apt: ${line.replace(/ \.\.\.$/, '')}`);
          }
        },
      },
    );
  } finally {
    if (ownPolicy) rmSync(policyFile, { force: true });
  }
}
