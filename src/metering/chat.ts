// Chat Completions requests as OpenAI counts them.
//
// Messages follow the openai-cookbook notebook "How to count tokens with tiktoken" (num_tokens_from_messages), which
// OpenAI checked against the API's prompt_tokens for gpt-3.5-turbo-0613 and later, gpt-4, gpt-4o and gpt-4o-mini:
//   every message costs 3 tokens (<|start|>{role/name}\n{content}<|end|>\n) plus the tokens of each of its values
//   (role, content, name, ...), a name costs 1 more, and every reply is primed with 3 (<|start|>assistant<|message|>).
// The same formula is used for the newer families on the same encodings (gpt-4.1, o-series, gpt-5).
//
// Tool (function) definitions: OpenAI does NOT document how it renders them into the prompt, so their count is an
// approximation and makes the whole count `approximate`. We use the widely used one from the same notebook
// (num_tokens_for_tools): per function 7 tokens (o200k_base models) or 10 (cl100k_base models) plus the tokens of
// "name:description"; when it has properties 3, then per property 3 plus the tokens of "name:type:description"
// (a trailing "." of a description dropped), and per enum list -3 then per item 3 plus its tokens; and 12 once at
// the end. It reproduces the notebook's API-checked example (101 tokens on gpt-4o, 105 on gpt-4) but ignores nested
// object schemas, which therefore count less than the API will.
//
// Assistant tool calls in the history are also undocumented: each counts the tokens of its function name and of
// its arguments plus 3 (the approximation of the openai-chat-tokens / gpt-tokenizer libraries), and makes the count
// approximate. Content given as an array of parts counts each text part's tokens; any other part (an image, audio)
// is refused, since it cannot be counted as text.
//
// This module only validates and plans: it lists every string whose tokens are needed, and the constant overhead.
// The Meter counts the strings (cached per string, so an unchanged chat history costs only its new messages).
import { MeteringInputError } from "./errors.js";
import { countTokens, type Encoding } from "./tokenizer.js";

export interface ChatTextPart {
  readonly type: "text";
  readonly text: string;
}

export interface ChatToolCall {
  readonly id?: string;
  readonly type?: "function";
  readonly function: { readonly name: string; readonly arguments?: string };
}

export interface ChatMessage {
  /** system, developer, user, assistant, tool or function */
  readonly role: string;
  readonly content?: string | readonly ChatTextPart[] | null;
  readonly name?: string;
  readonly tool_calls?: readonly ChatToolCall[];
  /** on a tool message: counted like any other value of the message, as the cookbook's loop does */
  readonly tool_call_id?: string;
}

export interface ToolParameterProperty {
  readonly type?: string | readonly string[];
  readonly description?: string;
  readonly enum?: readonly (string | number | boolean | null)[];
  readonly [key: string]: unknown;
}

export interface ToolDefinition {
  readonly type?: "function";
  readonly function: {
    readonly name: string;
    readonly description?: string;
    readonly parameters?: {
      readonly type?: string;
      readonly properties?: Readonly<Record<string, ToolParameterProperty>>;
      readonly [key: string]: unknown;
    };
  };
}

export const TOKENS_PER_MESSAGE = 3;
export const TOKENS_PER_NAME = 1;
export const REPLY_PRIMING_TOKENS = 3;
export const TOKENS_PER_TOOL_CALL = 3;

/** num_tokens_for_tools' constants: gpt-4o/gpt-4o-mini (o200k_base) and gpt-4/gpt-3.5-turbo (cl100k_base). */
export const TOOL_TOKENS: Readonly<
  Record<Encoding, { funcInit: number; propInit: number; propKey: number; enumInit: number; enumItem: number; funcEnd: number }>
> = {
  o200k_base: { funcInit: 7, propInit: 3, propKey: 3, enumInit: -3, enumItem: 3, funcEnd: 12 },
  cl100k_base: { funcInit: 10, propInit: 3, propKey: 3, enumInit: -3, enumItem: 3, funcEnd: 12 },
};

