// Exact JSON: every number keeps the digits it was written with.
//
// The service writes money as JSON numbers with their exact decimal digits
// (0.00000007, 12.345678901234567890123456789). JSON.parse would turn them
// into doubles, so this client parses with lossless-json and then converts:
// numbers in money fields become *strings of their exact digits*, every other
// number becomes a JS number (counts, revisions, pids: all safe integers).

import { isLosslessNumber, LosslessNumber, parse, stringify } from "lossless-json";

/** Keys whose number values are money (US dollars), as listed in docs/protocol.md §1. */
export const MONEY_KEYS = new Set([
  "cost",
  "session_total",
  "daily_total",
  "weekly_total",
  "monthly_total",
  "total",
  "total_cost",
  "daily_limit",
  "weekly_limit",
  "monthly_limit",
  "daily_hard_limit",
  "weekly_hard_limit",
  "monthly_hard_limit",
  "spent",
  "limit",
  "remaining",
  "monthly_projection",
  "confirm_above",
]);

/** Objects whose every value is money (`by_model: {model: dollars}`, `by_operation`). */
export const MONEY_MAPS = new Set(["by_model", "by_operation"]);

/** Parse JSON text keeping every number as a LosslessNumber (its `.value` is the text). */
export function parseLossless(text) {
  return parse(text);
}

/** Serialise, writing each LosslessNumber with its exact text (compact, like the service). */
export function stringifyExact(value) {
  return stringify(value);
}

/**
 * Parse a service message: money as exact digit strings, other numbers as numbers.
 *
 * `{"cost":0.08535,"input_tokens":12450}` -> `{cost: "0.08535", input_tokens: 12450}`.
 */
export function parseMessage(text) {
  return toFriendly(parse(text), null, false);
}

function toFriendly(value, key, inMoneyMap) {
  if (isLosslessNumber(value)) {
    return MONEY_KEYS.has(key) || inMoneyMap ? value.value : Number(value.value);
  }
  if (Array.isArray(value)) return value.map((item) => toFriendly(item, key, false));
  if (value !== null && typeof value === "object") {
    const out = {};
    // Inside a money map (`by_model`), every value is money whatever its key.
    for (const [k, v] of Object.entries(value)) out[k] = inMoneyMap ? toFriendly(v, null, true) : toFriendly(v, k, MONEY_MAPS.has(k));
    return out;
  }
  return value;
}

/** A money value to send: `money("12.5")` is written as the JSON number 12.5, digit for digit. */
export function money(digits) {
  const text = String(digits);
  if (!/^-?\d+(\.\d+)?$/.test(text)) throw new TypeError(`not a decimal number: ${text}`);
  return new LosslessNumber(text);
}

/**
 * Display text for dollars, rounded half-even to `places` like the service's
 * own messages ("$0.09"). Works on the exact digit string, never on a double.
 */
export function formatDollars(digits, places = 2) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(digits));
  if (!match) throw new TypeError(`not a decimal number: ${digits}`);
  const [, sign, whole, fraction = ""] = match;
  const scaled = BigInt(whole + fraction.padEnd(places, "0").slice(0, places));
  const rest = fraction.slice(places);
  let rounded = scaled;
  if (rest !== "" && /[1-9]/.test(rest)) {
    const half = "5" + "0".repeat(rest.length - 1);
    const above = rest > half;
    const tie = rest === half;
    if (above || (tie && scaled % 2n === 1n)) rounded += 1n;
  }
  const text = rounded.toString().padStart(places + 1, "0");
  const body = places > 0 ? `${text.slice(0, -places)}.${text.slice(-places)}` : text;
  const grouped = body.replace(/^(\d+)/, (w) => w.replace(/\B(?=(\d{3})+(?!\d))/g, ","));
  return `${sign && rounded !== 0n ? "-" : ""}$${grouped}`;
}
