// The shape every real service in test/stack/ has. One file per service (redis.ts, ldap.ts, kafka.ts,
// hbase.ts, minio.ts) exports one StackService; cli.ts runs install → start → health for each.
export interface StackContext {
  /** Downloads and builds, kept between runs: ~/.cache/parley-stack (or $PARLEY_STACK_CACHE). */
  cacheDir: string;
  /** Data, pid files and logs of this run: <repo>/.stack (gitignored), or $PARLEY_STACK_DIR. */
  runDir: string;
  /** Prints a progress line ("[kafka] downloading 12/80 jars"). */
  progress(message: string): void;
}

export interface StackService {
  name: string;
  /** 'tools' installs commands and starts nothing (no pid file, no port). Default 'server'. */
  kind?: 'server' | 'tools';
  /** Idempotent; a second call with a warm cache does (almost) nothing. */
  install(ctx: StackContext): Promise<void>;
  /** Starts the process detached, pid in `${runDir}/${name}.pid`, log in `${runDir}/${name}.log`. */
  start(ctx: StackContext): Promise<void>;
  /** True once the service answers real requests. */
  healthy(ctx: StackContext): Promise<boolean>;
  /** Connection settings for Parley, merged into <repo>/.stack.env (PARLEY_REDIS_URL=..., ...). */
  env(ctx: StackContext): Record<string, string>;
}
