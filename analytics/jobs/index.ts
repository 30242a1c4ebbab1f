// Every analytics job. `parley start` runs them on one consumer group (StreamJobSet); a replay runs each on a group of its own.
import type { AnyJob, JobSettings } from '../job.ts';
import { LATE_EVENTS } from '../job.ts';
import { activeUsers } from './active-users.ts';
import { deliveryLatency } from './delivery-latency.ts';
import { offlineBacklog } from './offline-backlog.ts';
import { topConversations } from './top-conversations.ts';
import { traffic } from './traffic.ts';

export function createJobs(settings: JobSettings): AnyJob[] {
  return [traffic, activeUsers(settings), topConversations, deliveryLatency, offlineBacklog(settings)];
}

/** Every metric name the jobs write, for validating API queries. */
export function metricNames(jobs: readonly AnyJob[]): string[] {
  return [...jobs.flatMap((j) => j.metrics), LATE_EVENTS];
}
