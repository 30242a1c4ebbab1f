// The consumer thread yields the CPU to the broker's event loop. The archiver and the analytics jobs read
// a log and may fall behind for a while without anyone waiting on them; a delivery or an ack that waits
// for a CPU the consumers hold is a user waiting. So, on Linux, the thread raises its own nice value (the
// kernel schedules threads one by one, and a thread may always lower its own priority) and names itself,
// so that `top -H` and `ps -L` tell it apart from the broker's thread. Elsewhere both are skipped.
import { readlinkSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import path from 'node:path';

/** A thread name as the kernel keeps it: at most 15 bytes. */
export const CONSUMER_THREAD_NAME = 'parley-consumer';

/** The highest nice value Linux has. */
const NICE_MAX = 19;

export interface ThreadSettled {
  /** The calling thread's kernel id; null where /proc/thread-self is not there (not Linux). */
  tid: number | null;
  /** The nice value the thread runs at now, or null when it could not be read. */
  nice: number | null;
  /** What could not be done, for the log. */
  problems: string[];
}

/**
 * Names the calling thread and runs it `lower` nice steps below the priority it was started with (capped
 * at 19). 0 leaves the priority alone. Never throws: a thread that cannot do either still does its work.
 */
export function settleThread(name: string, lower: number): ThreadSettled {
  if (process.platform !== 'linux') return { tid: null, nice: null, problems: [] };
  const problems: string[] = [];
  let tid: number | null = null;
  try {
    tid = Number(path.basename(readlinkSync('/proc/thread-self')));
  } catch {
    return { tid: null, nice: null, problems: ['no /proc/thread-self: thread name and priority left as they are'] };
  }
  try {
    writeFileSync(`/proc/thread-self/comm`, name.slice(0, 15));
  } catch (err) {
    problems.push(`thread name: ${(err as Error).message}`);
  }
  let nice: number | null = null;
  try {
    nice = getPriority(tid);
    if (lower > 0 && nice < NICE_MAX) {
      setPriority(tid, Math.min(NICE_MAX, nice + lower));
      nice = getPriority(tid);
    }
  } catch (err) {
    problems.push(`thread priority: ${(err as Error).message}`);
  }
  return { tid, nice, problems };
}
