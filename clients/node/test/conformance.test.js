// Every conformance case, played by the Node.js runner (one test per case file).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { CaseFailed, Runner, caseNames, loadCase } from "./lib/runner.js";
import { sharedService, startService } from "./lib/service.js";

const names = caseNames();

describe("conformance cases", () => {
  let service;
  let runner;

  before(async () => {
    service = await sharedService();
    runner = new Runner(service.ep);
  });

  after(async () => {
    runner?.close();
    await service?.stop();
  });

  for (const name of names) {
    const c = loadCase(name);
    test(`${name}: ${c.about}`, async () => {
      if (c.service !== "fresh") return runner.runCase(c);
      const own = await startService({ transport: c.transport ?? null });
      const ownRunner = new Runner(own.ep, {
        restart: async () => {
          const status = await ownRunner.requestOk("supervisor.status");
          const pids = status.workers.filter((w) => w.pid !== null).map((w) => Number(w.pid.value));
          return own.crashAndRestart(pids);
        },
      });
      try {
        await ownRunner.runCase(c);
      } finally {
        ownRunner.close();
        await own.stop();
      }
    });
  }

  test("the case files exist", () => {
    assert.ok(names.length >= 80, `only ${names.length} cases found`);
    assert.ok(new CaseFailed("x") instanceof Error);
  });
});
