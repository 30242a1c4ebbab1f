// Calls between two threads of one process over a MessagePort (or a Worker, which has the same two
// methods): each side registers the methods it serves and calls the other's. Arguments and results are
// structured-cloned. Errors cross as their class (ParleyError with its code, RangeError, TypeError, Error)
// and message, because callers branch on them (a RangeError is "refused outright", a ParleyError maps to
// an HTTP status). When the other side is gone, every pending and later call fails with `unavailable`.
import { ParleyError, unavailable, type ErrorCode } from './errors.ts';

export interface RpcPort {
  postMessage(value: unknown): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
}

type Method = (...args: never[]) => unknown;

interface WireError {
  name: string;
  message: string;
  code?: ErrorCode;
}

type Frame =
  | { rpc: 'call'; id: number; method: string; args: unknown[] }
  | { rpc: 'reply'; id: number; value: unknown }
  | { rpc: 'fail'; id: number; error: WireError };

function toWire(err: unknown): WireError {
  if (err instanceof ParleyError) return { name: 'ParleyError', message: err.message, code: err.code };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

function fromWire(w: WireError): Error {
  if (w.code) return new ParleyError(w.code, w.message);
  if (w.name === 'RangeError') return new RangeError(w.message);
  if (w.name === 'TypeError') return new TypeError(w.message);
  return Object.assign(new Error(w.message), { name: w.name });
}

const isFrame = (v: unknown): v is Frame => typeof v === 'object' && v !== null && 'rpc' in v && typeof (v as { id?: unknown }).id === 'number';

export class RpcEndpoint {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly methods = new Map<string, Method>();
  private gone: Error | null = null;

  constructor(private readonly port: RpcPort) {
    port.on('message', (value) => {
      if (isFrame(value)) this.receive(value);
    });
  }

  /** Serves `method` to the other side; what it returns (or resolves to) is the call's result. */
  serve<F extends Method>(method: string, fn: F): void {
    if (this.methods.has(method)) throw new Error(`rpc method ${method} is already served`);
    this.methods.set(method, fn);
  }

  call<T>(method: string, ...args: unknown[]): Promise<T> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      try {
        this.port.postMessage({ rpc: 'call', id, method, args } satisfies Frame);
      } catch (err) {
        // Arguments that cannot be cloned (a function, a socket): the caller's mistake, said plainly.
        this.pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** The other side is gone (its thread exited): pending and later calls fail. */
  close(reason = 'the consumer thread is not running'): void {
    if (this.gone) return;
    this.gone = unavailable(reason);
    for (const p of this.pending.values()) p.reject(this.gone);
    this.pending.clear();
  }

  get closed(): boolean {
    return this.gone !== null;
  }

  private receive(frame: Frame): void {
    if (frame.rpc === 'call') {
      void this.answer(frame.id, frame.method, frame.args);
      return;
    }
    const p = this.pending.get(frame.id);
    if (!p) return;
    this.pending.delete(frame.id);
    if (frame.rpc === 'reply') p.resolve(frame.value);
    else p.reject(fromWire(frame.error));
  }

  private async answer(id: number, method: string, args: unknown[]): Promise<void> {
    let out: Frame;
    try {
      const fn = this.methods.get(method);
      if (!fn) throw new Error(`rpc method ${method} is not served here`);
      out = { rpc: 'reply', id, value: await (fn as (...a: unknown[]) => unknown)(...args) };
    } catch (err) {
      out = { rpc: 'fail', id, error: toWire(err) };
    }
    if (this.gone) return;
    try {
      this.port.postMessage(out);
    } catch (err) {
      // A result that cannot be cloned: the caller gets the reason instead. If even that cannot be posted,
      // the port is gone and so is the caller.
      try {
        this.port.postMessage({ rpc: 'fail', id, error: toWire(err) } satisfies Frame);
      } catch {
        this.close();
      }
    }
  }
}
