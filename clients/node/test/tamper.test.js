// Done-when: a reply with one wrong field makes the runner fail.
// A proxy (protocol/conformance/tamper.py) forwards requests to the real
// service and changes one field of each reply; the runner must notice.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { findEndpoints } from "../src/discovery.js";
import { CaseFailed, Runner, loadCase } from "./lib/runner.js";
import { PYTHON, REPO, pythonEnv, sharedService } from "./lib/service.js";

async function startTamper(project, field, value) {
  const fake = mkdtempSync(join(tmpdir(), "wf-tamper-"));
  const child = spawn(
    PYTHON,
    ["-m", "protocol.conformance.tamper", "--project", project, "--fake-project", fake, "--field", field, "--value", value],
    { env: pythonEnv(), cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) if (line.startsWith("ready ")) break;
  return {
    ep: findEndpoints(fake),
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      rmSync(fake, { recursive: true, force: true });
    },
  };
}

describe("a deliberately wrong reply", () => {
  let service;
  before(async () => {
    service = await sharedService();
  });
  after(async () => {
    await service?.stop();
  });

  const cases = [
    ["op.session.set_stage", "result.current_state.stage", '"scoring"', /stage/],
    ["op.cost.log", "result.operation.cost", "0.08536", /cost/],
    ["error.bad_request.version_2", "error.code", '"invalid_args"', /code/],
  ];
  for (const [name, field, value, mentions] of cases) {
    test(`fails ${name} when ${field} is changed`, async () => {
      const proxy = await startTamper(service.project, field, value);
      const runner = new Runner(proxy.ep);
      try {
        await assert.rejects(runner.runCase(loadCase(name)), (err) => err instanceof CaseFailed && mentions.test(err.message));
      } finally {
        runner.close();
        await proxy.stop();
      }
    });
  }

  test("passes the same case without the proxy", async () => {
    const runner = new Runner(service.ep);
    try {
      await runner.runCase(loadCase("op.session.set_stage"));
    } finally {
      runner.close();
    }
  });
});
