// Events from the service's PUB socket, with gaps in seq detected per source.

import { Subscriber } from "zeromq";
import { curveOptions } from "./discovery.js";
import { parseMessage } from "./json.js";

/**
 * Every event of one service, as an async iterator of `{topic, source, seq, ts, data}`.
 *
 * It subscribes to every topic: seq rises by one per *source* across all its
 * topics, so filtering in ZeroMQ would make each skipped topic look like a
 * gap. The first event from a source sets its baseline. `seq > last + 1`
 * counts `seq - last - 1` missed events and calls `onGap(source, missed)`;
 * `seq <= last` means the supervisor restarted (its counters start at 0),
 * which is reported as `onGap(source, 0)`: re-read state either way.
 */
export class EventStream {
  constructor(ep, { receiveHighWaterMark = 0, onGap } = {}) {
    this.receiveHighWaterMark = receiveHighWaterMark;
    this.onGap = onGap ?? (() => {});
    this.lastSeq = new Map();
    this.missed = 0;
    this.closed = false;
    this.#connect(ep);
  }

  #connect(ep) {
    // Options before connect: ZeroMQ reads queue limits when connecting.
    this.sub = new Subscriber({ linger: 0, receiveHighWaterMark: this.receiveHighWaterMark, ...curveOptions(ep) });
    this.sub.connect(ep.events);
    this.sub.subscribe();
  }

  /** After a supervisor restart: a new socket on the new endpoint, baselines forgotten. */
  reconnect(ep) {
    const old = this.sub;
    this.#connect(ep);
    this.lastSeq.clear();
    old.close();
    this.onGap("supervisor", 0);
  }

  track(event) {
    const last = this.lastSeq.get(event.source);
    this.lastSeq.set(event.source, event.seq);
    if (last === undefined) return;
    if (event.seq > last + 1) {
      this.missed += event.seq - last - 1;
      this.onGap(event.source, event.seq - last - 1);
    } else if (event.seq <= last) {
      this.onGap(event.source, 0);
    }
  }

  async *[Symbol.asyncIterator]() {
    while (!this.closed) {
      let frames;
      const sub = this.sub;
      try {
        frames = await sub.receive();
      } catch (err) {
        if (this.closed) return;
        if (sub !== this.sub) continue; // replaced by reconnect
        throw err;
      }
      const [topic, body] = frames;
      let event;
      try {
        event = parseMessage(body.toString("utf8"));
      } catch {
        continue; // malformed: skip it
      }
      if (event.topic !== topic.toString("utf8")) continue;
      this.track(event);
      yield event;
    }
  }

  close() {
    this.closed = true;
    this.sub.close();
  }
}
