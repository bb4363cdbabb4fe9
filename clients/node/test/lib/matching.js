// The case language of protocol/conformance/ (see its README.md): constructors and matchers.
// Values come from lossless-json, so every number is a LosslessNumber whose .value is its text.

import { isLosslessNumber, stringify } from "lossless-json";

export const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export function isMatcher(value) {
  return isObject(value) && Object.keys(value).length > 0 && Object.keys(value).every((k) => k.startsWith("$"));
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !isLosslessNumber(value);
}

/** Expand `$id`, `$repeat` and `$concat` in a template. */
export function build(template, ids) {
  if (isMatcher(template)) {
    if ("$id" in template) return ids(String(template.$id));
    if ("$repeat" in template) {
      const [text, count] = template.$repeat;
      return String(build(text, ids)).repeat(Number(count.value ?? count));
    }
    if ("$concat" in template) return template.$concat.map((part) => String(build(part, ids))).join("");
  }
  if (Array.isArray(template)) return template.map((item) => build(item, ids));
  if (isObject(template)) return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, build(v, ids)]));
  return template;
}

/** A decimal's text in a canonical form, so 30 and 30.0 compare equal. */
function canonical(text) {
  let [mantissa, exponent = "0"] = text.toLowerCase().split("e");
  const negative = mantissa.startsWith("-");
  mantissa = mantissa.replace(/^[-+]/, "");
  const [whole, fraction = ""] = mantissa.split(".");
  let digits = (whole + fraction).replace(/^0+/, "");
  let exp = Number(exponent) - fraction.length;
  if (!digits) return "0";
  while (digits.endsWith("0")) {
    digits = digits.slice(0, -1);
    exp += 1;
  }
  return `${negative ? "-" : ""}${digits}e${exp}`;
}

function jsonType(value) {
  if (value === null) return "null";
  if (isLosslessNumber(value)) return "number";
  if (Array.isArray(value)) return "array";
  return typeof value; // boolean, string, object
}

const TYPES = {
  null: (v) => v === null,
  boolean: (v) => typeof v === "boolean",
  string: (v) => typeof v === "string",
  integer: (v) => isLosslessNumber(v) && /^-?\d+$/.test(v.value),
  number: (v) => isLosslessNumber(v),
  array: (v) => Array.isArray(v),
  object: (v) => isObject(v),
};

export function show(value) {
  const text = typeof value === "string" ? JSON.stringify(value) : stringify(value) ?? String(value);
  return text.length <= 200 ? text : `${text.slice(0, 200)}... (${text.length} characters)`;
}

const unless = (ok, problem) => (ok ? [] : [problem]);

/** Every way `actual` fails `expected` (an empty list when it matches). */
export function mismatches(expected, actual, ctx, path = "$") {
  if (isMatcher(expected)) {
    const keys = Object.keys(expected);
    if (keys.length !== 1) return [`${path}: a matcher has exactly one key, got ${keys}`];
    const check = MATCHERS[keys[0]];
    if (!check) return [`${path}: unknown matcher ${keys[0]}`];
    return check(expected[keys[0]], actual, ctx, path);
  }
  if (isObject(expected)) return matchObject(expected, actual, ctx, path);
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      return [`${path}: expected ${expected.length} items, got ${show(actual)}`];
    }
    return expected.flatMap((item, i) => mismatches(item, actual[i], ctx, `${path}[${i}]`));
  }
  if (isLosslessNumber(expected)) {
    const ok = isLosslessNumber(actual) && canonical(expected.value) === canonical(actual.value);
    return unless(ok, `${path}: expected ${expected.value}, got ${show(actual)}`);
  }
  return unless(jsonType(expected) === jsonType(actual) && expected === actual, `${path}: expected ${show(expected)}, got ${show(actual)}`);
}

function matchObject(expected, actual, ctx, path) {
  if (!isObject(actual)) return [`${path}: expected an object, got ${show(actual)}`];
  return Object.entries(expected).flatMap(([key, value]) =>
    key in actual ? mismatches(value, actual[key], ctx, `${path}.${key}`) : [`${path}.${key}: missing`],
  );
}

const onArray = (check) => (arg, actual, ctx, path) =>
  Array.isArray(actual) ? check(arg, actual, ctx, path) : [`${path}: expected an array, got ${show(actual)}`];

