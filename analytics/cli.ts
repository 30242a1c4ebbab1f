// `parley analytics replay --from T [--job J,…]`: the CLI side of replay.ts. Prints a JSON summary.
import { createAdapters } from '../common/adapters.ts';
import type { Config } from '../common/config.ts';
import { createLogger } from '../common/log.ts';
import { replay } from './replay.ts';
import { parseTime } from './series.ts';
import { createStateStore } from './service.ts';

export const ANALYTICS_HELP = `  parley analytics replay --from T [--job J,...]
                                         recompute analytics windows from time T (ms or ISO 8601) on`;

export async function analyticsCommand(config: Readonly<Config>, args: string[], values: Record<string, string | boolean | undefined>): Promise<number> {
  if (args[0] !== 'replay' || args.length !== 1) {
    console.error(`usage:\n${ANALYTICS_HELP}`);
    return 1;
  }
  let from: number;
  try {
    from = parseTime(values.from, '--from');
  } catch (err) {
    console.error(`${(err as Error).message}\nusage:\n${ANALYTICS_HELP}`);
    return 1;
  }
  const jobs = typeof values.job === 'string' ? values.job.split(',').map((j) => j.trim()).filter(Boolean) : undefined;
  const adapters = await createAdapters(config);
  const store = createStateStore(config);
  try {
    const report = await replay(
      { config, log: adapters.eventLog, archive: adapters.archive, store, logger: createLogger(config.logLevel) },
      { from, jobs, progress: (line) => process.stderr.write(`${line}\n`) },
    );
    console.log(JSON.stringify({ ...report, start: new Date(report.start).toISOString() }));
    return 0;
  } finally {
    await store.close();
    await adapters.close();
  }
}
