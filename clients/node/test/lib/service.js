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

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/**
 * Start a service in a new temporary project; `config` is `{section: {key: value}}`,
 * `transport` is "ipc" or "tcp" (the default is the service's).
 */
export async function startService({ config = null, transport = null } = {}) {
  const root = mkdtempSync(join(tmpdir(), "wf-node-"));
  const project = join(root, "project");
  const extra = transport ? ["--transport", transport] : [];
  if (config) {
    writeFileSync(join(root, "config.toml"), toml(config));
    extra.push("--config", join(root, "config.toml"));
  }
  const start = async () => {
    await supervisor("start", "--project", project, "--detach", ...extra);
    const ep = findEndpoints(project);
    if (!ep) throw new Error(`service in ${project} did not leave endpoints.json`);
    return ep;
  };
  const service = {
    project,
    ep: await start(),
    started: true,
    /** SIGKILL the supervisor and every worker (a crash), then start again; the new endpoints. */
    async crashAndRestart(workerPids) {
      const pids = [service.ep.supervisor_pid, ...workerPids];
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      const deadline = Date.now() + 10000;
      while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      service.ep = await start();
      return service.ep;
    },
    async stop() {
      await supervisor("stop", "--project", project).catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
  return service;
}

/** The service under test: WF_PROJECT's (left running), or a new one. */
export async function sharedService() {
  const named = process.env.WF_PROJECT;
  if (!named) return startService();
  const ep = findEndpoints(named);
  if (!ep) throw new Error(`WF_PROJECT=${named}: no service is running there (no live endpoints.json)`);
  return { project: named, ep, started: false, async stop() {} };
}
