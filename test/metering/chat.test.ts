// Chat counting against the openai-cookbook notebook "How to count tokens with tiktoken": its example messages and
// tool definition, whose counts OpenAI checked against the API (129 / 124 and 105 / 101 prompt tokens), and the
// notebook's formula written again here, independently, on top of the other tokenizer (gpt-tokenizer).
import { afterAll, describe, expect, it } from "vitest";
import * as gptCl100k from "gpt-tokenizer/encoding/cl100k_base";
import * as gptO200k from "gpt-tokenizer/encoding/o200k_base";
import { planChat } from "../../src/metering/chat.js";
import { MeteringInputError } from "../../src/metering/errors.js";
import { Meter } from "../../src/metering/meter.js";
import type { Encoding } from "../../src/metering/tokenizer.js";
import { cjk, emoji, english, rng } from "./texts.js";

const ORDINARY = { disallowedSpecial: new Set<string>() };
const count: Record<Encoding, (text: string) => number> = {
  o200k_base: (t) => gptO200k.countTokens(t, ORDINARY),
  cl100k_base: (t) => gptCl100k.countTokens(t, ORDINARY),
};

// --- the cookbook's num_tokens_from_messages and num_tokens_for_tools, transcribed, on gpt-tokenizer -------------

type Msg = Record<string, unknown>;

function cookbookMessages(messages: Msg[], encoding: Encoding): number {
  const tokensPerMessage = 3;
  const tokensPerName = 1;
  let n = 0;
  for (const message of messages) {
    n += tokensPerMessage;
    for (const [key, value] of Object.entries(message)) {
      // The notebook encodes every value as a string. Our documented extensions for what it cannot take:
      // content parts count each text part; tool calls count name + arguments + 3.
      if (Array.isArray(value) && key === "content") for (const p of value as { text: string }[]) n += count[encoding](p.text);
      else if (Array.isArray(value) && key === "tool_calls") {
        for (const c of value as { function: { name: string; arguments: string } }[]) {
          n += count[encoding](c.function.name) + count[encoding](c.function.arguments) + 3;
        }
      } else n += count[encoding](value as string);
      if (key === "name") n += tokensPerName;
    }
  }
  return n + 3; // every reply is primed with <|start|>assistant<|message|>
}

interface Fn {
  function: {
    name: string;
    description: string;
    parameters: { properties: Record<string, { type: string; description: string; enum?: string[] }> };
  };
}

function cookbookTools(functions: Fn[], messages: Msg[], encoding: Encoding): number {
  const [funcInit, propInit, propKey, enumInit, enumItem, funcEnd] = encoding === "o200k_base" ? [7, 3, 3, -3, 3, 12] : [10, 3, 3, -3, 3, 12];
  let n = 0;
  if (functions.length > 0) {
    for (const f of functions) {
      n += funcInit;
      let desc = f.function.description;
      if (desc.endsWith(".")) desc = desc.slice(0, -1);
      n += count[encoding](`${f.function.name}:${desc}`);
      const props = f.function.parameters.properties;
      if (Object.keys(props).length > 0) {
        n += propInit;
        for (const [key, p] of Object.entries(props)) {
          n += propKey;
          if (p.enum !== undefined) {
            n += enumInit;
            for (const item of p.enum) n += enumItem + count[encoding](item);
          }
          let pdesc = p.description;
          if (pdesc.endsWith(".")) pdesc = pdesc.slice(0, -1);
          n += count[encoding](`${key}:${p.type}:${pdesc}`);
        }
      }
    }
    n += funcEnd;
  }
  return n + cookbookMessages(messages, encoding);
}

// --- the notebook's examples ------------------------------------------------------------------------------------

const EXAMPLE_MESSAGES = [
  {
    role: "system",
    content: "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
  },
  { role: "system", name: "example_user", content: "New synergies will help drive top-line growth." },
  { role: "system", name: "example_assistant", content: "Things working well together will increase revenue." },
  {
    role: "system",
    name: "example_user",
    content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
  },
  { role: "system", name: "example_assistant", content: "Let's talk later when we're less busy about how to do better." },
  { role: "user", content: "This late pivot means we don't have time to boil the ocean for the client deliverable." },
];

const WEATHER_TOOLS: Fn[] = [
  {
    function: {
      name: "get_current_weather",
      description: "Get the current weather in a given location",
      parameters: {
        properties: {
          location: { type: "string", description: "The city and state, e.g. San Francisco, CA" },
          unit: { type: "string", description: "The unit of temperature to return", enum: ["celsius", "fahrenheit"] },
        },
      },
    },
  },
];
const WEATHER_TOOLS_AS_SENT = WEATHER_TOOLS.map((t) => ({
  type: "function",
  function: { ...t.function, parameters: { type: "object", ...t.function.parameters, required: ["location"] } },
}));
const WEATHER_MESSAGES = [
  { role: "system", content: "You are a helpful assistant that can answer to questions about the weather." },
  { role: "user", content: "What's the weather like in San Francisco?" },
];

