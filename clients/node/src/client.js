// A small promise-based client of the Writers Factory session service.
//
// Requests go over one DEALER socket (an empty delimiter frame, then the JSON
// frame); replies are matched by id. A request that gets no reply is re-sent
// with the SAME id: the service applies an id once, so a re-send is safe.
// Events come from a SUB socket with seq checked per source (src/events.js).
// The client watches .session/run/endpoints.json: after a supervisor restart
// on tcp the ports change, so it reconnects its sockets to the new endpoints.

import { randomBytes } from "node:crypto";
import { watch } from "node:fs";
import { join } from "node:path";
import { Dealer } from "zeromq";
import { PROTOCOL, curveOptions, findEndpoints } from "./discovery.js";
import { EventStream } from "./events.js";
import { parseMessage, stringifyExact } from "./json.js";

/** Error codes worth re-sending the same id for, after a pause. */
export const RETRYABLE = new Set(["unavailable", "internal"]);

/** An error reply (`code` is one of docs/protocol.md §5), or a timeout (`code: "timeout"`). */
export class ServiceError extends Error {
  constructor(code, message, id) {
    super(`${code}: ${message}`);
    this.code = code;
    this.id = id;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Client {
  /**
   * A client of the service described by `ep` (an endpoints.json object).
   * With `project`, it follows endpoints.json across supervisor restarts.
   */
  constructor(ep, { project = null } = {}) {
    this.endpoints = ep;
    this.project = project;
    this.prefix = randomBytes(8).toString("hex"); // ids unique across clients
    this.counter = 0;
    this.pending = new Map(); // id -> resolve
    this.streams = new Set();
    this.closed = false;
    this.sock = this.#dealer(ep);
    this.#readLoop(this.sock);
    this.watcher = null;
    if (project) this.#watchEndpoints();
  }

  /** Connect to the project's running service (throws if none). */
  static connect(project) {
    const ep = findEndpoints(project);
    if (!ep) throw new ServiceError("unavailable", `no service runs for ${project}`, "");
    return new Client(ep, { project });
  }

  #dealer(ep) {
    const sock = new Dealer({ linger: 0, ...curveOptions(ep) });
    sock.connect(ep.command);
    return sock;
  }

  async #readLoop(sock) {
    try {
      for await (const frames of sock) {
        let reply;
        try {
          reply = parseMessage(frames[frames.length - 1].toString("utf8"));
        } catch {
          continue; // not JSON: nothing to match it to
        }
        const resolve = this.pending.get(reply.id);
        if (resolve) {
          this.pending.delete(reply.id); // a late duplicate for an answered id is dropped
          resolve(reply);
        }
      }
    } catch (err) {
      if (!this.closed && !sock.closed) throw err;
    }
  }

  #watchEndpoints() {
    const folder = join(this.project, ".session", "run");
    try {
      this.watcher = watch(folder, { persistent: false }, () => this.followEndpoints());
      this.watcher.on("error", () => {}); // the folder is removed on a clean stop
    } catch {
      this.watcher = null; // no folder yet: followEndpoints runs after each timeout anyway
    }
  }

  /** Re-read endpoints.json; reconnect the sockets if the service moved (a restart on tcp). */
  followEndpoints() {
    if (!this.project || this.closed) return false;
    let current;
    try {
      current = findEndpoints(this.project);
    } catch {
      return false;
    }
    if (!current || current.supervisor_pid === this.endpoints.supervisor_pid) return false;
    // A new supervisor: tcp ports and CURVE keys are new, so connect afresh
    // (over ipc the path is the same and this costs nothing).
    this.endpoints = current;
    const old = this.sock;
    this.sock = this.#dealer(current);
    this.#readLoop(this.sock);
    old.close();
    for (const stream of this.streams) stream.reconnect(current);
    return true;
  }

  newId() {
    this.counter += 1;
    return `${this.prefix}-${String(this.counter).padStart(6, "0")}`;
  }

  /**
   * Send one request and resolve with its `result`.
   * No reply within `timeoutMs`: the same frame (same id) is sent again, up to
   * `attempts` times in all. `unavailable`/`internal` are retried the same way
   * after a pause; any other error rejects with a ServiceError at once.
   */
  async request(op, args = {}, { timeoutMs = 6000, attempts = 4, id = this.newId() } = {}) {
    const frame = stringifyExact({ v: PROTOCOL, id, op, args });
    if (Buffer.byteLength(frame) > 1024 * 1024) {
      throw new ServiceError("bad_request", `request is ${Buffer.byteLength(frame)} bytes; the limit is 1048576 bytes`, id);
    }
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const answered = new Promise((resolve) => this.pending.set(id, resolve));
      await this.sock.send(["", frame]);
      let timer;
      const timedOut = new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), timeoutMs);
      });
      const reply = await Promise.race([answered, timedOut]);
      clearTimeout(timer);
      if (reply === null) {
        this.followEndpoints(); // a restart on tcp moves the ports
        continue;
      }
      if (reply.ok) return reply.result;
      const { code, message } = reply.error;
      if (RETRYABLE.has(code) && attempt < attempts) {
        await sleep(500 * attempt);
        continue;
      }
      throw new ServiceError(code, message, id);
    }
    this.pending.delete(id);
    throw new ServiceError("timeout", `no reply to ${op} (${id}) after ${attempts} attempts`, id);
  }

  /**
   * A stream of every event, with seq checked per source (see EventStream).
   * `receiveHighWaterMark` 0 (the default) is unbounded, as docs §7.5 advises.
   */
  events({ receiveHighWaterMark = 0, onGap } = {}) {
    const stream = new EventStream(this.endpoints, { receiveHighWaterMark, onGap });
    this.streams.add(stream);
    return stream;
  }

  close() {
    this.closed = true;
    this.watcher?.close();
    for (const stream of this.streams) stream.close();
    this.sock.close();
    for (const resolve of this.pending.values()) resolve({ ok: false, error: { code: "closed", message: "client closed" } });
    this.pending.clear();
  }
}
