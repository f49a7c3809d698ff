// The official Node `openai` SDK as a client of nexus-trio, driven by the system tests
// (tests/system/test_node_sdk.py).
//
// `openai` is pinned to 6.49.0 (package.json, package-lock.json): the newest release that runs on
// Debian bookworm's Node 18 (7.x needs Node >= 22).
//
// Usage: node client.mjs '<scenario JSON>'    or    node client.mjs < scenario.json
//
// A scenario is
//   {"baseURL": "http://127.0.0.1:8000/v1", "apiKey": "any", "prefix": "<dir>",
//    "calls": [{"name": "plain", "method": "chat" | "chat_stream" | "embeddings",
//               "params": {...request body...}, "maxRetries": 0, "timeoutMs": 20000}]}
// `prefix` is the directory `npm ci --prefix` installed the SDK into (node_modules live outside
// the repository); without it `openai` is imported from the usual places.
//
// Prints one JSON line per call, in order: {"name", "ok": true, ...what the SDK returned} or
// {"name", "ok": false, "error": {"class": e.constructor.name, "status", "code", "type", ...}},
// with "elapsed_ms" and "responses": every HTTP response the SDK received for the call, retries
// included, as {"status", "retry_after", "at_ms"} (ms since the call started).
// A call that fails is a result, not a failure of this script: it exits 0 unless the scenario
// itself is unusable.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HEADERS = ['x-request-id', 'x-nexus-backend', 'x-nexus-attempts', 'retry-after', 'x-should-retry'];

async function loadSdk(prefix) {
  if (!prefix) return import('openai');
  const require = createRequire(join(prefix, 'package.json'));
  // the package's CommonJS entry locates it; import its ESM entry (the "default" condition) beside
  const packageDir = dirname(require.resolve('openai'));
  return import(pathToFileURL(join(packageDir, 'index.mjs')).href);
}

function pickHeaders(headers) {
  const picked = {};
  if (!headers) return picked;
  for (const name of HEADERS) {
    const value = typeof headers.get === 'function' ? headers.get(name) : headers[name];
    if (value !== null && value !== undefined) picked[name] = value;
  }
  return picked;
}

function describeError(error) {
  return {
    class: error?.constructor?.name ?? typeof error,
    message: String(error?.message ?? error),
    status: error?.status ?? null,
    code: error?.code ?? null,
    type: error?.type ?? null,
    param: error?.param ?? null,
    request_id: error?.requestID ?? null,
    headers: pickHeaders(error?.headers),
  };
}

async function chat(client, params) {
  const { data, response } = await client.chat.completions.create(params).withResponse();
  return {
    id: data.id,
    model: data.model,
    content: data.choices[0]?.message?.content ?? null,
    finish_reason: data.choices[0]?.finish_reason ?? null,
    usage: data.usage ?? null,
    headers: pickHeaders(response.headers),
  };
}

async function chatStream(client, params, partial) {
  const { data: stream, response } = await client.chat.completions
    .create({ ...params, stream: true })
    .withResponse();
  partial.headers = pickHeaders(response.headers);
  partial.chunks = 0;
  partial.content = '';
  partial.finish_reason = null;
  partial.usage = null;
  partial.usage_chunk_choices = null;
  for await (const chunk of stream) {
    partial.chunks += 1;
    for (const choice of chunk.choices) {
      partial.content += choice.delta?.content ?? '';
      partial.finish_reason = choice.finish_reason ?? partial.finish_reason;
    }
    if (chunk.usage) {
      partial.usage = chunk.usage;
      partial.usage_chunk_choices = chunk.choices.length;
    }
  }
  return partial;
}

async function embeddings(client, params) {
  const { data, response } = await client.embeddings.create(params).withResponse();
  return {
    model: data.model,
    count: data.data.length,
    indexes: data.data.map((item) => item.index),
    vectors: data.data.map((item) => Array.from(item.embedding)),
    usage: data.usage ?? null,
    headers: pickHeaders(response.headers),
  };
}

const METHODS = { chat, chat_stream: chatStream, embeddings };

// The platform's fetch, noting each response the SDK gets (its retries are new fetches), with
// the milliseconds since started().
function recordingFetch(responses, started) {
  return async (url, init) => {
    const response = await fetch(url, init);
    responses.push({
      status: response.status,
      retry_after: response.headers.get('retry-after'),
      at_ms: Math.round(performance.now() - started()),
    });
    return response;
  };
}

async function run(sdk, scenario, call) {
  const OpenAI = sdk.default;
  const responses = [];
  let started = performance.now();
  const client = new OpenAI({
    baseURL: scenario.baseURL,
    apiKey: scenario.apiKey ?? 'unused',
    ...(call.maxRetries === undefined ? {} : { maxRetries: call.maxRetries }),
    timeout: call.timeoutMs ?? 20000,
    fetch: recordingFetch(responses, () => started),
  });
  const method = METHODS[call.method];
  if (!method) throw new Error(`unknown method ${JSON.stringify(call.method)}`);
  const partial = {};
  started = performance.now();
  let result;
  try {
    result = { ok: true, ...(await method(client, call.params, partial)) };
  } catch (error) {
    result = { ok: false, ...partial, error: describeError(error) };
  }
  const elapsed_ms = Math.round(performance.now() - started);
  return { name: call.name ?? call.method, elapsed_ms, responses, ...result };
}

async function main() {
  const text = process.argv[2] ?? readFileSync(0, 'utf8');
  const scenario = JSON.parse(text);
  const sdk = await loadSdk(scenario.prefix);
  for (const call of scenario.calls) {
    process.stdout.write(`${JSON.stringify(await run(sdk, scenario, call))}\n`);
  }
}

await main();