// The API's prompt_tokens printed in the notebook: gpt-4o / gpt-4o-mini (o200k_base), gpt-4 / gpt-3.5-turbo (cl100k_base).
const PUBLISHED = {
  messages: { o200k_base: 124, cl100k_base: 129 },
  tools: { o200k_base: 101, cl100k_base: 105 },
} as const;

const meter = new Meter({ cacheEntries: 1000 });
afterAll(() => meter.close());

describe.each(["o200k_base", "cl100k_base"] as const)("%s", (encoding) => {
  it("the notebook's formula, written here on gpt-tokenizer, gives the published counts", () => {
    expect(cookbookMessages(EXAMPLE_MESSAGES, encoding)).toBe(PUBLISHED.messages[encoding]);
    expect(cookbookTools(WEATHER_TOOLS, WEATHER_MESSAGES, encoding)).toBe(PUBLISHED.tools[encoding]);
  });

  it("countChat gives the published count for the example messages, as an exact count", async () => {
    const r = await meter.countChat("input.messages", EXAMPLE_MESSAGES, undefined, { encoding });
    expect(r).toMatchObject({ tokens: PUBLISHED.messages[encoding], estimated: false, tokenizer: encoding });
  });

  it("countChat gives the published count with the weather tool, flagged as an estimate", async () => {
    const r = await meter.countChat("input.messages", WEATHER_MESSAGES, WEATHER_TOOLS_AS_SENT, { encoding });
    expect(r).toMatchObject({ tokens: PUBLISHED.tools[encoding], estimated: true });
  });

  it("countChat equals the independent formula on random chats", async () => {
    const r = rng(encoding === "o200k_base" ? 11 : 12);
    for (let round = 0; round < 5; round++) {
      const messages: Msg[] = [];
      const n = 1 + Math.floor(r() * 30);
      for (let i = 0; i < n; i++) {
        const k = r();
        const text = k < 0.5 ? english(50 + Math.floor(r() * 800), round * 100 + i) : k < 0.75 ? cjk(300, i) : emoji(200, i);
        const role = ["system", "developer", "user", "assistant", "tool"][Math.floor(r() * 5)]!;
        const m: Msg = { role, content: text };
        if (r() < 0.2) m.name = `agent_${i}`;
        if (r() < 0.15) m.content = [{ type: "text", text }, { type: "text", text: "and a second part" }];
        if (role === "assistant" && r() < 0.3) {
          m.tool_calls = [{ id: `call_${i}`, type: "function", function: { name: "lookup", arguments: `{"q":"${i}"}` } }];
        }
        if (role === "tool") m.tool_call_id = `call_${i}`;
        messages.push(m);
      }
      // the transcription counts every key it is given, so hand it what our formula counts (no tool call ids)
      const forCookbook = messages.map((m) => ({
        ...m,
        ...(m.tool_calls ? { tool_calls: (m.tool_calls as { function: unknown }[]).map((c) => ({ function: c.function })) } : {}),
      }));
      const got = await meter.countChat("input.messages", messages, undefined, { encoding });
      expect(got.tokens).toBe(cookbookMessages(forCookbook, encoding));
      expect(got.estimated).toBe(messages.some((m) => m.tool_calls !== undefined));
    }
  });
});

describe("chat validation names the field", () => {
  const spec = { encoding: "o200k_base" } as const;
  const cases: [string, unknown, unknown, string][] = [
    ["not a list", { role: "user" }, undefined, "input.messages"],
    ["unknown role", [{ role: "user", content: "hi" }, { role: "wizard", content: "x" }], undefined, "input.messages[1].role"],
    ["missing role", [{ content: "hi" }], undefined, "input.messages[0].role"],
    ["image part", [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }], undefined, "input.messages[0].content[0].type"],
    ["content number", [{ role: "user", content: 42 }], undefined, "input.messages[0].content"],
    ["name number", [{ role: "user", content: "a", name: 7 }], undefined, "input.messages[0].name"],
    ["tool call", [{ role: "assistant", tool_calls: [{ function: { arguments: "{}" } }] }], undefined, "input.messages[0].tool_calls[0].function.name"],
    ["tools not a list", [], { function: { name: "f" } }, "input.tools"],
    ["tool without name", [], [{ type: "function", function: { description: "d" } }], "input.tools[0].function.name"],
  ];
  it.each(cases)("%s", async (_name, messages, tools, field) => {
    const err = await meter.countChat("input.messages", messages, tools, spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeteringInputError);
    expect((err as MeteringInputError).field).toBe(field);
    expect((err as Error).message.startsWith(`${field}: `)).toBe(true);
  });

  it("plans without counting: an empty chat is the reply priming alone", () => {
    expect(planChat("m", [], undefined, "o200k_base")).toEqual({ overhead: 3, roles: [], texts: [], approximate: false });
  });
});