export const ROLES: readonly string[] = ["system", "developer", "user", "assistant", "tool", "function"];

const roleTokenCache = new Map<Encoding, Map<string, number>>();

/**
 * Tokens of the roles of a plan. Roles are a closed set (ROLES), not customer text, so each role's tokens are
 * computed once per encoding and kept.
 */
export function roleTokens(plan: ChatPlan, encoding: Encoding): number {
  let byRole = roleTokenCache.get(encoding);
  if (byRole === undefined) roleTokenCache.set(encoding, (byRole = new Map()));
  let total = 0;
  for (const role of plan.roles) {
    let t = byRole.get(role);
    if (t === undefined) {
      t = countTokens(role, encoding);
      byRole.set(role, t);
    }
    total += t;
  }
  return total;
}

export interface ChatPlan {
  /** tokens that depend on no string: per message, per name, reply priming, tool-format constants (not roles) */
  readonly overhead: number;
  /** the role of every message, in order (see roleTokens) */
  readonly roles: string[];
  /**
   * every string whose tokens count (may repeat; empty strings are left out): the tool definitions' lines first, then
   * each message's content, name, tool_call_id and tool calls in order, so that a conversation's next turn starts
   * with the same strings (the Meter finds its history by that prefix)
   */
  readonly texts: string[];
  /** tool definitions or tool calls were present: the count follows an undocumented approximation */
  readonly approximate: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * value as a string (undefined when optional and absent or null). The field's name is the string given, or, for
 * the loop over every message of every chat, field(sub): built only for an error.
 */
function str(
  value: unknown,
  field: string | ((sub: string) => string),
  optional: boolean,
  sub = "",
): string | undefined {
  if (typeof value === "string") return value;
  if (optional && (value === undefined || value === null)) return undefined;
  const name = typeof field === "string" ? field : field(sub);
  throw new MeteringInputError(name, value === undefined ? "is required" : "must be a string");
}

function dropFinalPeriod(s: string): string {
  return s.endsWith(".") ? s.slice(0, -1) : s;
}

/**
 * Validates a chat (messages and optional tools) and lists what must be counted, without counting anything.
 * Errors name the field: `${field}[2].role`, `${toolsField}[0].function.name`.
 */
export function planChat(
  field: string,
  messages: unknown,
  tools: unknown,
  encoding: Encoding,
  toolsField: string = defaultToolsField(field),
): ChatPlan {
  if (!Array.isArray(messages)) throw new MeteringInputError(field, "must be a list of messages");
  let texts: string[] = [];
  const roles: string[] = [];
  const add = (s: string | undefined) => {
    if (s !== undefined && s.length > 0) texts.push(s);
  };
  let overhead = 0;
  let approximate = false;

  for (let i = 0; i < messages.length; i++) {
    // The field's name is built only for an error: this loop runs for every message of every chat.
    const at = (sub = "") => `${field}[${i}]${sub}`;
    const m: unknown = messages[i];
    if (!isObject(m)) throw new MeteringInputError(at(), "must be a message object");
    const role = str(m.role, at, false, ".role")!;
    if (!ROLES.includes(role)) throw new MeteringInputError(at(".role"), `must be one of ${ROLES.join(", ")}`);
    overhead += TOKENS_PER_MESSAGE;
    roles.push(role);

    const content = m.content;
    if (typeof content === "string") add(content);
    else if (Array.isArray(content)) {
      for (let j = 0; j < content.length; j++) {
        const part: unknown = content[j];
        const pf = at(`.content[${j}]`);
        if (!isObject(part)) throw new MeteringInputError(pf, "must be a content part object");
        if (part.type !== "text") {
          throw new MeteringInputError(`${pf}.type`, `only text parts can be counted, got ${JSON.stringify(String(part.type))}`);
        }
        add(str(part.text, `${pf}.text`, false));
      }
    } else if (content !== undefined && content !== null) {
      throw new MeteringInputError(at(".content"), "must be a string or a list of text parts");
    }

    const name = str(m.name, at, true, ".name");
    if (name !== undefined) {
      overhead += TOKENS_PER_NAME;
      add(name);
    }

    add(str(m.tool_call_id, at, true, ".tool_call_id"));

    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      if (!Array.isArray(m.tool_calls)) throw new MeteringInputError(at(".tool_calls"), "must be a list");
      for (let j = 0; j < m.tool_calls.length; j++) {
        const tf = at(`.tool_calls[${j}]`);
        const call: unknown = m.tool_calls[j];
        if (!isObject(call) || !isObject(call.function)) {
          throw new MeteringInputError(`${tf}.function`, "must be an object with a name and arguments");
        }
        add(str(call.function.name, `${tf}.function.name`, false));
        add(str(call.function.arguments, `${tf}.function.arguments`, true));
        overhead += TOKENS_PER_TOOL_CALL;
        approximate = true;
      }
    }
  }
  overhead += REPLY_PRIMING_TOKENS;

