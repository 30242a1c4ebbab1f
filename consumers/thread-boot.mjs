// The consumer thread's first module. Node 20 does not carry a parent's module hooks into a worker, so
// when Parley runs from its TypeScript sources (npm start, npm test) this registers tsx here before loading
// the entry; a built Parley (dist/, plain .js) loads it directly.
import { workerData } from 'node:worker_threads';

if (workerData.entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(workerData.entry);
