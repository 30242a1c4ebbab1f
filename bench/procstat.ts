// CPU time and memory of a process, and the machine's idle time, straight from /proc (Linux only).
import fs from 'node:fs';
import os from 'node:os';

// USER_HZ: /proc reports CPU time in clock ticks, 100 per second on every Linux this runs on.
const TICKS_PER_SECOND = 100;

export interface ProcSample {
  /** user + system CPU seconds since the process started */
  cpuSeconds: number;
  rssBytes: number;
  /** peak RSS (VmHWM) */
  peakRssBytes: number;
}

/**
 * The fields of a /proc stat file after the command name (which is in parentheses and may contain
 * spaces): index 0 is field 3 (state), 11 and 12 utime and stime, 16 the nice value.
 */
function statFields(file: string): string[] {
  const stat = fs.readFileSync(file, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export function sampleProcess(pid: number): ProcSample | null {
  try {
    const fields = statFields(`/proc/${pid}/stat`);
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
  } catch {
    return null;
  }
}

export interface ThreadSample {
  /** kernel thread id */
  tid: number;
  /** the thread's name (comm): Node names none of its own, Parley names its consumer thread */
  name: string;
  nice: number;
  /** user + system CPU seconds since the thread started */
  cpuSeconds: number;
}

/** The threads of a process (`self` for this one); a thread that ends while listed is left out. */
export function sampleThreads(pid: number | 'self'): ThreadSample[] {
  const out: ThreadSample[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const fields = statFields(`/proc/${pid}/task/${tid}/stat`);
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.push({ tid: Number(tid), name, nice: Number(fields[16]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND });
    } catch {
      // ended while listed
    }
  }
  return out;
}

/**
 * A process's main thread (its tid is the pid) as the scheduler counts it (/proc/<pid>/task/<pid>/schedstat):
 * seconds on a CPU and seconds spent runnable but waiting for one. Null where the kernel keeps no schedstat.
 */
export function sampleMainThread(pid: number): { runSeconds: number; waitSeconds: number; preempted: number } | null {
  try {
    const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    // Switches away from a thread that could have gone on running: the scheduler gave its CPU to another.
    const preempted = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1]);
    return [run, wait, preempted].every(Number.isFinite) ? { runSeconds: run / 1e9, waitSeconds: wait / 1e9, preempted } : null;
  } catch {
    return null;
  }
}

/**
 * A process's main thread between two points in time: % of a core it ran, and ms per second it was
 * ready to run but waited for a CPU (others held every core, or the CPU it woke on). The broker's event loop is its main thread,
 * so the wait is time every message in hand waited too. Null where the kernel keeps no schedstat.
 */
export class MainThreadMeter {
  private readonly t0 = performance.now();
  private readonly start: ReturnType<typeof sampleMainThread>;

  constructor(private readonly pid: number) {
    this.start = sampleMainThread(pid);
  }

  /**
   * `waitMsPerSec` counts every delay between the thread's wake-up and its running, so a thread that sleeps
   * between events pays it on each wake-up; `preemptedPerSec` counts only the times it was taken off a CPU
   * while it could have gone on: the part of the wait that is other threads' and processes' doing.
   */
  read(): { cpu: number; waitMsPerSec: number; preemptedPerSec: number } | null {
    const now = sampleMainThread(this.pid);
    const seconds = (performance.now() - this.t0) / 1000;
    if (!this.start || !now || seconds <= 0) return null;
    return {
      cpu: ((now.runSeconds - this.start.runSeconds) / seconds) * 100,
      waitMsPerSec: ((now.waitSeconds - this.start.waitSeconds) / seconds) * 1000,
      preemptedPerSec: (now.preempted - this.start.preempted) / seconds,
    };
  }
}

export interface MachineSample {
  busySeconds: number;
  totalSeconds: number;
}

export function sampleMachine(): MachineSample {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0); // idle + iowait
  const total = v.reduce((a, b) => a + b, 0);
  return { busySeconds: (total - idle) / TICKS_PER_SECOND, totalSeconds: total / TICKS_PER_SECOND };
}

/** CPU use of a set of processes between two points in time, as % of one core (200% = two cores busy). */
export class CpuMeter {
  private readonly start = new Map<number, number>();
  private readonly t0 = performance.now();
  private readonly machine0 = sampleMachine();

  constructor(private readonly pids: readonly number[]) {
    for (const pid of pids) this.start.set(pid, sampleProcess(pid)?.cpuSeconds ?? 0);
  }

  /** Percent of one core used by the processes since construction. */
  percent(): number {
    const seconds = (performance.now() - this.t0) / 1000;
    if (seconds <= 0) return 0;
    let used = 0;
    for (const pid of this.pids) {
      const now = sampleProcess(pid)?.cpuSeconds;
      if (now !== undefined) used += now - (this.start.get(pid) ?? 0);
    }
    return (used / seconds) * 100;
  }

  /** Percent of all cores busy on the machine since construction (every process, not only ours). */
  machineBusyPercent(): number {
    const m = sampleMachine();
    const total = m.totalSeconds - this.machine0.totalSeconds;
    return total > 0 ? ((m.busySeconds - this.machine0.busySeconds) / total) * 100 : 0;
  }
}

export function machineInfo() {
  const cpus = os.cpus();
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  const memTotal = Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) * 1024;
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus[0]?.model ?? 'unknown';
  return {
    cores: cpus.length,
    model,
    memTotalBytes: memTotal,
    kernel: os.release(),
    node: process.version,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
