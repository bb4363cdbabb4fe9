// The mirrored view converges to the service's state even when events are lost.

import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, Mirror } from "../src/index.js";
import { startService } from "./lib/service.js";

const BURST = 10000;
const CHEAP = { operation: "burst", model: "gemini-flash", input_tokens: 3, output_tokens: 1 };

function workerEntries(status) {
  return status.workers.map(({ name, pid, state, restarts, last_exit }) => ({ name, pid, state, restarts, last_exit }));
}

async function serviceState(client) {
  return {
    session: await client.request("session.get"),
    costs: await client.request("cost.totals"),
    workers: workerEntries(await client.request("supervisor.status")),
  };
}

test("10,000 events pass a subscriber with a tiny queue: it sees gaps and still ends equal", async () => {
  // Its own service, whatever WF_PROJECT says: the event socket's queue must be tiny too.
  // Generous heartbeats: the test is about the view; the burst must not get workers killed on a busy machine.
  const service = await startService({ config: { protocol: { event_hwm: 20 }, supervisor: { heartbeat_liveness: 6 } } });
  const client = new Client(service.ep);
  let open = true;
  let release;
  let gate = Promise.resolve();
  const mirror = new Mirror(client, {
    receiveHighWaterMark: 1,
    onEvent: () => (open ? undefined : gate), // reads nothing while the burst passes
  });
  try {
    await mirror.start();
    open = false;
    gate = new Promise((resolve) => (release = resolve));
    for (let start = 0; start < BURST; start += 500) {
      await Promise.all(Array.from({ length: 500 }, () => client.request("cost.log", CHEAP)));
      await client.request("session.set_stage", { stage: (start / 500) % 2 ? "enhancing" : "writing" });
    }
    open = true;
    release();
    // The next event from each source reveals what was lost before it.
    await client.request("cost.log", CHEAP);
    await client.request("session.set_stage", { stage: "scoring" });
    const deadline = Date.now() + 20000;
    let state;
    for (;;) {
      state = await serviceState(client);
      if (JSON.stringify(mirror.view) === JSON.stringify(state) || Date.now() > deadline) break;
      await sleep(50);
    }
    assert.ok(mirror.gaps > 0, "the burst was meant to overflow the queues");
    assert.deepEqual(mirror.view, state);
    assert.equal(state.session.current_state.stage, "scoring");
  } finally {
    mirror.close();
    client.close();
    await service.stop();
  }
});
