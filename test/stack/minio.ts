// MinIO, built from source through the Go module proxy (its release tags are not semver, and the
// project no longer ships binaries), serving S3 on 127.0.0.1:19000 and its console on :19001.
// The bucket is not created here: the BlobStore adapter creates it, as it must in production.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StackContext, StackService } from './service.ts';
import { CommandError, hasCommand, run } from './commands.ts';
import { formatDuration } from './context.ts';
import { spawnDetached } from './processes.ts';

// The newest version the module proxy serves (`go list -m github.com/minio/minio@latest`): the last
// commit of the archived repository, 2026-02-12. The pseudo-version of the last release tag
// (RELEASE.2025-10-15T17-29-55Z, commit 9e49d5e7a648) is refused by the proxy we can reach.
export const minioModule = 'github.com/minio/minio';
export const minioVersion = 'v0.0.0-20260212201848-7aac2a2c5b7c';
// go.mod's own toolchain line: used only if the installed Go cannot build MinIO.
const fallbackToolchain = 'go1.24.8';

const host = '127.0.0.1';
const port = 19000;
const consolePort = 19001;
export const minioEndpoint = `http://${host}:${port}`;
// Loopback-only test credentials; production sets its own through PARLEY_S3_*.
const accessKey = 'parley-minio';
const secretKey = 'parley-minio-secret-key';

function home(ctx: StackContext): string {
  return join(ctx.cacheDir, 'minio');
}

function binary(ctx: StackContext): string {
  return join(home(ctx), 'bin', 'minio');
}

function goCommand(): string | undefined {
  if (hasCommand('go')) return 'go';
  // The Go tarball's usual place, when PATH of a non-login shell does not name it.
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined;
}

/** `go install module@version` with GOBIN, module and build caches under the stack cache. */
async function build(ctx: StackContext, go: string, toolchain: string | undefined): Promise<void> {
  const dir = home(ctx);
  const staging = join(dir, 'bin.partial');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GOBIN: staging,
    GOMODCACHE: join(dir, 'go-mod'),
    GOCACHE: join(dir, 'go-build'),
    GOFLAGS: '-buildvcs=false',
    CGO_ENABLED: '0', // a static binary, and no C compiler needed
    ...(toolchain ? { GOTOOLCHAIN: toolchain } : {}),
  };
  const started = Date.now();
  let modules = 0;
  let packages = 0;
  let lastReport = 0;
  const report = (force = false) => {
    if (!force && Date.now() - lastReport < 10_000) return;
    lastReport = Date.now();
    ctx.progress(`go: ${modules} modules downloaded, ${packages} packages compiled, ${formatDuration(Date.now() - started)}`);
  };
  await run(go, ['install', '-v', `${minioModule}@${minioVersion}`], {
    cwd: dir,
    env,
    onLine(line) {
      if (line.startsWith('go: downloading ')) modules++;
      else if (/^[\w.-]+(\/[\w.@+-]+)+$/.test(line.trim())) packages++;
      else return;
      report();
    },
  });
  report(true);
  renameSync(join(staging, 'minio'), binary(ctx));
  rmSync(staging, { recursive: true, force: true });
}

export const minio: StackService = {
  name: 'minio',

  async install(ctx) {
    const stampFile = join(home(ctx), 'bin', '.parley-version');
    if (existsSync(binary(ctx)) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === minioVersion) return;
    const go = goCommand();
    if (!go) throw new Error('minio: no Go toolchain on PATH (or /usr/local/go/bin/go); MinIO is built from source');
    mkdirSync(join(home(ctx), 'bin'), { recursive: true });
    ctx.progress(`building ${minioModule}@${minioVersion} with ${go} (takes minutes the first time)`);
    try {
      await build(ctx, go, undefined);
    } catch (err) {
      const output = err instanceof CommandError ? err.output : '';
      if (!/requires go >=|toolchain/.test(output)) throw err;
      ctx.progress(`the installed Go cannot build it; retrying with GOTOOLCHAIN=${fallbackToolchain}`);
      await build(ctx, go, fallbackToolchain);
    }
    writeFileSync(stampFile, minioVersion);
    // The module and build caches (about 2 GB) only matter for another build of another version.
    const caches = { GOMODCACHE: join(home(ctx), 'go-mod'), GOCACHE: join(home(ctx), 'go-build') };
    await run(go, ['clean', '-cache', '-modcache'], { env: { ...process.env, ...caches } }).catch(() => {});
    for (const dir of Object.values(caches)) rmSync(dir, { recursive: true, force: true });
  },

  async start(ctx) {
    const dir = join(ctx.runDir, 'minio');
    const data = join(dir, 'data');
    mkdirSync(data, { recursive: true });
    await spawnDetached(
      ctx,
      'minio',
      binary(ctx),
      ['server', data, '--address', `${host}:${port}`, '--console-address', `${host}:${consolePort}`],
      {
        cwd: dir,
        env: {
          ...process.env,
          MINIO_ROOT_USER: accessKey,
          MINIO_ROOT_PASSWORD: secretKey,
          MINIO_UPDATE: 'off',
          MINIO_BROWSER_REDIRECT: 'off',
          // Keep its own config and certs out of $HOME.
          HOME: dir,
        },
      },
    );
  },

  async healthy() {
    try {
      const res = await fetch(`${minioEndpoint}/minio/health/live`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.ok;
    } catch {
      return false;
    }
  },

  env() {
    return {
      PARLEY_S3_ENDPOINT: minioEndpoint,
      PARLEY_S3_ACCESS_KEY: accessKey,
      PARLEY_S3_SECRET_KEY: secretKey,
      PARLEY_S3_BUCKET: 'parley-attachments',
      PARLEY_S3_REGION: 'us-east-1',
    };
  },
};
