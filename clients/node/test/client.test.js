// The promise-based client: exact money, retries with the same id, gaps, endpoints.json.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, EventStream, ServiceError, formatDollars, money, parseMessage } from "../src/index.js";
import { sharedService, startService, supervisor } from "./lib/service.js";

const LOG = { operation: "scene_generation", model: "claude-sonnet-3.5", input_tokens: 12450, output_tokens: 3200 };

describe("client against a service", () => {
  let service;
  let client;
  before(async () => {
    service = await sharedService();
    client = new Client(service.ep, { project: service.project });
  });
  after(async () => {
    client?.close();
    await service?.stop();
  });

  test("money comes back as exact digit strings, counts as numbers", async () => {
    const result = await client.request("cost.log", LOG);
    assert.equal(result.operation.cost, "0.08535");
    assert.equal(result.operation.input_tokens, 12450);
    assert.equal(typeof result.totals.by_model["claude-sonnet-3.5"], "string");
  });

  test("a limit sent with money() keeps every digit", async () => {
    try {
      const budget = await client.request("cost.set_budget", { daily_limit: money("12.345678901234567890123456789") });
      assert.equal(budget.daily_limit, "12.345678901234567890123456789");
    } finally {
      await client.request("cost.set_budget", { daily_limit: 50 });
    }
  });

  test("an error reply rejects with its code", async () => {
    await assert.rejects(client.request("session.set_stage", { stage: "flying" }), (err) => err instanceof ServiceError && err.code === "invalid_args");
    await assert.rejects(client.request("weather.get"), (err) => err.code === "unknown_op");
  });

  test("a request to a frozen worker is re-sent with the same id and applied once", async () => {
    await client.request("cost.reset_session");
    const ledger = (await client.request("supervisor.status")).workers.find((w) => w.name === "cost_ledger");
    process.kill(ledger.pid, "SIGSTOP"); // the supervisor kills it after missed heartbeats
    const id = client.newId();
    const result = await client.request("cost.log", LOG, { id, timeoutMs: 300, attempts: 60 });
    assert.equal(result.operation.request_id, id);
    const totals = await client.request("cost.totals");
    assert.equal(totals.session_total, "0.08535");
  });
});

describe("events", () => {
  test("a jump in seq is reported as missed events, a fall as a restart", () => {
    const gaps = [];
    const stream = new EventStream({ events: "ipc:///nonexistent/events.sock" }, { onGap: (source, n) => gaps.push([source, n]) });
    try {
      for (const seq of [4, 5, 9, 10, 0]) stream.track({ source: "cost_ledger", seq });
      stream.track({ source: "supervisor", seq: 7 });
    } finally {
      stream.close();
    }
    assert.deepEqual(gaps, [["cost_ledger", 3], ["cost_ledger", 0]]);
    assert.equal(stream.missed, 3);
  });
});

describe("money display", () => {
  test("formatDollars rounds half-even on the exact digits", () => {
    assert.equal(formatDollars("0.125"), "$0.12");
    assert.equal(formatDollars("0.135"), "$0.14");
    assert.equal(formatDollars("0.1251"), "$0.13");
    assert.equal(formatDollars("15000000.00006"), "$15,000,000.00");
    assert.equal(formatDollars("-0.03535"), "-$0.04");
    assert.equal(formatDollars("0.00000007"), "$0.00");
  });

  test("parseMessage keeps money fields exact and nothing else as text", () => {
    const parsed = parseMessage('{"cost":0.30000000000000004,"revision":3,"by_model":{"m":1e-7},"fraction":0.9136}');
    assert.deepEqual(parsed, { cost: "0.30000000000000004", revision: 3, by_model: { m: "1e-7" }, fraction: 0.9136 });
  });
});

describe("a supervisor restart on tcp", () => {
  test("the client follows endpoints.json to the new ports", async () => {
    const own = await startService();
    await supervisor("stop", "--project", own.project);
    await supervisor("start", "--project", own.project, "--detach", "--transport", "tcp");
    const client = Client.connect(own.project);
    try {
      const first = client.endpoints;
      assert.match(first.command, /^tcp:\/\/127\.0\.0\.1:/);
      await client.request("session.get");
      await supervisor("stop", "--project", own.project);
      await supervisor("start", "--project", own.project, "--detach", "--transport", "tcp");
      const doc = await client.request("session.get", {}, { timeoutMs: 1000, attempts: 20 });
      assert.notEqual(client.endpoints.command, first.command);
      assert.equal(typeof doc.revision, "number");
    } finally {
      client.close();
      await own.stop();
    }
  });
});

await sleep(0);

describe("money fields", () => {
  test("the client's list of money fields is the one docs/protocol.md §1 gives", async () => {
    const { readFileSync } = await import("node:fs");
    const { MONEY_KEYS } = await import("../src/json.js");
    const { REPO } = await import("./lib/service.js");
    const docs = readFileSync(`${REPO}/docs/protocol.md`, "utf8");
    const snippet = /const MONEY_KEYS = new Set\(\[([^\]]*)\]\)/.exec(docs)[1];
    const documented = new Set([...snippet.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]));
    assert.deepEqual([...MONEY_KEYS].sort(), [...documented].sort());
  });
});

describe("discovery", () => {
  test("endpoints.json naming a live process that does not hold the lock is left behind by a crash", async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { findEndpoints, holdsLock } = await import("../src/index.js");
    const project = mkdtempSync(join(tmpdir(), "wf-stale-"));
    try {
      const run = join(project, ".session", "run");
      mkdirSync(run, { recursive: true });
      // Our own pid: alive to kill(pid, 0), as a reused pid would be after a crash.
      const ep = { protocol: 1, command: "ipc:///nonexistent", events: "ipc:///nonexistent", supervisor_pid: process.pid };
      writeFileSync(join(run, "endpoints.json"), JSON.stringify(ep));
      assert.equal(findEndpoints(project), null);
      writeFileSync(join(run, "supervisor.lock"), String(process.pid)); // the file, but no flock
      assert.equal(holdsLock(join(run, "supervisor.lock"), process.pid), false);
      assert.equal(findEndpoints(project), null);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  test("a running service is found, and holds its lock", async () => {
    const { findEndpoints, holdsLock, lockPath } = await import("../src/index.js");
    const service = await sharedService();
    try {
      const ep = findEndpoints(service.project);
      assert.ok(ep, "the running service's endpoints.json is found");
      assert.equal(holdsLock(lockPath(service.project), ep.supervisor_pid), true);
    } finally {
      await service.stop();
    }
  });
});
