// AI SDK (Responses provider, store left at its default true: item references;
// the chat and anthropic providers): plain, stream, multi-turn, tool loop.
import { generateText, streamText, tool, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";
import { z } from "zod";

const url = process.env.CLAUDEPROXY_URL;
const openai = createOpenAI({ baseURL: url + "/v1", apiKey: "x" });
const anthropic = createAnthropic({ baseURL: url + "/v1", apiKey: "x" });
const weather = tool({ description: "Weather", inputSchema: z.object({ city: z.string() }), execute: async () => "sunny" });
const fail = (m) => { console.log("   FAILED " + m); process.exit(1); };
for (const [name, model] of [["responses", openai("claude-sonnet-4")], ["chat", openai.chat("claude-sonnet-4")], ["anthropic", anthropic("claude-sonnet-4")]]) {
  const r = await generateText({ model, prompt: "hi" });
  if (!r.text) fail(name + " plain");
  let s = ""; for await (const t of streamText({ model, prompt: "hi" }).textStream) s += t;
  if (!s) fail(name + " stream");
  const two = await generateText({ model, messages: [{ role: "user", content: "hi" }, ...r.response.messages, { role: "user", content: "again" }] });
  if (!two.text) fail(name + " multi-turn");
  const loop = await generateText({ model, prompt: "Use the tool for Bern.", tools: { get_weather: weather }, stopWhen: stepCountIs(3) });
  if (loop.steps.length < 2) fail(name + " tool-loop");
  console.log("   " + name + " ok");
}