const at = (pick) => (arg, actual, ctx, path) => {
  if (actual.length === 0) return [`${path}: expected a non-empty array`];
  const index = pick === "first" ? 0 : actual.length - 1;
  return mismatches(arg, actual[index], ctx, `${path}[${index}]`);
};

const constructed = (name) => (arg, actual, ctx, path) => {
  const value = build({ [name]: arg }, ctx.ids);
  return unless(value === actual, `${path}: expected ${show(value)}, got ${show(actual)}`);
};

const MATCHERS = {
  $any: () => [],
  $type: (arg, actual, ctx, path) => {
    const kinds = Array.isArray(arg) ? arg : [arg];
    return unless(kinds.some((k) => TYPES[k](actual)), `${path}: expected ${kinds}, got ${show(actual)}`);
  },
  $timestamp: (arg, actual, ctx, path) =>
    unless(typeof actual === "string" && TIMESTAMP.test(actual), `${path}: expected a timestamp like 2026-11-24T00:23:29.316371Z, got ${show(actual)}`),
  $decimal: (arg, actual, ctx, path) =>
    unless(isLosslessNumber(actual) && actual.value === String(arg), `${path}: expected the number written exactly ${arg}, got ${show(actual)}`),
  $number_text: (arg, actual, ctx, path) =>
    unless(isLosslessNumber(actual) && new RegExp(arg, "u").test(actual.value), `${path}: expected a number written to match /${arg}/, got ${show(actual)}`),
  $regex: (arg, actual, ctx, path) =>
    unless(typeof actual === "string" && new RegExp(arg, "u").test(actual), `${path}: expected text matching /${arg}/, got ${show(actual)}`),
  $contains: (arg, actual, ctx, path) =>
    unless(typeof actual === "string" && actual.includes(arg), `${path}: expected text containing ${JSON.stringify(arg)}, got ${show(actual)}`),
  $schema: (arg, actual, ctx, path) => {
    const problem = ctx.validate(arg, actual);
    return unless(problem === null, `${path}: does not match schema ${arg}: ${problem}`);
  },
  $id: constructed("$id"),
  $repeat: constructed("$repeat"),
  $concat: constructed("$concat"),
  $same_as: (arg, actual, ctx, path) => {
    const [label, ...keys] = String(arg).split(".");
    let earlier = ctx.results.has(label) ? ctx.results.get(label) : undefined;
    for (const key of keys) earlier = isObject(earlier) && key in earlier ? earlier[key] : undefined; // "a.operation.cost"
    if (earlier === undefined) return [`${path}: no earlier result ${arg}`];
    return unless(stringify(earlier) === stringify(actual), `${path}: expected the result of ${arg} (${show(earlier)}), got ${show(actual)}`);
  },
  $all: (arg, actual, ctx, path) => arg.flatMap((part) => mismatches(part, actual, ctx, path)),
  $one_of: (arg, actual, ctx, path) =>
    unless(arg.some((option) => mismatches(option, actual, ctx, path).length === 0), `${path}: matches none of ${show(arg)}: got ${show(actual)}`),
  $not: (arg, actual, ctx, path) =>
    unless(mismatches(arg, actual, ctx, path).length > 0, `${path}: must not match ${show(arg)}, got ${show(actual)}`),
  $exact: (arg, actual, ctx, path) => {
    const want = Object.keys(arg).sort();
    if (!isObject(actual) || Object.keys(actual).sort().join("\0") !== want.join("\0")) {
      return [`${path}: expected exactly the keys ${want}, got ${isObject(actual) ? Object.keys(actual).sort() : show(actual)}`];
    }
    return matchObject(arg, actual, ctx, path);
  },
  $has: (arg, actual, ctx, path) => unless(isObject(actual) && arg in actual, `${path}: expected key ${arg}`),
  $includes: onArray((arg, actual, ctx, path) =>
    unless(actual.some((item) => mismatches(arg, item, ctx, path).length === 0), `${path}: no item matches ${show(arg)}`),
  ),
  $each: onArray((arg, actual, ctx, path) => actual.flatMap((item, i) => mismatches(arg, item, ctx, `${path}[${i}]`))),
  $first: onArray(at("first")),
  $last: onArray(at("last")),
};
