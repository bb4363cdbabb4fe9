// The Node.js conformance runner: plays protocol/conformance/cases/*.json against a live service.
// It uses the zeromq package directly (not src/), so it sees the service as any client does.

import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Ajv2020 from "ajv/dist/2020.js";
import { isLosslessNumber, parse, stringify } from "lossless-json";
import { Dealer, Subscriber } from "zeromq";
import { curveOptions } from "../../src/discovery.js";
import { REPO } from "./service.js";
import { build, mismatches, show } from "./matching.js";

export const CASES_DIR = join(REPO, "protocol", "conformance", "cases");
const SCHEMAS_DIR = join(REPO, "protocol", "schemas");
const REPLY_TIMEOUT_MS = 15000;
const EVENT_TIMEOUT_MS = 5000;
const WORKER_TIMEOUT_MS = 20000;

export class CaseFailed extends Error {}

export function caseNames() {
  return readdirSync(CASES_DIR).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();
}

export function loadCase(name) {
  return parse(readFileSync(join(CASES_DIR, `${name}.json`), "utf8"));
}

const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: false });
const validators = new Map();

/** Plain JS numbers for the schema validator (lossless values are kept for matching). */
function plain(value) {
  if (isLosslessNumber(value)) return Number(value.value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

export function schemaProblem(name, value) {
  if (!validators.has(name)) {
    validators.set(name, ajv.compile(JSON.parse(readFileSync(join(SCHEMAS_DIR, `${name}.schema.json`), "utf8"))));
  }
  const validate = validators.get(name);
  return validate(plain(value)) ? null : ajv.errorsText(validate.errors);
}

export class Runner {
  /** `restart()`, if given, kills the whole service tree with SIGKILL, starts it again and resolves with the new endpoints. */
  constructor(ep, { restart = null } = {}) {
    this.run = randomBytes(4).toString("hex");
    this.restart = restart;
    this.events = [];
    this.seqProblems = [];
    this.lastSeq = new Map();
    this.joined = false;
    this.dealer = null;
    this.parked = new Map();
    this.replyWaiters = [];
    this.connect(ep);
  }

  connect(ep) {
    this.ep = ep;
    this.sub = new Subscriber({ linger: 0, receiveHighWaterMark: 0, ...curveOptions(ep) });
    this.sub.connect(ep.events);
    this.sub.subscribe();
    this.readEvents(this.sub);
  }

  async readEvents(sub) {
    try {
      for await (const [topic, body] of sub) {
        if (sub !== this.sub) break; // replaced after a restart
        const event = parse(body.toString("utf8"));
        if (event.topic !== topic.toString("utf8")) this.seqProblems.push(`topic frame ${topic} differs from ${event.topic}`);
        const seq = Number(event.seq.value);
        const last = this.lastSeq.get(event.source);
        if (last !== undefined && seq !== last + 1) this.seqProblems.push(`${event.source}: seq ${seq} after ${last}`);
        this.lastSeq.set(event.source, seq);
        this.events.push(event);
      }
    } catch {
      // closed
    }
  }

  newDealer() {
    this.dealer?.close();
    this.dealer = new Dealer({ linger: 0, ...curveOptions(this.ep) });
    this.dealer.connect(this.ep.command);
    this.parked = new Map();
    const dealer = this.dealer;
    (async () => {
      try {
        for await (const frames of dealer) {
          if (frames.length !== 2 || frames[0].length !== 0) {
            this.parked.set("\0bad", { frames: frames.length });
          } else {
            const reply = parse(frames[1].toString("utf8"));
            this.parked.set(String(reply.id), reply);
          }
          for (const wake of this.replyWaiters.splice(0)) wake();
        }
      } catch {
        // closed
      }
    })();
  }

  close() {
    this.sub.close();
    this.dealer?.close();
  }

  async reply(wanted) {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    for (;;) {
      if (this.parked.has("\0bad")) throw new CaseFailed("a reply must be an empty frame then one JSON frame");
      for (const id of this.parked.keys()) {
        if (wanted === null || id === wanted || id === "") {
          const reply = this.parked.get(id);
          this.parked.delete(id);
          return reply;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new CaseFailed(`no reply to ${wanted} within ${REPLY_TIMEOUT_MS} ms`);
      await Promise.race([new Promise((wake) => this.replyWaiters.push(wake)), sleep(Math.min(left, 100))]);
    }
  }

  async requestOk(op, args = {}) {
    const id = `cf-${this.run}-${randomBytes(6).toString("hex")}`;
    await this.dealer.send(["", stringify({ v: 1, id, op, args })]);
    const reply = await this.reply(id);
    if (reply.ok !== true) throw new CaseFailed(`${op} ${stringify(args)} failed: ${stringify(reply.error)}`);
    return reply.result;
  }

  async worker(name) {
    const status = await this.requestOk("supervisor.status");
    return status.workers.find((w) => w.name === name);
  }

  async join() {
    const deadline = Date.now() + 10000;
    while (!this.joined) {
      const mark = this.events.length;
      const screen = (await this.requestOk("session.get")).current_state.screen;
      await this.requestOk("session.set_screen", { screen });
      await this.requestOk("session.save");
      const until = Date.now() + 200;
      while (Date.now() < until && !this.joined) {
        this.joined = this.events.slice(mark).some((e) => e.topic === "session.saved");
        await sleep(10);
      }
      if (Date.now() > deadline) throw new CaseFailed("no event reached the runner's SUB socket within 10 s");
    }
  }

  async runCase(c) {
    if (!this.dealer) this.newDealer();
    await this.join();
    this.newDealer();
    const prefix = `cf-${this.run}-${c.name}-${randomBytes(3).toString("hex")}`;
    const state = { ids: (label) => `${prefix}-${label}`, results: new Map(), killed: new Set(), validate: schemaProblem };
    try {
      for (const [i, setup] of (c.setup ?? []).entries()) {
        try {
          await this.requestOk(setup.op, setup.args ?? {});
        } catch (err) {
          throw new CaseFailed(`${c.name}: setup ${i + 1}: ${err.message}`);
        }
      }
      for (const [i, step] of c.steps.entries()) {
        try {
          await this.step(step, i + 1, state);
        } catch (err) {
          throw new CaseFailed(`${c.name}: step ${i + 1}: ${err.message}`);
        }
      }
      await sleep(0);
      if (this.seqProblems.length) {
        const problems = this.seqProblems.splice(0);
        throw new CaseFailed(`${c.name}: seq did not rise by one: ${problems}`);
      }
    } finally {
      for (const teardown of c.teardown ?? []) {
        await this.requestOk(teardown.op, teardown.args ?? {}).catch(() => {});
      }
    }
  }

  async step(step, number, state) {
    const mark = this.events.length;
    let label = String(step.id ?? `step${number}`);
    if ("action" in step) {
      await this.action(step, state);
    } else if (step.unauthenticated) {
      await this.unanswered(step, label, state);
    } else if ("await" in step) {
      label = String(step.await);
      await this.checkReply(step, label, state);
    } else {
      await this.dealer.send(["", ...this.frames(step, label, state)]);
      if (!step.no_wait) await this.checkReply(step, label, state);
    }
    await this.awaitEvents(step.events ?? [], mark, state);
  }

  frames(step, label, state) {
    return (step.frames ?? [step]).map((part) => {
      if ("request" in part) {
        const { op, args = {} } = part.request;
        return stringify(build({ v: 1, id: state.ids(label), op, args }, state.ids));
      }
      if ("frame" in part) return stringify(build(part.frame, state.ids));
      if ("frame_text" in part) return Buffer.from(part.frame_text, "utf8");
      if ("frame_text_template" in part) return Buffer.from(part.frame_text_template.replaceAll("$ID", state.ids(label)), "utf8");
      if ("frame_base64" in part) return Buffer.from(part.frame_base64, "base64");
      throw new CaseFailed(`a step needs request, frame, frame_text or frame_base64: ${Object.keys(part)}`);
    });
  }

  async checkReply(step, label, state) {
    const { id: expectedId = { $id: label }, ...expect } = step.expect ?? { ok: true };
    let wanted = null;
    if (typeof expectedId === "string") wanted = expectedId;
    else if (Object.keys(expectedId).length === 1 && "$id" in expectedId) wanted = state.ids(String(expectedId.$id));
    const reply = await this.reply(wanted);
    // The first reply under a label is the one `$same_as` means (this one, if it is the first).
    if ("result" in reply && !state.results.has(label)) state.results.set(label, reply.result);
    const problems = mismatches({ v: parse("1"), id: expectedId, ...expect }, reply, state);
    if (problems.length) throw new CaseFailed(`${problems.join("; ")}\n  reply: ${show(reply).slice(0, 600)}`);
  }

  async awaitEvents(wanted, mark, state) {
    let position = mark;
    for (const expected of wanted) {
      const deadline = Date.now() + EVENT_TIMEOUT_MS;
      for (;;) {
        const found = this.events.findIndex((e, i) => i >= position && mismatches(expected, e, state).length === 0);
        if (found >= 0) {
          position = found + 1;
          break;
        }
        if (Date.now() > deadline) {
          const seen = this.events.slice(mark).map((e) => `${e.topic}#${e.seq.value}`);
          throw new CaseFailed(`no event matching ${stringify(expected)}; saw ${seen}`);
        }
        await sleep(20);
      }
    }
  }

  /** Send without the CURVE keys: no reply may come within `no_reply_within_ms`. */
  async unanswered(step, label, state) {
    const sock = new Dealer({ linger: 0 });
    sock.connect(this.ep.command);
    try {
      await sock.send(["", ...this.frames(step, label, state)]);
      const wait = Number(step.no_reply_within_ms?.value ?? step.no_reply_within_ms ?? 1000);
      const reply = await Promise.race([sock.receive(), sleep(wait).then(() => null)]);
      if (reply !== null) throw new CaseFailed(`a client without the CURVE keys got a reply: ${reply[reply.length - 1].toString("utf8").slice(0, 200)}`);
    } finally {
      sock.close();
    }
  }

  async crashAndRestart() {
    if (!this.restart) throw new CaseFailed("this case needs a runner that can restart the service");
    this.sub.close(); // first: over ipc the old socket would reconnect to the new service
    const ep = await this.restart();
    this.lastSeq = new Map();
    this.joined = false;
    this.connect(ep);
    this.newDealer();
    await this.join();
  }

  async action(step, state) {
    if (step.action === "crash_and_restart") return this.crashAndRestart();
    const { action, worker: name } = step;
    if (action === "kill_worker" || action === "stop_worker") {
      const entry = await this.worker(name);
      if (!entry.pid) throw new CaseFailed(`${name} has no pid to signal`);
      const pid = Number(entry.pid.value);
      process.kill(pid, action === "kill_worker" ? "SIGKILL" : "SIGSTOP");
      if (action === "kill_worker") state.killed.add(pid);
      return;
    }
    const wantedState = action === "wait_running" ? "running" : step.state;
    if ((action !== "wait_running" && action !== "wait_state") || !wantedState) throw new CaseFailed(`unknown action ${action}`);
    const deadline = Date.now() + WORKER_TIMEOUT_MS;
    for (;;) {
      const entry = await this.worker(name);
      const pid = entry.pid === null ? null : Number(entry.pid.value);
      if (entry.state === wantedState && (wantedState !== "running" || (pid && !state.killed.has(pid)))) return;
      if (Date.now() > deadline) throw new CaseFailed(`${name} not ${wantedState} after ${WORKER_TIMEOUT_MS} ms: ${stringify(entry)}`);
      await sleep(20);
    }
  }
}