  // The tool lines go before the messages' strings.
  const messageTexts = texts;
  texts = [];
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) throw new MeteringInputError(toolsField, "must be a list of tool definitions");
    if (tools.length > 0) {
      approximate = true;
      const k = TOOL_TOKENS[encoding];
      for (let i = 0; i < tools.length; i++) {
        const tf = `${toolsField}[${i}]`;
        const tool: unknown = tools[i];
        if (!isObject(tool) || !isObject(tool.function)) {
          throw new MeteringInputError(`${tf}.function`, "must be a function definition object");
        }
        if (tool.type !== undefined && tool.type !== "function") {
          throw new MeteringInputError(`${tf}.type`, 'only "function" tools can be counted');
        }
        const fn = tool.function;
        const name = str(fn.name, `${tf}.function.name`, false)!;
        const description = str(fn.description, `${tf}.function.description`, true) ?? "";
        overhead += k.funcInit;
        add(`${name}:${dropFinalPeriod(description)}`);

        const parameters = fn.parameters;
        if (parameters === undefined || parameters === null) continue;
        if (!isObject(parameters)) throw new MeteringInputError(`${tf}.function.parameters`, "must be an object");
        const properties = parameters.properties;
        if (properties === undefined || properties === null) continue;
        if (!isObject(properties)) {
          throw new MeteringInputError(`${tf}.function.parameters.properties`, "must be an object");
        }
        const keys = Object.keys(properties);
        if (keys.length === 0) continue;
        overhead += k.propInit;
        for (const key of keys) {
          const pf = `${tf}.function.parameters.properties[${JSON.stringify(key)}]`;
          const prop: unknown = properties[key];
          if (!isObject(prop)) throw new MeteringInputError(pf, "must be a schema object");
          overhead += k.propKey;
          if (prop.enum !== undefined) {
            if (!Array.isArray(prop.enum)) throw new MeteringInputError(`${pf}.enum`, "must be a list");
            overhead += k.enumInit;
            for (const item of prop.enum) {
              overhead += k.enumItem;
              add(String(item));
            }
          }
          const type = Array.isArray(prop.type) ? prop.type.map(String).join(" | ") : prop.type === undefined ? "" : String(prop.type);
          const pdesc = typeof prop.description === "string" ? dropFinalPeriod(prop.description) : "";
          add(`${key}:${type}:${pdesc}`);
        }
      }
      overhead += k.funcEnd;
    }
  }
  return { overhead, roles, texts: texts.length === 0 ? messageTexts : texts.concat(messageTexts), approximate };
}

/** "input.messages" → "input.tools"; anything else → "tools". */
export function defaultToolsField(messagesField: string): string {
  return messagesField.endsWith("messages") ? `${messagesField.slice(0, -"messages".length)}tools` : "tools";
}
