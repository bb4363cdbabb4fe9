// A mirrored view of the service's state that always converges (the zguide's Clone pattern).
//
// Events are not a reliable log: a slow subscriber loses them silently, and
// one that connects late never sees what came before. So the mirror treats
// events as hints and the command channel as the truth:
//
//   1. subscribe first (events are buffered), then snapshot with
//      `session.get`, `cost.totals` and `supervisor.status`;
//   2. apply each later event: `cost.logged` carries complete totals,
//      `session.saved` with a higher revision means "read the session again",
//      `worker.*` patch the worker's entry;
//   3. on a gap in any source's seq (the queue overflowed, and that drops
//      every source's events alike) or a supervisor restart, read everything
//      again; events older than a snapshot are dropped.
//
// `view` is `{session, costs, workers}`; `workers` keeps, per worker, the
// fields that only change with an event: name, pid, state, restarts, last_exit.

/** Which part of the view each event source owns. */
export const OWNED_BY = { session_writer: "session", cost_ledger: "costs", supervisor: "workers" };

const READS = { session: "session.get", costs: "cost.totals", workers: "supervisor.status" };

function workerEntries(status) {
  return status.workers.map(({ name, pid, state, restarts, last_exit }) => ({ name, pid, state, restarts, last_exit }));
}

export class Mirror {
  /**
   * `client` is a connected Client. `onEvent(event)`, if given, is awaited
   * before each event is applied (a slow consumer, or a test's gate).
   */
  constructor(client, { receiveHighWaterMark = 0, onEvent = null } = {}) {
    this.client = client;
    this.onEvent = onEvent;
    this.view = { session: null, costs: null, workers: null };
    this.snapshotAt = { session: "", costs: "", workers: "" };
    this.rereads = 0;
    this.gaps = 0;
    this.applied = 0;
    this.stream = client.events({
      receiveHighWaterMark,
      onGap: (source, missed) => this.#gap(source, missed),
    });
    this.loop = null;
    this.refreshing = new Map();
    this.lastError = null; // the last failed re-read that an event asked for
  }

  /** Start reading events, then take the first snapshot (subscribe first, then snapshot). */
  async start() {
    this.loop = this.#read();
    await this.refresh();
    return this;
  }

  async #read() {
    try {
      for await (const event of this.stream) {
        if (this.onEvent) await this.onEvent(event);
        this.#apply(event);
      }
    } catch (err) {
      if (!this.stream.closed) throw err;
    }
  }

  #gap(source, missed) {
    // A gap means our queue overflowed, which drops every source's events alike,
    // the last ones too (no later event of theirs may ever show it); a fall means
    // the supervisor restarted. Either way, read everything again.
    this.gaps += missed;
    this.#background(Object.keys(READS));
  }

  /** A re-read an event asked for: nobody awaits it, so its failure is kept, not thrown. */
  #background(parts) {
    this.refresh(parts).catch((err) => {
      if (!this.stream.closed) this.lastError = err; // after close, a refused read is expected
    });
  }

  /** Read again the given parts of the state (all by default). */
  async refresh(parts = Object.keys(READS)) {
    await Promise.all(parts.map((part) => this.#reread(part)));
  }

  #reread(part) {
    // One read at a time per part; a request for another while one runs queues one more.
    const running = this.refreshing.get(part);
    if (running) {
      running.again = true;
      return running.done;
    }
    const entry = { again: false, done: null };
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          const sentAt = new Date().toISOString().replace("Z", "000Z"); // microseconds, like event ts
          const result = await this.client.request(READS[part]);
          this.rereads += 1;
          this.view[part] = part === "workers" ? workerEntries(result) : result;
          this.snapshotAt[part] = sentAt;
        } while (entry.again);
      } finally {
        this.refreshing.delete(part); // a failed read must not block the next one
      }
    })();
    this.refreshing.set(part, entry);
    return entry.done;
  }

  #apply(event) {
    const part = OWNED_BY[event.source];
    if (!part || this.view[part] === null) return;
    if (event.ts < this.snapshotAt[part]) return; // already in the snapshot (same clock, ISO text sorts)
    this.applied += 1;
    const { topic, data } = event;
    if (topic === "cost.logged") {
      this.view.costs = data.totals;
    } else if (topic === "session.saved") {
      const session = this.view.session;
      if (data.revision > session.revision) this.#background(["session"]);
      else if (data.revision === session.revision) session.last_saved_at = data.saved_at;
    } else if (topic.startsWith("worker.")) {
      const entry = this.view.workers.find((w) => w.name === data.name);
      if (!entry) return void this.#background(["workers"]);
      Object.assign(entry, { pid: data.state === "running" ? data.pid : null, state: data.state, restarts: data.restarts });
      if (topic !== "worker.started") entry.last_exit = null; // its text is the supervisor's: read it
      if (topic !== "worker.started") this.#background(["workers"]);
    }
  }

  /** Stop reading events. */
  close() {
    this.stream.close();
  }
}
