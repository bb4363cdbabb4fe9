// The service the tests run against: the project named by WF_PROJECT, or one
// started here in a temporary project (`python -m supervisor start --detach`)
// and stopped at the end. The python is WF_PYTHON, else `python` on PATH.

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { findEndpoints } from "../../src/discovery.js";

const run = promisify(execFile);

/** The repository root (clients/node/../..). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");

export const PYTHON = process.env.WF_PYTHON || "python";

function pythonEnv() {
  const path = process.env.PYTHONPATH ? `${REPO}${delimiter}${process.env.PYTHONPATH}` : REPO;
  return { ...process.env, PYTHONPATH: path };
}

/** Run `python -m supervisor <args>`; resolves with its output, rejects on a non-zero exit. */
export function supervisor(...args) {
  return run(PYTHON, ["-m", "supervisor", ...args], { env: pythonEnv(), cwd: REPO, timeout: 60000 });
}

/** Run `python -m <module> <args>` as a child process (for the tamper proxy). */
export { pythonEnv };

function toml(sections) {
  return Object.entries(sections)
    .map(([name, values]) => `[${name}]\n${Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join("\n")}\n`)
    .join("\n");
}

/** Start a service in a new temporary project; `config` is `{section: {key: value}}`. */
export async function startService({ config = null } = {}) {
  const root = mkdtempSync(join(tmpdir(), "wf-node-"));
  const project = join(root, "project");
  const extra = [];
  if (config) {
    writeFileSync(join(root, "config.toml"), toml(config));
    extra.push("--config", join(root, "config.toml"));
  }
  await supervisor("start", "--project", project, "--detach", ...extra);
  const ep = findEndpoints(project);
  if (!ep) throw new Error(`service in ${project} did not leave endpoints.json`);
  return {
    project,
    ep,
    started: true,
    async stop() {
      await supervisor("stop", "--project", project).catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** The service under test: WF_PROJECT's (left running), or a new one. */
export async function sharedService() {
  const named = process.env.WF_PROJECT;
  if (!named) return startService();
  const ep = findEndpoints(named);
  if (!ep) throw new Error(`WF_PROJECT=${named}: no service is running there (no live endpoints.json)`);
  return { project: named, ep, started: false, async stop() {} };
}
