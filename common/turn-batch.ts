// Gathers the calls of one event-loop turn into one request. Messages read from many sockets in the same
// poll phase each want a Redis command; sent one by one they cost a socket write and a reply parse apiece
// on the broker, and a command dispatch apiece in Redis. Sent together, in call order, they cost one.
// Calls nobody waits for (a PUBACK's removal from the offline queue) may linger for a few milliseconds
// instead, and gather the calls of many turns.

interface Waiting<Out> {
  resolve(out: Out): void;
  reject(err: unknown): void;
}

export class TurnBatch<In, Out> {
  private items: In[] = [];
  private waiting: Waiting<Out>[] = [];
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param send sends `items` as one request and answers one result per item, in their order (an Error
   *   there fails that item alone, as when one item of the request was refused). It is called
   *   in call order, at the end of the turn (in the check phase, after every socket read of the poll phase)
   *   or as soon as `max` items have gathered; requests on one connection keep that order.
   * @param lingerMs when above 0, the request goes `lingerMs` after its first item instead of at the end of
   *   that item's turn (or when `max` items have gathered, or at flush()): for calls whose answer nobody is
   *   waiting for.
   */
  constructor(
    private readonly send: (items: In[]) => Promise<readonly (Out | Error)[]>,
    private readonly max = 128,
    private readonly lingerMs = 0,
  ) {}

  add(item: In): Promise<Out> {
    const answer = new Promise<Out>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.items.push(item);
    if (this.items.length >= this.max) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      if (this.lingerMs > 0) this.timer = setTimeout(this.flush, this.lingerMs);
      else setImmediate(this.flush);
    }
    return answer;
  }

  /** Sends what has gathered now (also run by the scheduled check or the linger's timer). */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.items.length === 0) return;
    const items = this.items;
    const waiting = this.waiting;
    this.items = [];
    this.waiting = [];
    let sent: Promise<readonly (Out | Error)[]>;
    try {
      sent = this.send(items);
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      (outs) => {
        if (outs.length !== waiting.length) {
          const err = new Error(`batched request answered ${outs.length} results for ${waiting.length} items`);
          for (const w of waiting) w.reject(err);
          return;
        }
        for (let i = 0; i < waiting.length; i++) {
          const out = outs[i];
          if (out instanceof Error) waiting[i].reject(out);
          else waiting[i].resolve(out);
        }
      },
      (err: unknown) => {
        for (const w of waiting) w.reject(err);
      },
    );
  };
}
