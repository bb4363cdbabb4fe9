// The example that docs/protocol.md §9.1 shows runs against a live service.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { sharedService } from "./lib/service.js";

const here = dirname(fileURLToPath(import.meta.url));

test("examples/quickstart.mjs runs and prints exact money", async () => {
  const service = await sharedService();
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(here, "..", "examples", "quickstart.mjs"), service.project], { timeout: 30000 });
    assert.match(stdout, /^cost: 0\.08535 shown as \$0\.09$/m);
    assert.match(stdout, /^confirm above: 0\.1$/m);
    assert.match(stdout, /^refused: invalid_args$/m);
  } finally {
    await service.stop();
  }
});
