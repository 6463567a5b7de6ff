// Token counting for pricing: see README.md in this folder.
export { Meter, digestOf, sequenceDigest, workerEntry, CHAT_LOOKBACK, DEFAULT_CACHE_ENTRIES, DEFAULT_INLINE_MAX_BYTES, DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_QUEUE } from "./meter.js";
export type { CountOptions, MeterCount, MeterOptions, MeterStats } from "./meter.js";
export { MeterClosedError, MeterOverloadedError, MeteringInputError, TextTooLargeError } from "./errors.js";
export {
  ENCODINGS,
  MAX_RUN_BYTES,
  applyMultiplier,
  checkSpec,
  countTokens,
  countWithSpec,
  isEncoding,
  multiplierFromMillionths,
  parseMultiplier,
  preloadEncodings,
  tokenizerLabel,
} from "./tokenizer.js";
export type { Encoding, Multiplier, TokenCount, TokenizerSpec } from "./tokenizer.js";
export { planChat, ROLES, TOOL_TOKENS } from "./chat.js";
export type { ChatMessage, ChatPlan, ChatTextPart, ChatToolCall, ToolDefinition } from "./chat.js";
