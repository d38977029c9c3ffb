// AI SDK with docs/clients.md's providers: Responses (its default, store left at
// true: later turns send item references), chat and anthropic. Each: plain,
// streamed, multi-turn, tool loop (also streamed), structured output.
import { generateText, streamText, generateObject, tool, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";
import { z } from "zod";

globalThis.AI_SDK_LOG_WARNINGS = false;
const url = process.env.CLAUDEPROXY_URL;
const FAKE = "Hello from the fake upstream.";
const openai = createOpenAI({ baseURL: url + "/v1", apiKey: "unused" });
const anthropic = createAnthropic({ baseURL: url + "/v1", apiKey: "unused" });
const weather = tool({ description: "Weather in a city", inputSchema: z.object({ city: z.string() }), execute: async () => "sunny" });
const failed = [];
const check = (name, ok, detail) => {
  console.log("   " + name.padEnd(28) + (ok ? "ok" : "FAILED " + String(detail ?? "").slice(0, 600)));
  if (!ok) failed.push(name);
};
const run = async (name, fn) => { try { await fn(); } catch (e) { check(name, false, e?.message + " " + JSON.stringify(e?.responseBody ?? "")); } };
for (const [name, model] of [["responses", openai("claude-sonnet-4")], ["chat", openai.chat("claude-sonnet-4")], ["anthropic", anthropic("claude-sonnet-4")]]) {
  await run(name + " plain", async () => {
    const r = await generateText({ model, prompt: "hi" });
    check(name + " plain", r.text === FAKE, r.text);
  });
  await run(name + " stream", async () => {
    let s = ""; for await (const t of streamText({ model, prompt: "hi", onError: ({ error }) => { throw error; } }).textStream) s += t;
    check(name + " stream", s === FAKE, s);
  });
  await run(name + " multi-turn", async () => {
    const r = await generateText({ model, prompt: "hi" });
    const msgs = [{ role: "user", content: "hi" }, ...r.response.messages, { role: "user", content: "again" }];
    const two = await generateText({ model, messages: msgs });
    const three = await generateText({ model, messages: [...msgs, ...two.response.messages, { role: "user", content: "once more" }] });
    check(name + " multi-turn", two.text === FAKE && three.text === FAKE, three.text);
  });
  await run(name + " tool-loop", async () => {
    const loop = await generateText({ model, prompt: "Use the tool for Bern.", tools: { get_weather: weather }, stopWhen: stepCountIs(3) });
    check(name + " tool-loop", loop.steps.length === 2 && loop.text === FAKE, JSON.stringify(loop.steps.map((s) => s.finishReason)));
  });
  await run(name + " tool-loop stream", async () => {
    const s = streamText({ model, prompt: "Use the tool for Bern.", tools: { get_weather: weather }, stopWhen: stepCountIs(3), onError: ({ error }) => { throw error; } });
    let text = ""; for await (const t of s.textStream) text += t;
    check(name + " tool-loop stream", (await s.steps).length === 2 && text === FAKE, text);
  });
  await run(name + " structured", async () => {
    const { object } = await generateObject({ model, schema: z.object({ name: z.string(), population: z.number() }), prompt: "A city?" });
    check(name + " structured", typeof object.name === "string", JSON.stringify(object));
  });
}
if (failed.length) { console.log("   failed: " + failed.join(", ")); process.exit(1); }
