// Drives the official `@anthropic-ai/sdk` and `openai` npm clients, each
// streaming and not, against the base URLs given in the environment (the
// metering proxy, in front of local fakes), and prints one JSON line per
// call with the usage the SDK itself parsed, so the Go test can compare it
// with what the proxy recorded.
//
// Env: SDK_DIR (holds node_modules), ANTHROPIC_URL, OPENAI_URL.
'use strict';
const path = require('path');
const sdkRequire = require('module').createRequire(path.join(process.env.SDK_DIR, 'noop.js'));
const Anthropic = sdkRequire('@anthropic-ai/sdk').default;
const OpenAI = sdkRequire('openai').default;

const anthropic = new Anthropic({ apiKey: 'sk-ant-api03-NEVER-RECORD-THIS-KEY', baseURL: process.env.ANTHROPIC_URL, maxRetries: 0 });
const openai = new OpenAI({ apiKey: 'sk-proj-NEVER-RECORD-THIS-KEY', baseURL: process.env.OPENAI_URL, maxRetries: 0 });

const bash = { name: 'Bash', description: 'Run a command', input_schema: { type: 'object', properties: { command: { type: 'string' } } } };
const fn = { type: 'function', function: { name: 'run_tests', parameters: { type: 'object' } } };

function out(mode, usage) {
  process.stdout.write(JSON.stringify({ mode, usage }) + '\n');
}

async function main() {
  const msg = { model: 'claude-sonnet-4-5-20250929', max_tokens: 1024, tools: [bash], system: 'You are Claude Code.', messages: [{ role: 'user', content: 'fix the flaky test' }] };
  const m1 = await anthropic.messages.create(msg);
  out('anthropic.messages', m1.usage);
  const m2 = await anthropic.messages.stream(msg).finalMessage();
  out('anthropic.messages.stream', m2.usage);

  const chat = { model: 'gpt-4.1', tools: [fn], messages: [{ role: 'developer', content: 'You run tests.' }, { role: 'user', content: 'run them' }] };
  const c1 = await openai.chat.completions.create(chat);
  out('openai.chat', c1.usage);
  let c2usage = null;
  const s = await openai.chat.completions.create({ ...chat, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of s) if (chunk.usage) c2usage = chunk.usage;
  out('openai.chat.stream', c2usage);

  const resp = { model: 'gpt-4.1', instructions: 'You run tests.', input: 'run them', tools: [{ type: 'function', name: 'run_tests', parameters: { type: 'object' }, strict: false }] };
  const r1 = await openai.responses.create(resp);
  out('openai.responses', r1.usage);
  let r2usage = null;
  const rs = await openai.responses.create({ ...resp, stream: true });
  for await (const ev of rs) if (ev.type === 'response.completed') r2usage = ev.response.usage;
  out('openai.responses.stream', r2usage);
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
